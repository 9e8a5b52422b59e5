"""Benchmarks of streamwatch against real local components: ``make bench`` (``python -m bench``).

Every number is taken next to its practical limit in the same run on the same machine (a raw
confluent-kafka loop, the same job without its listener, the theoretical alert latency), so a noisy
machine still gives comparable ratios. Results: a Markdown table on stdout and JSON under ``bench/results``.
"""
