"""The Spark jobs' shared parts: session defaults, the Kafka streaming source and writer, the job runner.

Needs the ``spark`` extra. ``runner.py`` is the one lifecycle of both streaming jobs (readiness, session,
listener, query, graceful stop, exit codes); ``job_settings.py`` their shared settings; the micro-batch
metrics listener lives in ``listener.py``, what it reads of a batch in ``batch_metrics.py``.
"""
