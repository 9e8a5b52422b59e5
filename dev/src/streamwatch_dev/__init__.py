"""streamwatch's local runtime (dev only): real components (Apache Kafka broker, Elasticsearch node,
Prometheus, Pushgateway, search server, Docker engine), service processes, the rendered chart's wiring
made local, and ``make demo`` (:mod:`streamwatch_dev.demo`).

The tests, ``bench/`` and ``make demo`` use it; no service image contains it. Quirk workarounds for the
stand-in components live here and nowhere in product code.
"""
