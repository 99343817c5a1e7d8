"""Write the key-value pairs of a small data directory, made by the code this runs with, as JSON
lines: the fixture of the upgrade tests (test_release_stores.py).

Run it once with the release whose directories a later one must open, then never again: the
file it writes stands for directories that exist. It refuses any schema but the one named.

    PYTHONPATH=<that release's dataplane> python make_store.py SCHEMA OUT.jsonl
"""

from __future__ import annotations

import json
import sys

from memorygraph.graph.service import GraphService
from memorygraph.model import (
    AgentDetails,
    EdgeKind,
    NewEdge,
    NewNode,
    NewSession,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    TemplateVariable,
    TokenUsage,
    ToolInvocationDetails,
)
from memorygraph.store import GraphStore, MemoryStore
from memorygraph.store.keys import COLUMN_FAMILIES, SCHEMA_VERSION


def _turns(service: GraphService, session: bytes, count: int) -> None:
    for i in range(count):
        prompt = service.create_node(
            NewNode(NodeKind.PROMPT, session, f"question {i}", {"turn": str(i)})
        )
        response = service.create_node(
            NewNode(
                NodeKind.RESPONSE,
                content=f"answer {i}",
                details=ResponseDetails(prompt_id=prompt.id, token_usage=TokenUsage(10 + i, 20)),
            )
        )
        service.create_node(
            NewNode(
                NodeKind.TOOL_INVOCATION,
                details=ToolInvocationDetails(response_id=response.id, tool_name="search"),
            )
        )


def build(service: GraphService) -> None:
    """Every kind of record and marker a directory of this schema can hold."""
    agent = service.create_node(NewNode(NodeKind.AGENT, details=AgentDetails(name="planner")))
    service.templates.create(
        name="greeting",
        content="Hello {{name}}",
        variables=[TemplateVariable(name="name")],
        metadata={},
    )
    open_one = service.create_session(NewSession(title="open", user_id="u1"))
    _turns(service, open_one.id, 3)
    service.templates.instantiate(
        template_id=None,
        name="greeting",
        values={"name": "Ada"},
        session_id=open_one.id,
        prompt=PromptDetails(),
        metadata={},
    )
    service.create_edge(NewEdge(open_one.id, agent.id, EdgeKind.HANDLED_BY))
    closed = service.create_session(NewSession(title="closed", user_id="u2"))
    _turns(service, closed.id, 2)
    service.close_session(closed.id)
    archived = service.create_session(NewSession(title="archived"))
    _turns(service, archived.id, 2)
    export = service.archive.export_session(archived.id)
    service.archive.archive_session(archived.id, content_sha256=export.sha256())
    deleted = service.create_session(NewSession(title="deleted"))
    _turns(service, deleted.id, 1)
    service.delete_session(deleted.id)
    service.store.save_cursor("registry", 5)


def main() -> None:
    schema, out = int(sys.argv[1]), sys.argv[2]
    if schema != SCHEMA_VERSION:
        sys.exit(f"this code writes schema {SCHEMA_VERSION}, not {schema}")
    kv = MemoryStore()
    build(GraphService(GraphStore(kv)))
    with open(out, "w") as file:
        for cf in COLUMN_FAMILIES:
            for key, value in kv.scan(cf, b"", b"\xff" * 64):
                file.write(json.dumps({"cf": cf, "key": key.hex(), "value": value.hex()}) + "\n")


if __name__ == "__main__":
    main()
