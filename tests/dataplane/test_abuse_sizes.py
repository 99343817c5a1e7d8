"""Every text a node, session or template holds has a limit, not only content and metadata: an
oversized model, role, user id, tool argument, name, description or template value is refused
with INVALID_ARGUMENT naming the field, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from memorygraph.server import RunningServer
from memorygraph.v1 import graph_pb2 as pb
from memorygraph.v1.graph_pb2_grpc import MemoryGraphServiceStub

Start = Callable[..., RunningServer]
LIMITS = {
    "max_content_bytes": 1024,
    "max_name_bytes": 64,
    "max_text_bytes": 256,
    "max_list_items": 4,
}
NAME = "n" * 65  # one byte over the limit of names
MULTIBYTE_NAME = "é" * 33  # 33 characters, 66 bytes
TEXT = "t" * 257
CONTENT = "c" * 1025


class Graph:
    """A server at small limits, with a session, a turn and a template to write into."""

    def __init__(self, server: RunningServer, stub: MemoryGraphServiceStub) -> None:
        self.server = server
        self.stub = stub
        self.session = stub.CreateSession(pb.CreateSessionRequest())
        self.prompt = stub.AddPrompt(pb.AddPromptRequest(session_id=self.session.id, content="q"))
        self.response = stub.AddResponse(
            pb.AddResponseRequest(prompt_id=self.prompt.id, content="a")
        )
        self.template = stub.CreateTemplate(
            pb.CreateTemplateRequest(
                name="greeting",
                content="Hello {{who}}! " + "{{who}}" * 20,
                variables=[pb.TemplateVariable(name="who")],
            )
        )


@pytest.fixture
def graph(start_inprocess: Start) -> Iterator[Graph]:
    server = start_inprocess(**LIMITS)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Graph(server, MemoryGraphServiceStub(channel))


def _session(**fields: Any) -> Callable[[Graph], Any]:
    return lambda g: g.stub.CreateSession(pb.CreateSessionRequest(**fields))


def _prompt(**fields: Any) -> Callable[[Graph], Any]:
    return lambda g: g.stub.AddPrompt(
        pb.AddPromptRequest(session_id=g.session.id, content="q", **fields)
    )


def _response(**fields: Any) -> Callable[[Graph], Any]:
    return lambda g: g.stub.AddResponse(
        pb.AddResponseRequest(prompt_id=g.prompt.id, content="a", **fields)
    )


def _tool(**fields: Any) -> Callable[[Graph], Any]:
    fields.setdefault("tool_name", "search")
    return lambda g: g.stub.AddToolInvocation(
        pb.AddToolInvocationRequest(response_id=g.response.id, **fields)
    )


def _agent(**fields: Any) -> Callable[[Graph], Any]:
    return lambda g: g.stub.CreateNode(
        pb.CreateNodeRequest(kind=pb.NODE_KIND_AGENT, agent=pb.AgentDetails(**fields))
    )


def _template(name: str = "t", **variable: Any) -> Callable[[Graph], Any]:
    variables = [pb.TemplateVariable(name="v", **variable)] if variable else []
    return lambda g: g.stub.CreateTemplate(
        pb.CreateTemplateRequest(name=name, content="{{v}}", variables=variables)
    )


def _instantiate(value: str, **fields: Any) -> Callable[[Graph], Any]:
    return lambda g: g.stub.InstantiateTemplate(
        pb.InstantiateTemplateRequest(name="greeting", variables={"who": value}, **fields)
    )


def _ingest(item: pb.IngestItem) -> Callable[[Graph], Any]:
    return lambda g: list(g.stub.Ingest(iter([pb.IngestBatch(items=[item])])))


CASES: dict[str, tuple[Callable[[Graph], Any], str]] = {
    "session user_id": (_session(user_id=NAME), "user_id is 65 bytes; the limit is 64"),
    "session user_id, multibyte": (_session(user_id=MULTIBYTE_NAME), "user_id is 66 bytes"),
    "session agent_id": (_session(agent_id=NAME), "agent_id is 65 bytes"),
    "session model": (_session(model=NAME), "model is 65 bytes"),
    "session title": (_session(title=CONTENT), "content is 1025 bytes"),
    "prompt model": (_prompt(model=NAME), "model is 65 bytes"),
    "prompt role": (_prompt(role=NAME), "role is 65 bytes"),
    "response model": (_response(model=NAME), "model is 65 bytes"),
    "response finish_reason": (_response(finish_reason=NAME), "finish_reason is 65 bytes"),
    "tool name": (_tool(tool_name=NAME), "tool_name is 65 bytes"),
    "tool arguments": (_tool(arguments=CONTENT), "arguments is 1025 bytes"),
    "tool result": (_tool(result=CONTENT), "result is 1025 bytes"),
    "agent name": (_agent(name=NAME), "name is 65 bytes"),
    "agent description": (_agent(description=TEXT), "description is 257 bytes"),
    "agent capabilities": (_agent(capabilities=["a"] * 5), "capabilities has 5 items"),
    "agent capability": (_agent(capabilities=["a", NAME]), "capabilities[1] is 65 bytes"),
    "template name": (_template(name=NAME), "name is 65 bytes"),
    "template variable description": (
        _template(description=TEXT),
        "variables[0].description is 257 bytes",
    ),
    "template variable default": (_template(default_value=TEXT), "variables[0].default_value"),
    "template variable pattern": (_template(pattern="a" * 257), "variables[0].pattern is 257"),
    "instantiated value": (_instantiate(CONTENT), "variable 'who' is 1025 bytes"),
    "instantiated text": (_instantiate("w" * 50), "the rendered template would be"),
    "instantiated prompt role": (
        lambda g: _instantiate("you", session_id=g.session.id, role=NAME)(g),
        "role is 65 bytes",
    ),
    "ingested prompt model": (
        lambda g: _ingest(
            pb.IngestItem(
                prompt=pb.AddPromptRequest(session_id=g.session.id, content="q", model=NAME)
            )
        )(g),
        "model is 65 bytes",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_an_oversized_field_is_refused_naming_it_and_changes_nothing(
    graph: Graph, case: str
) -> None:
    call, message = CASES[case]
    store = graph.server.store
    counts, sequence = store.counts(), store.events.last_sequence
    with pytest.raises(grpc.RpcError) as info:
        call(graph)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    assert store.counts() == counts
    assert store.events.last_sequence == sequence


def test_fields_at_their_limits_are_taken(graph: Graph) -> None:
    name, text = "n" * 64, "t" * 256
    _session(user_id=name, agent_id=name, model=name, title="c" * 1024)(graph)
    _prompt(model=name, role=name)(graph)
    _response(model=name, finish_reason=name)(graph)
    _tool(tool_name=name, arguments="c" * 1024, result="c" * 1024)(graph)
    _agent(name=name, description=text, capabilities=[name] * 4)(graph)
    _template(name=name, description=text, default_value=text, pattern=text)(graph)
    rendered = _instantiate("w" * 40)(graph)
    assert len(rendered.content) == 21 * 40 + 8


def test_the_default_limits_refuse_a_model_of_megabytes(start_inprocess: Start) -> None:
    server = start_inprocess()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = MemoryGraphServiceStub(channel)
        session = stub.CreateSession(pb.CreateSessionRequest())
        with pytest.raises(grpc.RpcError) as info:
            stub.AddPrompt(
                pb.AddPromptRequest(session_id=session.id, content="q", model="m" * (7 << 20))
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "model is 7340032 bytes; the limit is 1024 bytes"
