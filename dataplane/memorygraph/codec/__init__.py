"""The protobuf codec: the one mapping between the domain model and the `memorygraph.v1` API.

    enums.py     every enum's table, both ways (requests are checked against it)
    times.py     timestamps
    nodes.py     Node <-> v1.Node: the node records the store keeps and the server sends
    framing.py   records joined into repeated fields without parsing them
    messages.py  edges and events as messages
    requests.py  requests -> what callers ask to create (specs), checked field by field
    ingest.py    an IngestBatch -> specs, with ids made up front and `$N` references resolved

It knows protobuf and the model, nothing of storage, graph rules or gRPC.
"""
