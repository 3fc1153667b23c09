"""The online layer: a thin FastAPI service over what the batch and streaming jobs publish."""
