"""Ids: UUIDv8 carrying a shard tag, strictly increasing within a process, unique across
processes; the tag of any other id is a hash anyone can compute."""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from memorygraph.errors import InvalidArgument
from memorygraph.model import format_id, id_tag, new_id, parse_id

TAGS = st.integers(min_value=0, max_value=0xFFFF)


def test_ids_are_version_8_and_strictly_increasing() -> None:
    ids = [new_id() for _ in range(20_000)]  # many share a millisecond
    assert all(a < b for a, b in itertools.pairwise(ids))
    for raw in ids[:100]:
        parsed = uuid.UUID(bytes=raw)
        assert parsed.version == 8
        assert parsed.variant == uuid.RFC_4122
        assert format_id(raw) == str(parsed)
        assert parse_id(format_id(raw), "node_id") == raw


@given(tags=st.lists(TAGS, min_size=2, max_size=50))
def test_an_id_carries_the_tag_it_was_made_with_in_bytes_10_and_11(tags: list[int]) -> None:
    ids = [new_id(tag) for tag in tags]
    assert [id_tag(raw) for raw in ids] == tags
    assert [int.from_bytes(raw[10:12]) for raw in ids] == tags
    assert all(a < b for a, b in itertools.pairwise(ids))  # the tag does not disturb the order
    assert all(uuid.UUID(bytes=raw).version == 8 for raw in ids)


def test_ids_made_without_a_tag_spread_over_every_tag() -> None:
    tags = {id_tag(new_id()) for _ in range(200_000)}
    assert len(tags) > 0.9 * 0x10000  # 200,000 draws from 65,536 tags cover ~95% of them


@given(raw=st.uuids().map(lambda u: u.bytes))
def test_the_tag_of_any_other_id_is_the_start_of_its_sha256(raw: bytes) -> None:
    parsed = uuid.UUID(bytes=raw)
    if parsed.version == 8 and parsed.variant == uuid.RFC_4122:
        assert id_tag(raw) == int.from_bytes(raw[10:12])  # whoever made it
    else:
        assert id_tag(raw) == int.from_bytes(hashlib.sha256(raw).digest()[:2])


def test_a_uuidv8_of_another_variant_is_hashed() -> None:
    raw = uuid.UUID("01234567-89ab-8def-c123-456789abcdef").bytes  # variant 110: Microsoft's
    assert id_tag(raw) == int.from_bytes(hashlib.sha256(raw).digest()[:2])
    assert id_tag(uuid.UUID("01234567-89ab-8def-8123-456789abcdef").bytes) == 0x4567


def test_the_documented_tag_of_a_uuidv7() -> None:
    # The example in the docs, for clients written in other languages.
    raw = parse_id("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "session_id")
    assert id_tag(raw) == 39943 == 0x9C07


def test_random_bits_differ_between_ids_of_one_millisecond() -> None:
    ids = [new_id(7) for _ in range(1000)]
    assert len({raw[8:] for raw in ids}) == len(ids)


def test_a_forked_child_does_not_repeat_the_parents_random_bits() -> None:
    new_id()  # the parent has random bits buffered
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id())
        os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert child[8:] != new_id()[8:]


def test_bad_ids_are_rejected_with_the_field_name() -> None:
    with pytest.raises(InvalidArgument, match="session_id 'abc' is not a valid id"):
        parse_id("abc", "session_id")
    with pytest.raises(InvalidArgument, match="session_id is required"):
        parse_id("", "session_id")
