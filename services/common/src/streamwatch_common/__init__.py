"""Shared library of the streamwatch services.

Settings, structured logging, the ops HTTP server, Kafka client configuration and graceful shutdown live
here so that every service behaves the same way; Spark I/O lives in the ``spark`` subpackage (extra
``spark``).
"""
