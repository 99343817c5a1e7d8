"""Graph rules: sessions, nodes, edges, LLM turns, templates, queries and traversal.

    service.py    GraphService: every operation, with its hook points
    creation.py   what creating a session, node or edge means (automatic edges, token totals)
    checks.py     lookups and limits every write shares
    writes.py     the writers' lock, transactions and batched writes (group commit)
    tx.py         a transaction: reads see its own writes; one StoreChanges at the end
    batch.py      many requests' writes applied as one batch
    hooks.py      GraphHooks: the points where plugins see, change or refuse calls and reads
    templates.py  template rules, rendering, and the template operations
    query.py      queries, pages and streams over the time-ordered indexes
    scatter.py    merging workers' pages of a listing over every shard
    peering.py    what other workers of a split graph do to this worker's store
    traverse.py   bounded breadth-first traversal
    export.py     the session export format
    archival.py   archive and restore sessions

Nothing here knows of protobuf, gRPC or RocksDB.
"""
