"""Plugins: before/after hooks on every write kind, on reads and on archival.

schema.py       the hook points and what plugins.yaml may say (the operator imports this alone)
calls.py        the call a plugin receives, and the refusal it raises
config.py       reading and validating plugins.yaml
builtin.py      validator, redactor, enricher, quota
webhook.py      external plugins over HTTP+JSON
pipeline.py     ordering, timeouts, failure policies, metrics
reload.py       picking up a changed plugins.yaml without a restart
graph_hooks.py  the graph service's hook points, served by the pipeline
"""
