"""The passthrough: a PySpark Structured Streaming job copying ``visits`` to ``processed_visits``."""
