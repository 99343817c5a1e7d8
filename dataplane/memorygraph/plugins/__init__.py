"""Plugins: before/after hooks on every write kind, on queries and on archival.

hooks.py     the hook points and the call a plugin receives
config.py    plugins.yaml, validated
builtins.py  validator, redactor, enricher, quota
webhook.py   external plugins over HTTP+JSON
pipeline.py  ordering, timeouts, failure policies, metrics
reload.py    picking up a changed plugins.yaml without a restart
"""
