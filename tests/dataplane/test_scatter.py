"""Merging the workers' pages of a listing over every shard (`graph.scatter`): paging through the
merged listing gives every item once, in order, whatever each worker's pages hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from memorygraph.graph.scatter import Part, merge_pages

Position = tuple[int, bytes]


def _page(items: list[Position], after: Position | None, want: int, cut: int, descending: bool):  # type: ignore[no-untyped-def]
    """A worker's page: its items past `after`, at most `want`, fewer when a budget cut it at
    `cut` items (then it says where it stopped)."""
    ordered = sorted(items, reverse=descending)
    if after is not None:
        ordered = [p for p in ordered if (p < after if descending else p > after)]
    taken = ordered[: min(want, cut)]
    more = len(ordered) > len(taken)
    return Part([(p, p) for p in taken], taken[-1] if more and taken else None)


positions = st.tuples(st.integers(0, 30), st.binary(min_size=1, max_size=1))


@settings(max_examples=300, deadline=None)
@given(
    workers=st.lists(st.sets(positions, max_size=12), min_size=1, max_size=4),
    want=st.integers(1, 5),
    cuts=st.lists(st.integers(1, 5), min_size=40, max_size=40),
    descending=st.booleans(),
)
def test_paging_the_merged_listing_gives_every_item_once_in_order(
    workers: list[set[Position]], want: int, cuts: list[int], descending: bool
) -> None:
    expected = sorted(set().union(*workers), reverse=descending)
    # Items on two workers would be one item twice: each position lives on one worker.
    seen: set[Position] = set()
    owned = []
    for items in workers:
        owned.append([p for p in items if p not in seen])
        seen.update(items)
    found: list[Position] = []
    after: Position | None = None
    for call in range(len(cuts) // len(owned)):
        parts = [
            _page(items, after, want, cuts[call * len(owned) + i], descending)
            for i, items in enumerate(owned)
        ]
        page, after = merge_pages(parts, want, descending=descending)
        assert len(page) <= want
        found += page
        if after is None:
            break
    else:
        return  # many short pages in a row: not enough calls to finish (never wrong so far)
    assert found == expected


def test_a_worker_cut_short_bounds_the_merged_page() -> None:
    """Worker A stopped at 9 (its budget), B has 8..5: nothing past 9 may be handed out yet,
    since A may hold positions between 9 and 8."""
    a = Part([((10, b"a"), "a10"), ((9, b"a"), "a9")], (9, b"a"))
    b = Part([((8, b"b"), "b8"), ((7, b"b"), "b7"), ((6, b"b"), "b6")], (6, b"b"))
    page, after = merge_pages([a, b], 4, descending=True)
    assert (page, after) == (["a10", "a9"], (9, b"a"))


def test_a_byte_budget_cuts_the_merged_page_after_one_item_at_least() -> None:
    a = Part([((1, b"a"), b"x" * 10), ((3, b"a"), b"x" * 10)], None)
    b = Part([((2, b"b"), b"y" * 10)], None)
    page, after = merge_pages([a, b], 5, descending=False, size=len, max_bytes=2 * (10 + 6))
    assert (page, after) == ([b"x" * 10, b"y" * 10], (2, b"b"))
    page, after = merge_pages([a, b], 5, descending=False, size=len, max_bytes=1)
    assert (page, after) == ([b"x" * 10], (1, b"a"))
