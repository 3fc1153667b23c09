"""Recommendation models (ALS, baselines) and their evaluation, all in Spark."""
