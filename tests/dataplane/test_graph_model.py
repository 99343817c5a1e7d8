"""Model-based test of the graph service: random operation sequences on `GraphService`, each
compared with the plain-Python `ReferenceGraph`, on both storage engines.

After every step the answers must agree (returned values, the class of every refusal, query
pages and their order, edge sets, traversals, counters), and the store must hold exactly what
the model implies: each node's record and index entries, both entries of each edge, template
names and persisted counters, read from the raw column families. On RocksDB a `restart` step
closes and reopens the store, after which everything must be as before.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from memorygraph.codec.nodes import node_from_message, node_message
from memorygraph.errors import NotFound, RequestError
from memorygraph.graph.query import QueryFilter
from memorygraph.graph.service import GraphService
from memorygraph.model import (
    MAX_TIME,
    AgentDetails,
    Direction,
    EdgeKind,
    NewEdge,
    NewNode,
    NewSession,
    Node,
    NodeKind,
    PromptDetails,
    ResponseDetails,
    SessionState,
    TemplateDetails,
    TemplateVariable,
    TokenUsage,
    ToolInvocationDetails,
)
from memorygraph.store import GraphStore, KeyValueStore, MemoryStore
from memorygraph.store.counters import Counters
from memorygraph.store.keys import EDGE_KIND_CODES, NODE_KIND_CODES
from memorygraph.store.rocks import RocksStore
from memorygraph.v1 import graph_pb2 as pb

from tests.dataplane.reference_graph import (
    ReferenceGraph,
    Refused,
    Segment,
    Variable,
    render_segments,
)

T = TypeVar("T")
T0 = 1_750_000_000_000_000
EVERYTHING = (b"", b"\xff" * 64)
UNKNOWN_ID = uuid.UUID("0190aaaa-0000-7000-8000-000000000000").bytes
EXPLICIT_IDS = [uuid.UUID(int=(0x0180 << 112) | (0x7 << 76) | i).bytes for i in range(1, 5)]


class FakeClock:
    """Microseconds that advance by one on every reading: predictable and strictly increasing."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1
        return self.now


@dataclass
class Outcome(Generic[T]):
    """What the service did with one request: a value or a refusal."""

    value: T | None = None
    error: Exception | None = None

    @property
    def got(self) -> T | None:
        return self.value if self.error is None else None


def _call(fn: Callable[[], T]) -> Outcome[T]:
    try:
        return Outcome(value=fn())
    except RequestError as exc:
        return Outcome(error=exc)


# -- strategies ----------------------------------------------------------------------------------


def mostly(common: list[T], rare: list[T], odds: int = 10) -> st.SearchStrategy[T]:
    """One of `common`, or one time in `odds` one of `rare` (requests the service refuses)."""
    # Not roll == 0: hypothesis favours the ends of a range, which would make `rare` common.
    return st.integers(0, odds - 1).flatmap(
        lambda roll: st.sampled_from(rare if roll == odds // 2 else common)
    )


metadata_st = st.dictionaries(
    mostly(["k1", "k2"], [""], odds=12), st.sampled_from(["a", "b"]), max_size=2
)
content_st = mostly(["hello", "why?", "ünïcode ✓", "two words"], ["", "  "])
text_segment_st = st.tuples(
    st.just("text"), st.sampled_from(["Hi ", "please ", " ", "?"]), st.just("")
)


def segments_st(names: list[str]) -> st.SearchStrategy[list[Segment]]:
    """Template content as segments: literals and placeholders for `names` (rarely another)."""
    var = st.tuples(
        st.just("var"), mostly(names or ["a"], ["z"], odds=12), st.sampled_from(["", " "])
    )
    return st.lists(st.one_of(text_segment_st, var), min_size=1, max_size=4)


variable_st = st.builds(
    Variable,
    name=mostly(["a", "b", "c"], ["1bad", ""], odds=15),
    required=st.booleans(),
    default_value=st.sampled_from(["", "", "abc", "42"]),
    pattern=mostly(["", "", "", "[a-z]+", "[0-9]+"], ["(", "(a)\\1", "(?=a)"], odds=15),
)
template_name_st = mostly(["greet", "ask", "summarize", "plan"], ["", " ", "n" * 201])
directions = st.sampled_from(list(Direction))
edge_kinds_st = st.sets(st.sampled_from(list(EdgeKind)), max_size=2)


# -- raw layout ----------------------------------------------------------------------------------


def _raw(kv: KeyValueStore, cf: str) -> dict[bytes, bytes]:
    return dict(kv.scan(cf, *EVERYTHING))


def _nodes(records: list[bytes]) -> list[Node]:
    """Domain nodes from query results (node records)."""
    return [node_from_message(pb.Node.FromString(record)) for record in records]


def _expected_layout(model: ReferenceGraph) -> dict[str, dict[bytes, bytes]]:
    """Every index entry the model's nodes and edges imply, written out byte by byte (a
    session's entries carry the node's record)."""
    by_session, by_kind, names = {}, {}, {}
    for node in model.nodes.values():
        kind = bytes([NODE_KIND_CODES[node.kind]])
        when = node.create_time.to_bytes(8)
        if node.session_id is not None and node.kind is not NodeKind.SESSION:
            framed = pb.QueryBatch(nodes=[node_message(node)]).SerializeToString(deterministic=True)
            by_session[node.session_id + when + node.id + kind] = framed
        by_kind[kind + when + node.id] = node.session_id or b""
        if node.kind is NodeKind.TEMPLATE:
            names[b"template/" + node.details_as(TemplateDetails).name.encode()] = node.id
    edges_in = {t + bytes([EDGE_KIND_CODES[k]]) + s: b"" for s, k, t in model.edges}
    return {"by_session": by_session, "by_kind": by_kind, "names": names, "edges_in": edges_in}


# -- the state machine ---------------------------------------------------------------------------


class GraphServiceMachine(RuleBasedStateMachine):
    def __init__(self, engine: str, workdir: Path) -> None:
        super().__init__()
        self.engine = engine
        self.dir = Path(tempfile.mkdtemp(dir=workdir))
        self.clock = FakeClock()
        self.store = self._open()
        self.service = GraphService(self.store, clock=self.clock)
        self.model = ReferenceGraph(now=self.clock.now)
        self.gone: list[bytes] = []  # ids of deleted nodes, to aim requests at

    def _open(self) -> GraphStore:
        kv: KeyValueStore = RocksStore(self.dir / "db") if self.engine == "rocks" else MemoryStore()
        return GraphStore(kv)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------------

    def _apply(
        self, what: str, outcome: Outcome[T], change: Callable[[ReferenceGraph], Any]
    ) -> Any:
        """Apply `change` to a copy of the model; keep it only if the service agreed."""
        trial = copy.deepcopy(self.model)
        trial.now = self.clock.now
        try:
            expected = change(trial)
        except Refused as refused:
            event(f"{what}: {refused.error.__name__}")
            assert outcome.error is not None, (
                f"the service accepted what the model refuses ({refused}): {outcome.value!r}"
            )
            assert type(outcome.error) is refused.error, (
                f"expected {refused}, the service raised {outcome.error!r}"
            )
            return None
        if outcome.error is not None:
            raise AssertionError(f"the service refused a valid request: {outcome.error!r}")
        event(f"{what}: ok")
        before = set(self.model.nodes)
        self.model = trial
        self.gone += [nid for nid in before if nid not in trial.nodes]
        return expected

    def _pick(self, data: st.DataObject, *kinds: NodeKind) -> bytes:
        """Mostly an existing node of `kinds`; sometimes any node, a deleted one or an unknown."""
        nodes = self.model.nodes
        matching = [nid for nid, n in nodes.items() if not kinds or n.kind in kinds]
        roll = data.draw(st.integers(0, 19))
        pool: list[bytes]
        if matching and roll < 16:
            pool = matching
        elif nodes and roll < 18:
            pool = list(nodes)
        elif self.gone and roll < 19:
            pool = self.gone
        else:
            return data.draw(st.sampled_from([UNKNOWN_ID, *EXPLICIT_IDS]))
        return pool[data.draw(st.integers(0, len(pool) - 1))]

    def _maybe(self, data: st.DataObject, *kinds: NodeKind, chance: int = 4) -> bytes | None:
        """None, or (one time in `chance`) a picked node."""
        return self._pick(data, *kinds) if data.draw(st.integers(1, chance)) == 1 else None

    def _explicit_id(self, data: st.DataObject) -> bytes | None:
        choice = data.draw(st.integers(0, 11))
        if choice < 9:
            return None
        if choice < 9 or not self.model.nodes:
            return data.draw(st.sampled_from(EXPLICIT_IDS))
        return self._pick(data)

    def _times(self) -> list[int]:
        created = (n.create_time for n in self.model.nodes.values())
        return sorted({0, T0, self.clock.now + 1, *created})

    # -- sessions --------------------------------------------------------------------------------

    def _seed_session(self, spec: NewSession) -> None:
        outcome = _call(lambda: self.service.create_session(spec))
        assert self._apply("seed", outcome, lambda m: m.create_session(spec, outcome.got))

    @initialize(sessions=st.integers(1, 3))
    def seed(self, sessions: int) -> None:
        """Start from a few sessions, an agent and a template, so most requests can succeed."""
        for i in range(sessions):
            self._seed_session(NewSession(title=f"seed {i}", user_id=["ann", "bob"][i % 2]))
        first = next(iter(self.model.nodes))
        prompt = NewNode(NodeKind.PROMPT, first, "first question")
        outcome_prompt = _call(lambda: self.service.create_node(prompt))
        assert self._apply(
            "seed", outcome_prompt, lambda m: m.create_node(prompt, outcome_prompt.got)
        )
        agent = NewNode(NodeKind.AGENT, details=AgentDetails(name="helper"))
        outcome_agent = _call(lambda: self.service.create_node(agent))
        assert self._apply("seed", outcome_agent, lambda m: m.create_node(agent, outcome_agent.got))
        variables = [
            Variable("a", required=True),
            Variable("b", default_value="x", pattern="[a-z]+"),
        ]
        segments: list[Segment] = [
            ("text", "Hi ", ""),
            ("var", "a", ""),
            ("text", " ", ""),
            ("var", "b", " "),
        ]
        outcome_template = _call(
            lambda: self.service.templates.create(
                name="greet",
                content=render_segments(segments),
                variables=[
                    TemplateVariable("a", required=True),
                    TemplateVariable("b", default_value="x", pattern="[a-z]+"),
                ],
                metadata={},
            )
        )
        assert self._apply(
            "seed",
            outcome_template,
            lambda m: m.create_template(
                "greet", segments, variables, {}, None, outcome_template.got
            ),
        )

    @rule(
        data=st.data(),
        title=st.sampled_from(["", "chat", "support"]),
        user_id=st.sampled_from(["", "ann", "bob"]),
        metadata=metadata_st,
    )
    def create_session(
        self, data: st.DataObject, title: str, user_id: str, metadata: dict[str, str]
    ) -> None:
        spec = NewSession(self._explicit_id(data), title, user_id, "agent-1", "model-1", metadata)
        outcome = _call(lambda: self.service.create_session(spec))
        expected = self._apply(
            "create_session", outcome, lambda m: m.create_session(spec, outcome.got)
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def close_session(self, data: st.DataObject) -> None:
        session_id = self._pick(data, NodeKind.SESSION)
        outcome = _call(lambda: self.service.close_session(session_id))
        expected = self._apply(
            "close_session", outcome, lambda m: m.close_session(session_id, outcome.got)
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def delete_session(self, data: st.DataObject) -> None:
        session_id = self._pick(data, NodeKind.SESSION)
        outcome = _call(lambda: self.service.delete_session(session_id))
        expected = self._apply("delete_session", outcome, lambda m: m.delete_session(session_id))
        if expected is not None:
            assert outcome.value == expected

    # -- turns and nodes -------------------------------------------------------------------------

    def _create(self, spec: NewNode) -> None:
        outcome = _call(lambda: self.service.create_node(spec))
        expected = self._apply(
            f"create {spec.kind}", outcome, lambda m: m.create_node(spec, outcome.got)
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(
        data=st.data(),
        content=content_st,
        metadata=metadata_st,
        details=mostly(
            [None, PromptDetails(model="m1"), PromptDetails(role="user")], [ResponseDetails()]
        ),
    )
    def add_prompt(
        self, data: st.DataObject, content: str, metadata: dict[str, str], details: Any
    ) -> None:
        session_id = self._pick(data, NodeKind.SESSION)
        self._create(
            NewNode(
                NodeKind.PROMPT, session_id, content, metadata, details, self._explicit_id(data)
            )
        )

    @rule(
        data=st.data(),
        content=content_st,
        tokens=st.tuples(st.integers(0, 50), st.integers(0, 50), mostly([0, 0, 7], [-1])),
    )
    def add_response(self, data: st.DataObject, content: str, tokens: tuple[int, int, int]) -> None:
        prompt_id = self._pick(data, NodeKind.PROMPT) if data.draw(st.integers(0, 5)) else None
        details = ResponseDetails(prompt_id=prompt_id, token_usage=TokenUsage(*tokens))
        session_id = self._maybe(data, NodeKind.SESSION, chance=1 if prompt_id is None else 4)
        self._create(NewNode(NodeKind.RESPONSE, session_id, content, {}, details))

    @rule(data=st.data(), tool_name=mostly(["search", "calc"], [""]))
    def add_tool_invocation(self, data: st.DataObject, tool_name: str) -> None:
        details = ToolInvocationDetails(tool_name=tool_name, arguments='{"q": 1}')
        session_id = None
        if data.draw(st.integers(0, 5)):
            details = replace(details, response_id=self._pick(data, NodeKind.RESPONSE))
            session_id = self._maybe(data, NodeKind.SESSION)
        else:
            session_id = self._pick(data, NodeKind.SESSION)
        self._create(NewNode(NodeKind.TOOL_INVOCATION, session_id, "", {}, details))

    @rule(data=st.data(), name=st.sampled_from(["planner", "coder"]), metadata=metadata_st)
    def create_agent(self, data: st.DataObject, name: str, metadata: dict[str, str]) -> None:
        session_id = self._maybe(data, NodeKind.SESSION, chance=6)
        self._create(
            NewNode(
                NodeKind.AGENT,
                session_id,
                "",
                metadata,
                AgentDetails(name=name),
                self._explicit_id(data),
            )
        )

    @rule(data=st.data(), size=st.integers(1, 3))
    def create_nodes_in_one_batch(self, data: st.DataObject, size: int) -> None:
        specs = []
        for _ in range(size):
            kind = data.draw(st.sampled_from([NodeKind.PROMPT, NodeKind.RESPONSE, NodeKind.AGENT]))
            node_id = data.draw(mostly([None], EXPLICIT_IDS, odds=3))
            content = data.draw(content_st)
            if kind is NodeKind.AGENT:
                specs.append(NewNode(kind, None, content, {}, AgentDetails(name="x"), node_id))
            elif kind is NodeKind.PROMPT:
                specs.append(
                    NewNode(kind, self._pick(data, NodeKind.SESSION), content, {}, None, node_id)
                )
            else:
                # The prompt may be one this batch creates under an explicit id.
                prompt = (
                    data.draw(st.sampled_from(EXPLICIT_IDS))
                    if data.draw(st.booleans())
                    else self._pick(data, NodeKind.PROMPT)
                )
                specs.append(
                    NewNode(
                        kind,
                        None,
                        content,
                        {},
                        ResponseDetails(prompt_id=prompt, token_usage=TokenUsage(0, 2)),
                        node_id,
                    )
                )

        def in_model(m: ReferenceGraph) -> list[Node]:
            got = outcome.got
            return [m.create_node(spec, got[i] if got else None) for i, spec in enumerate(specs)]

        outcome = _call(lambda: self.service.create_nodes(specs))
        expected = self._apply("create_nodes_in_one_batch", outcome, in_model)
        if expected is not None:
            assert outcome.value == expected

    @rule(
        data=st.data(),
        content=st.one_of(
            st.none(),
            mostly([None], [[("text", "  ", "")]], odds=6).flatmap(
                lambda blank: st.just(blank) if blank else segments_st(["a", "b", "c"])
            ),
        ),
        metadata=st.one_of(st.none(), metadata_st),
    )
    def update_node(
        self, data: st.DataObject, content: list[Segment] | None, metadata: dict[str, str] | None
    ) -> None:
        node_id = self._pick(data)
        text = render_segments(content) if content is not None else None
        outcome = _call(lambda: self.service.update_node(node_id, content=text, metadata=metadata))
        expected = self._apply(
            "update_node", outcome, lambda m: m.update_node(node_id, content, metadata, outcome.got)
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def delete_node(self, data: st.DataObject) -> None:
        node_id = self._pick(data, *(kind for kind in NodeKind if kind is not NodeKind.SESSION))
        outcome = _call(lambda: self.service.delete_node(node_id))
        expected = self._apply("delete_node", outcome, lambda m: m.delete_node(node_id))
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def get_nodes(self, data: st.DataObject) -> None:
        ids = [self._pick(data) for _ in range(data.draw(st.integers(0, 4)))]
        assert self.service.get_nodes(ids) == self.model.get_nodes(ids)

    # -- edges -----------------------------------------------------------------------------------

    @rule(data=st.data(), kind=st.sampled_from(list(EdgeKind)), metadata=metadata_st)
    def create_edge(self, data: st.DataObject, kind: EdgeKind, metadata: dict[str, str]) -> None:
        spec = NewEdge(self._pick(data), self._pick(data), kind, metadata)
        outcome = _call(lambda: self.service.create_edge(spec))
        expected = self._apply("create_edge", outcome, lambda m: m.create_edge(spec, outcome.got))
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data())
    def delete_edge(self, data: st.DataObject) -> None:
        edges = list(self.model.edges)
        if edges and data.draw(st.integers(0, 4)):
            source, kind, target = edges[data.draw(st.integers(0, len(edges) - 1))]
        else:
            source, kind, target = (
                self._pick(data),
                data.draw(st.sampled_from(list(EdgeKind))),
                self._pick(data),
            )
        outcome = _call(lambda: self.service.delete_edge(source, target, kind))
        self._apply("delete_edge", outcome, lambda m: m.delete_edge((source, kind, target)))

    @rule(data=st.data(), direction=directions, kinds=edge_kinds_st)
    def get_edges(self, data: st.DataObject, direction: Direction, kinds: set[EdgeKind]) -> None:
        node_id = self._pick(data)
        outcome = _call(lambda: self.service.get_edges(node_id, direction, sorted(kinds)))
        expected = self._apply(
            "get_edges", outcome, lambda m: m.edges_of(node_id, direction, kinds)
        )
        if expected is None:
            return
        got = outcome.value
        assert got is not None
        keys = [e.key for e in got]
        assert len(keys) == len(set(keys)), "an edge was listed twice"
        assert sorted(keys) == sorted(e.key for e in expected)
        assert all(e == self.model.edges[e.key] for e in got)
        if direction is Direction.BOTH:
            outgoing = [e.source_id == node_id for e in got]
            assert outgoing == sorted(outgoing, reverse=True), "outgoing edges come first"

    @rule(
        data=st.data(),
        direction=directions,
        kinds=edge_kinds_st,
        max_depth=st.sampled_from([0, 1, 1, 2, 2, 3, 11, -1]),
        max_nodes=st.sampled_from([0, 0, 0, 1, 2, 3, -1]),
    )
    def traverse(
        self,
        data: st.DataObject,
        direction: Direction,
        kinds: set[EdgeKind],
        max_depth: int,
        max_nodes: int,
    ) -> None:
        start = self._pick(data)
        outcome = _call(
            lambda: self.service.traverse(
                start,
                edge_kinds=sorted(kinds),
                direction=direction,
                max_depth=max_depth,
                max_nodes=max_nodes,
            )
        )
        expected = self._apply(
            "traverse", outcome, lambda m: m.traverse(start, kinds, direction, max_depth, max_nodes)
        )
        if expected is None:
            return
        distance, followed = expected
        result = outcome.value
        assert result is not None
        ids = [node.id for node, _ in result.nodes]
        assert len(ids) == len(set(ids)), "a node was visited twice"
        assert result.nodes[0] == (self.model.nodes[start], 0)
        depths = [depth for _, depth in result.nodes]
        assert depths == sorted(depths), "breadth-first order"
        assert all(distance.get(n.id) == d and n == self.model.nodes[n.id] for n, d in result.nodes)
        limit = max_nodes or 1000
        assert result.truncated == (len(distance) > limit)
        if result.truncated:
            assert len(ids) == limit
        else:
            assert set(ids) == set(distance)
            assert sorted(e.key for e in result.edges) == sorted(followed)

    # -- templates -------------------------------------------------------------------------------

    @rule(data=st.data(), name=template_name_st, metadata=metadata_st)
    def create_template(self, data: st.DataObject, name: str, metadata: dict[str, str]) -> None:
        variables = data.draw(st.lists(variable_st, max_size=3, unique_by=lambda v: v.name))
        if variables and data.draw(st.integers(0, 14)) == 0:
            variables.append(variables[0])  # declared twice
        segments = data.draw(segments_st([v.name for v in variables]))
        template_id = self._explicit_id(data)
        outcome = _call(
            lambda: self.service.templates.create(
                name=name,
                content=render_segments(segments),
                variables=[
                    TemplateVariable(v.name, v.description, v.required, v.default_value, v.pattern)
                    for v in variables
                ],
                metadata=metadata,
                template_id=template_id,
            )
        )
        expected = self._apply(
            "create_template",
            outcome,
            lambda m: m.create_template(
                name, segments, variables, metadata, template_id, outcome.got
            ),
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(
        data=st.data(),
        by=mostly(["id", "id", "name"], ["neither"]),
        prompt=st.sampled_from([PromptDetails(), PromptDetails(model="m2", role="user")]),
        metadata=metadata_st,
    )
    def instantiate_template(
        self, data: st.DataObject, by: str, prompt: PromptDetails, metadata: dict[str, str]
    ) -> None:
        template_id = self._pick(data, NodeKind.TEMPLATE) if by == "id" else None
        name = data.draw(template_name_st) if by == "name" else ""
        template = self.model.nodes.get(template_id or b"")
        if template is None and name:
            template = next(
                (
                    n
                    for n in self.model.nodes.values()
                    if n.kind is NodeKind.TEMPLATE and n.details_as(TemplateDetails).name == name
                ),
                None,
            )
        values: dict[str, str] = {}
        declared = (
            template.details_as(TemplateDetails).variables
            if template is not None and template.kind is NodeKind.TEMPLATE
            else ()
        )
        for variable in declared:
            if data.draw(st.integers(0, 3)):
                fits = {"[0-9]+": "42", "[a-z]+": "abc"}.get(variable.pattern, "hello")
                values[variable.name] = data.draw(mostly([fits], ["X", ""], odds=8))
        if data.draw(st.integers(0, 11)) == 0:
            values["z"] = "undeclared"
        session_id = self._maybe(data, NodeKind.SESSION, chance=2)
        outcome = _call(
            lambda: self.service.templates.instantiate(
                template_id=template_id,
                name=name,
                values=values,
                session_id=session_id,
                prompt=prompt,
                metadata=metadata,
            )
        )
        got = outcome.got
        expected = self._apply(
            "instantiate_template",
            outcome,
            lambda m: m.instantiate(
                template_id,
                name,
                values,
                session_id,
                prompt,
                metadata,
                got[1] if got else None,
            ),
        )
        if expected is not None:
            assert outcome.value == expected

    @rule(data=st.data(), by_name=st.booleans())
    def get_template(self, data: st.DataObject, by_name: bool) -> None:
        template_id = None if by_name else self._pick(data, NodeKind.TEMPLATE)
        name = data.draw(template_name_st) if by_name else ""
        outcome = _call(lambda: self.service.templates.get(template_id=template_id, name=name))
        expected = self._apply("get_template", outcome, lambda m: m.get_template(template_id, name))
        if expected is not None:
            assert outcome.value == expected

    # -- queries ---------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        kinds=st.one_of(st.just(set()), st.sets(st.sampled_from(list(NodeKind)), max_size=3)),
        metadata=mostly([{}], [{"k1": "a"}, {"k2": "b"}], odds=4),
        descending=st.booleans(),
        limit=st.sampled_from([1, 2, 1, 2, 3, 0]),
        batch_size=st.integers(1, 3),
    )
    def query(
        self,
        data: st.DataObject,
        kinds: set[NodeKind],
        metadata: dict[str, str],
        descending: bool,
        limit: int,
        batch_size: int,
    ) -> None:
        session_id = self._maybe(data, NodeKind.SESSION, chance=2)
        times = self._times()
        start = data.draw(mostly([0], times, odds=3))
        end = data.draw(mostly([MAX_TIME], [t for t in times if t >= start], odds=3))
        query = QueryFilter(
            session_id, frozenset(kinds), start, end, tuple(sorted(metadata.items())), descending
        )
        expected = self.model.query(
            session_id, frozenset(kinds), start, end, query.metadata, descending
        )
        want = limit or 100
        pages: list[list[Node]] = []
        token = ""
        while True:
            page = self.service.query(query, limit=limit, page_token=token)
            nodes = _nodes(page.records)
            pages.append(nodes)
            assert len(nodes) <= want
            if not page.next_page_token:
                break
            assert len(nodes) == want, "only the last page may be short"
            assert len(pages) <= len(expected) + 1, "paging does not end"
            token = page.next_page_token
        assert [n for p in pages for n in p] == expected
        event(f"query: {'some' if expected else 'no'} results, {len(pages)} pages")
        if not metadata and len(pages) > 1:
            assert pages[-1], "a token was handed out with nothing after it"
        stream_limit = data.draw(st.integers(0, 4))
        batches = list(self.service.stream_query(query, batch_size=batch_size, limit=stream_limit))
        streamed = [node for batch in batches for node in _nodes(batch)]
        assert streamed == expected[: stream_limit or None]
        assert all(0 < len(b) <= batch_size for b in batches)
        assert all(len(b) == batch_size for b in batches[:-1])

    @rule(
        state=st.sampled_from([None, SessionState.ACTIVE, SessionState.CLOSED]),
        user_id=st.sampled_from(["", "ann", "bob"]),
        limit=st.sampled_from([0, 1, 2]),
    )
    def list_sessions(self, state: SessionState | None, user_id: str, limit: int) -> None:
        expected = self.model.sessions(state.value if state else None, user_id)
        found: list[Node] = []
        token = ""
        for _ in range(len(expected) + 2):
            page = self.service.list_sessions(
                limit=limit, page_token=token, state=state, user_id=user_id
            )
            assert len(page.nodes) <= (limit or 100)
            found += page.nodes
            token = page.next_page_token
            if not token:
                break
        assert not token, "paging does not end"
        assert found == expected
        event(f"list_sessions: {'some' if expected else 'no'} results")

    # -- restarts --------------------------------------------------------------------------------

    @precondition(lambda self: self.engine == "rocks")
    @rule()
    def restart(self) -> None:
        event("restart")
        counts, sequence = self.store.counts(), self.store.events.last_sequence
        self.store.close()
        self.store = self._open()
        self.service = GraphService(self.store, clock=self.clock)
        assert self.store.counts() == counts
        assert self.store.events.last_sequence == sequence

    # -- after every step ------------------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        model, kv = self.model, self.store.kv
        for node_id, node in model.nodes.items():
            assert self.service.get_node(node_id) == node
        for node_id in self.gone:
            if node_id not in model.nodes:
                with pytest.raises(NotFound):
                    self.service.get_node(node_id)
        assert list(_raw(kv, "nodes")) == sorted(model.nodes)
        layout = _expected_layout(model)
        for cf, entries in layout.items():
            assert _raw(kv, cf) == entries, f"column family {cf} disagrees with the model"
        out = _raw(kv, "edges_out")
        assert sorted(out) == sorted(s + bytes([EDGE_KIND_CODES[k]]) + t for s, k, t in model.edges)
        for edge in model.edges.values():
            assert self.store.get_edge(edge.key) == edge
            assert edge.source_id in model.nodes and edge.target_id in model.nodes
        counts = model.counts()
        assert self.store.counts() == counts
        assert Counters(kv).snapshot() == counts, "the persisted counts disagree"


ENGINE_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["memory", "rocks"])
def test_graph_service_agrees_with_the_reference_model(engine: str, tmp_path: Path) -> None:
    run_state_machine_as_test(
        lambda: GraphServiceMachine(engine, tmp_path), settings=ENGINE_SETTINGS
    )
