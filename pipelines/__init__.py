"""Spark jobs. Each module has pure transforms elsewhere and a thin ``main()`` that serves
both ``spark-submit pipelines/<job>.py --ds YYYY-MM-DD`` and ``recolake <job>``."""
