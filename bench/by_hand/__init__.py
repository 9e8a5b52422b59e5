"""Benchmarks run by hand, one component at a time, outside ``make bench``'s comparable run.

Each is a module: ``PYTHONPATH=tests uv run python -m bench.by_hand.<name>`` (see its docstring).
"""
