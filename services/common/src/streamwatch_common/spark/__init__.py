"""The Spark jobs' shared parts: session defaults, the Kafka streaming source and writer, the job runner.

Needs the ``spark`` extra. ``runner.py`` is the one lifecycle of both streaming jobs (readiness, session,
listener, query, graceful stop, exit codes); ``job_settings.py`` their shared settings; ``connector.py``
everything that differs between the ``python`` and ``jvm`` Kafka connectors; the micro-batch metrics
listener lives in ``listener.py``, its pushing in ``pushgateway_group.py``, what it reads of a batch in
``batch_metrics.py`` and the names it pushes in ``batch_metric_names.py``. The Python Kafka source is
``kafka_source.py`` (planning), ``kafka_source_options.py``, ``kafka_range_read.py`` (a task's read) and
``kafka_broker_wait.py``; its writer ``kafka_writer.py``.
"""
