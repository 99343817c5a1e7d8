"""The data plane's Prometheus metrics and its HTTP probes, one concern per module:

definitions.py  the `memorygraph_*` metrics (registered on import) and the `observe_*` helpers
per_thread.py   counts and call timings kept per thread without locks, summed on scrape
endpoint.py     the HTTP server of /metrics, /healthz and /readyz
"""
