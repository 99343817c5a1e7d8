"""Templates through the RPCs: rendering, usage counts, recorded prompts, refused variables."""

from __future__ import annotations

import grpc
import pytest
from memorygraph.v1 import graph_pb2 as pb

from .rpc_support import Stub, edge_set, status_of


def test_templates_render_count_and_link_prompts(stub: Stub) -> None:
    template = stub.CreateTemplate(
        pb.CreateTemplateRequest(
            name="greeting",
            content="Hello {{ name }}, you are {{age}} years old.{{suffix}}",
            variables=[
                pb.TemplateVariable(name="name", required=True),
                pb.TemplateVariable(name="age", pattern="[0-9]{1,3}", default_value="30"),
                pb.TemplateVariable(name="suffix"),
            ],
        )
    )
    rendered = stub.InstantiateTemplate(
        pb.InstantiateTemplateRequest(name="greeting", variables={"name": "Ada"})
    )
    assert rendered.content == "Hello Ada, you are 30 years old."
    assert not rendered.HasField("prompt")

    session = stub.CreateSession(pb.CreateSessionRequest())
    recorded = stub.InstantiateTemplate(
        pb.InstantiateTemplateRequest(
            template_id=template.id, variables={"name": "Bob", "age": "41"}, session_id=session.id
        )
    )
    assert recorded.prompt.content == "Hello Bob, you are 41 years old."
    assert recorded.prompt.prompt.template_id == template.id
    edges = stub.GetEdges(pb.GetEdgesRequest(node_id=recorded.prompt.id))
    assert (recorded.prompt.id, pb.EDGE_KIND_INSTANTIATES, template.id) in edge_set(edges.edges)
    assert stub.GetTemplate(pb.GetTemplateRequest(name="greeting")).usage_count == 2
    by_id = stub.GetTemplate(pb.GetTemplateRequest(template_id=template.id))
    assert by_id.name == "greeting" and len(by_id.variables) == 3


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (pb.InstantiateTemplateRequest(name="t", variables={}), "missing required"),
        (
            pb.InstantiateTemplateRequest(name="t", variables={"who": "x", "n": "abc"}),
            "does not match",
        ),
        (pb.InstantiateTemplateRequest(name="t", variables={"who": "x", "zzz": "1"}), "unknown"),
    ],
)
def test_bad_template_variables_are_invalid_and_not_counted(
    stub: Stub, request_: pb.InstantiateTemplateRequest, fragment: str
) -> None:
    stub.CreateTemplate(
        pb.CreateTemplateRequest(
            name="t",
            content="{{who}} {{n}}",
            variables=[
                pb.TemplateVariable(name="who", required=True),
                pb.TemplateVariable(name="n", pattern="[0-9]+"),
            ],
        )
    )
    code, message = status_of(lambda: stub.InstantiateTemplate(request_))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fragment in message
    assert stub.GetTemplate(pb.GetTemplateRequest(name="t")).usage_count == 0


def test_template_with_bad_regex_or_duplicate_name_is_refused(stub: Stub) -> None:
    code, message = status_of(
        lambda: stub.CreateTemplate(
            pb.CreateTemplateRequest(
                name="x", content="{{a}}", variables=[pb.TemplateVariable(name="a", pattern="(")]
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "RE2" in message
    code, message = status_of(
        lambda: stub.CreateTemplate(pb.CreateTemplateRequest(name="x", content="{{undeclared}}"))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "undeclared" in message
    stub.CreateTemplate(pb.CreateTemplateRequest(name="x", content="plain"))
    code, _ = status_of(
        lambda: stub.CreateTemplate(pb.CreateTemplateRequest(name="x", content="again"))
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS
