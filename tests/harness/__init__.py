"""Test harness: real components (broker, Prometheus, Pushgateway, search server) and service processes.

Quirk workarounds for the stand-in components live here and nowhere in product code.
"""
