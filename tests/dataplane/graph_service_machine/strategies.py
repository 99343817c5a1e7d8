"""What the state machine draws requests from: mostly valid values, sometimes refused ones."""

from __future__ import annotations

from typing import TypeVar

from hypothesis import strategies as st
from memorygraph.model import Direction, EdgeKind

from ..reference_graph import Segment, Variable

T = TypeVar("T")


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
