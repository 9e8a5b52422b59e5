"""Benchmarks run by hand, one component at a time, outside ``make bench``'s comparable run.

Each is a module: ``uv run python -m bench.by_hand.<name>`` (see its docstring; the profile publisher's
borrows the tests' upload client, so it needs ``PYTHONPATH=tests``).
"""
