"""The ids the server makes: every node of a session carries the session's shard tag, whichever
call made it; global nodes and sessions get tags of their own."""

from __future__ import annotations

import uuid

from memorygraph.model import id_tag, name_tag, parse_id
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

from .test_ingest import turn_batch


def _tag(text: str) -> int:
    return id_tag(parse_id(text, "id"))


def test_the_nodes_of_a_session_carry_its_tag(stub: MemoryGraphServiceStub) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest(title="t")).id
    prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=session, content="q")).id
    response = stub.AddResponse(pb.AddResponseRequest(prompt_id=prompt, content="a")).id
    tool = stub.AddToolInvocation(
        pb.AddToolInvocationRequest(response_id=response, tool_name="search")
    ).id
    batch = stub.BatchCreateNodes(
        pb.BatchCreateNodesRequest(
            requests=[
                pb.CreateNodeRequest(session_id=session, kind=pb.NODE_KIND_PROMPT, content="b")
            ]
        )
    )
    made = [prompt, response, tool, *(n.id for n in batch.nodes)]
    assert {uuid.UUID(i).version for i in made} == {8}
    assert {_tag(i) for i in made} == {_tag(session)}


def test_a_session_of_the_callers_choosing_lends_its_nodes_its_hashed_tag(
    stub: MemoryGraphServiceStub,
) -> None:
    chosen = str(uuid.uuid4())
    stub.CreateSession(pb.CreateSessionRequest(session_id=chosen, title="mine"))
    prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=chosen, content="q")).id
    assert _tag(prompt) == _tag(chosen) == id_tag(uuid.UUID(chosen).bytes)


def test_ingest_gives_every_node_of_a_batch_its_sessions_tag(
    stub: MemoryGraphServiceStub,
) -> None:
    (ack,) = stub.Ingest(iter([turn_batch("b", 3)]))
    session, *nodes = ack.ids
    assert {_tag(i) for i in nodes} == {_tag(session)}
    # A later batch that names only an existing prompt: the response lands in its session.
    prompt = nodes[0]
    item = pb.IngestItem(response=pb.AddResponseRequest(prompt_id=prompt, content="late"))
    (later,) = stub.Ingest(iter([pb.IngestBatch(batch_id="later", items=[item])]))
    assert _tag(later.ids[0]) == _tag(session)


def test_sessions_and_global_nodes_get_tags_of_their_own(stub: MemoryGraphServiceStub) -> None:
    sessions = [stub.CreateSession(pb.CreateSessionRequest(title=str(i))).id for i in range(64)]
    agents = [
        stub.CreateNode(pb.CreateNodeRequest(kind=pb.NODE_KIND_AGENT, content=str(i))).id
        for i in range(64)
    ]
    # 64 random 16-bit tags: a repeat has odds of about 3%; more than two, far less.
    assert len({_tag(i) for i in sessions}) >= 62
    assert len({_tag(i) for i in agents}) >= 62


def test_ingest_under_a_parent_of_the_callers_id_gives_the_sessions_tag(
    stub: MemoryGraphServiceStub,
) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest(title="t")).id
    own = str(uuid.uuid4())  # a prompt id of the caller's choosing (as any id made before tags)
    stub.CreateNode(
        pb.CreateNodeRequest(node_id=own, session_id=session, kind=pb.NODE_KIND_PROMPT, content="q")
    )
    direct = stub.AddResponse(pb.AddResponseRequest(prompt_id=own, content="a")).id
    items = [
        pb.IngestItem(response=pb.AddResponseRequest(prompt_id=own, content="late")),
        pb.IngestItem(tool_invocation=pb.AddToolInvocationRequest(response_id="$0", tool_name="t")),
        pb.IngestItem(
            node=pb.CreateNodeRequest(
                node_id=str(uuid.uuid4()),
                session_id=session,
                kind=pb.NODE_KIND_PROMPT,
                content="mine",
            )
        ),
    ]
    items.append(
        pb.IngestItem(response=pb.AddResponseRequest(prompt_id="$2", content="under mine"))
    )
    (ack,) = stub.Ingest(iter([pb.IngestBatch(batch_id="x", items=items)]))
    made = [direct, ack.ids[0], ack.ids[1], ack.ids[3]]
    assert {_tag(i) for i in made} == {_tag(session)}
    assert ack.ids[2] == items[2].node.node_id  # the caller's own id is kept as given


def test_a_template_instantiated_in_a_session_makes_a_prompt_with_its_tag(
    stub: MemoryGraphServiceStub,
) -> None:
    session = stub.CreateSession(pb.CreateSessionRequest(title="t")).id
    stub.CreateTemplate(pb.CreateTemplateRequest(name="greet", content="hi"))
    made = stub.InstantiateTemplate(pb.InstantiateTemplateRequest(name="greet", session_id=session))
    assert _tag(made.prompt.id) == _tag(session)


def test_a_template_carries_the_tag_of_its_name(stub: MemoryGraphServiceStub) -> None:
    made = stub.CreateTemplate(pb.CreateTemplateRequest(name="greeting", content="hi")).id
    assert _tag(made) == name_tag("greeting") == 0x18F6  # the docs' example
    assert uuid.UUID(made).version == 8
    own = str(uuid.uuid4())
    stub.CreateTemplate(pb.CreateTemplateRequest(template_id=own, name="other", content="x"))
    assert stub.GetNode(pb.GetNodeRequest(node_id=own)).id == own  # a chosen id is kept
