"""Benchmarks that report ratios against baselines measured in the same run:
a bare gRPC echo server of the same grpcio version and server flavour, the `fast` durability
mode, and PostgreSQL doing the same LLM-turn recording. See docs/benchmarks.md."""
