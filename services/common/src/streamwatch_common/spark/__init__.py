"""Spark I/O without JVM connector jars (extra ``spark``): Kafka source and writer, session, listener."""
