"""Node ids: UUIDv7, strictly increasing within a process, unique across processes."""

from __future__ import annotations

import itertools
import os
import uuid

import pytest
from memorygraph.errors import InvalidArgument
from memorygraph.model import format_id, new_id, parse_id


def test_ids_are_version_7_and_strictly_increasing() -> None:
    ids = [new_id() for _ in range(20_000)]  # many share a millisecond
    assert all(a < b for a, b in itertools.pairwise(ids))
    for raw in ids[:100]:
        parsed = uuid.UUID(bytes=raw)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert format_id(raw) == str(parsed)
        assert parse_id(format_id(raw), "node_id") == raw


def test_random_bits_differ_between_ids_of_one_millisecond() -> None:
    ids = [new_id() for _ in range(1000)]
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
