"""recolake: real-time recommendations for online shops on Spark, Delta Lake, MLflow and Redis."""

__version__ = "0.1.0"
