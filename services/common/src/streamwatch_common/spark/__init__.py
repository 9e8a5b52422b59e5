"""Spark I/O without JVM connector jars: session defaults, the Kafka streaming source, the Kafka writer.

Needs the ``spark`` extra. The micro-batch metrics listener lives in ``listener.py``.
"""
