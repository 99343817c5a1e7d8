"""Benchmarks that report ratios against baselines measured in the same run:
a bare gRPC echo server of the same grpcio version and server flavour, the `fast` durability
mode, and PostgreSQL doing the same LLM-turn recording. See docs/benchmarks.md.

__main__.py  the command: arguments and the run loop (which servers, which scenarios, in order)
targets.py   the servers under test, as run inside their child processes (echo, memorygraph)
launch.py    starting those child processes and handing them to the workloads as targets
workloads.py what each scenario sends and how many calls it keeps in flight
load.py      the load generator: calls in flight for a fixed time, latencies after a warm-up
postgres.py  the PostgreSQL baseline: its server and the same turns recorded in SQL
verdicts.py  checks (ratios against targets) and reference points, as medians over runs
report.py    the lines printed and the JSON written
"""
