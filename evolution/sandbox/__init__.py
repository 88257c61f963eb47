"""An Evolution-API-compatible HTTP server for tests, demos and benchmarks (see server.py)."""
