"""Python client for applications: `Client` (blocking) and `AsyncClient` (asyncio).

    from memorygraph import Client

    with Client("127.0.0.1:50051") as mg:
        session = mg.create_session(title="support chat", user_id="u-42")
        prompt = mg.add_prompt(session.id, "Where is my order?", model="gpt-4o")
        mg.add_response(prompt.id, "It ships today.", token_usage=(12, 6))
        for node in mg.iter_query(session_id=session.id):
            print(node.kind, node.content)

Methods mirror the RPCs of `memorygraph.v1.MemoryGraphService` and return its protobuf messages.
Kinds, directions and states may be given as names ("prompt", "incoming", "closed") or enum
values; times as `datetime`. gRPC failures are raised as the `memorygraph.errors` classes, with
the server's message. `AsyncClient` has every method of `Client`, with the same parameters:
coroutines, and async iterators where `Client` returns an iterator.

Modules (private): `_base` builds every request for both clients, `_sync` and `_async` send
them, `_connection` opens the channel (TLS, API key), `_errors` turns gRPC failures into
MemoryGraph errors, `_fields` converts Python values to request fields.
"""

from memorygraph.client._async import AsyncClient
from memorygraph.client._sync import Client

__all__ = ["AsyncClient", "Client"]
