"""The KeyValueStore protocol on both engines: order, bounds, reverse scans, batches, close."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memorygraph.store import KeyValueStore
from memorygraph.store.keys import COLUMN_FAMILIES
from memorygraph.store.rocks import (
    MAX_WAL_BYTES,
    MIN_BLOB_BYTES,
    RECYCLED_WAL_FILES,
    RocksStore,
    reused_a_log_file,
)

from .store_support import EVERYTHING, Engine, _all

CF = "nodes"
OTHER_CF = "meta"


def _keys(
    kv: KeyValueStore, cf: str, start: bytes, end: bytes, *, reverse: bool = False
) -> list[bytes]:
    return [k for k, _ in kv.scan(cf, start, end, reverse=reverse)]


def test_get_returns_none_for_a_missing_key_and_the_value_once_written(kv: KeyValueStore) -> None:
    assert kv.get(CF, b"a") is None
    kv.write([(CF, b"a", b"1")], sync=True)
    assert kv.get(CF, b"a") == b"1"
    assert kv.get(CF, b"a\x00") is None


def test_empty_value_is_stored_and_differs_from_a_missing_key(kv: KeyValueStore) -> None:
    kv.write([(CF, b"k", b"")], sync=False)
    assert kv.get(CF, b"k") == b""
    assert kv.multi_get(CF, [b"k", b"j"]) == [b"", None]
    assert _all(kv, CF) == [(b"k", b"")]


def test_overwrite_replaces_the_value_without_a_second_entry(kv: KeyValueStore) -> None:
    kv.write([(CF, b"k", b"old")], sync=False)
    kv.write([(CF, b"k", b"new")], sync=False)
    assert kv.get(CF, b"k") == b"new"
    assert _all(kv, CF) == [(b"k", b"new")]


def test_scan_returns_keys_in_byte_order_whatever_the_write_order(kv: KeyValueStore) -> None:
    keys = [b"b", b"a\xff", b"a", b"\x00", b"ab", b"a\x00", b"\xff\xff", b"B", b"aa"]
    kv.write([(CF, k, k[::-1]) for k in keys], sync=False)
    assert _all(kv, CF) == [(k, k[::-1]) for k in sorted(keys)]
    assert _all(kv, CF, reverse=True) == [(k, k[::-1]) for k in sorted(keys, reverse=True)]


def test_scan_keys_lists_what_scan_lists_without_the_values(kv: KeyValueStore) -> None:
    kv.write([(CF, bytes([i]) * (i % 3 + 1), b"v" * i) for i in range(40)], sync=False)
    for start, end in (EVERYTHING, (b"\x03", b"\x20"), (b"\x05\x00", b"\x05\x05")):
        for reverse in (False, True):
            expected = [k for k, _ in kv.scan(CF, start, end, reverse=reverse)]
            assert list(kv.scan_keys(CF, start, end, reverse=reverse)) == expected


def test_scan_chunks_lists_what_scan_lists_a_list_at_a_time(kv: KeyValueStore) -> None:
    kv.write([(CF, i.to_bytes(2), b"v") for i in range(3000)], sync=False)
    for start, end in (EVERYTHING, (b"\x00\x05", b"\x0a\x00")):
        for reverse in (False, True):
            chunks = list(kv.scan_chunks(CF, start, end, reverse=reverse, first=3))
            assert len(chunks[0]) == 3 and all(chunks)
            flat = [pair for chunk in chunks for pair in chunk]
            assert flat == list(kv.scan(CF, start, end, reverse=reverse))
    assert list(kv.scan_chunks(CF, b"\xff", b"\xff\xff")) == []


def test_scan_value_chunks_lists_the_values_of_an_ascending_scan(kv: KeyValueStore) -> None:
    # More entries than any internal read chunk; each value names its key, as a record names
    # the node it is stored under.
    stored = {i.to_bytes(2): b"value of %d" % i for i in range(3000)}
    kv.write([(CF, key, value) for key, value in stored.items()], sync=False)
    key_of = {value: key for key, value in stored.items()}

    def resume(value: bytes) -> bytes:
        return key_of[value] + b"\x00"

    for start, end in (EVERYTHING, (b"\x00\x05", b"\x0a\x00")):
        chunks = list(kv.scan_value_chunks(CF, start, end, resume=resume, first=3))
        assert len(chunks[0]) == 3 and all(chunks)
        assert [v for chunk in chunks for v in chunk] == [v for _, v in kv.scan(CF, start, end)]
    assert list(kv.scan_value_chunks(CF, b"\xff", b"\xff\xff", resume=resume)) == []


def test_a_value_scan_that_would_not_move_on_fails_instead_of_repeating(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "db")
    try:
        store.write([(CF, i.to_bytes(2), b"v") for i in range(100)], sync=False)
        scan = store.scan_value_chunks(CF, *EVERYTHING, resume=lambda value: b"", first=3)
        assert next(scan) == [b"v"] * 3
        with pytest.raises(ValueError, match="cannot go on"):
            next(scan)
    finally:
        store.close()


def test_scan_includes_start_and_excludes_end(kv: KeyValueStore) -> None:
    kv.write([(CF, bytes([i]), b"v") for i in range(10)], sync=False)
    assert _keys(kv, CF, b"\x03", b"\x06") == [b"\x03", b"\x04", b"\x05"]
    assert _keys(kv, CF, b"\x03", b"\x06", reverse=True) == [b"\x05", b"\x04", b"\x03"]
    # Bounds need not be keys that exist.
    assert _keys(kv, CF, b"\x02\x00", b"\x04\x00") == [b"\x03", b"\x04"]
    assert _keys(kv, CF, b"\x02\x00", b"\x04\x00", reverse=True) == [b"\x04", b"\x03"]


def test_scan_of_an_empty_or_inverted_range_yields_nothing(kv: KeyValueStore) -> None:
    kv.write([(CF, bytes([i]), b"v") for i in range(5)], sync=False)
    for reverse in (False, True):
        assert _keys(kv, CF, b"\x02", b"\x02", reverse=reverse) == []
        assert _keys(kv, CF, b"\x04", b"\x01", reverse=reverse) == []
        assert _keys(kv, CF, b"\x09", b"\x0a", reverse=reverse) == []


def test_long_scans_are_complete_and_ordered_both_ways(kv: KeyValueStore) -> None:
    # More keys than any internal read chunk, so continuation between chunks is exercised.
    keys = [i.to_bytes(2) for i in range(0, 6000, 2)]
    kv.write([(CF, k, b"x") for k in keys], sync=False)
    assert _keys(kv, CF, *EVERYTHING) == keys
    assert _keys(kv, CF, *EVERYTHING, reverse=True) == keys[::-1]
    lower, upper = (1001).to_bytes(2), (4001).to_bytes(2)
    inside = [k for k in keys if lower <= k < upper]
    assert _keys(kv, CF, lower, upper) == inside
    assert _keys(kv, CF, lower, upper, reverse=True) == inside[::-1]


def test_a_scan_can_stop_early(kv: KeyValueStore) -> None:
    kv.write([(CF, i.to_bytes(2), b"x") for i in range(100)], sync=False)
    scan = kv.scan(CF, *EVERYTHING, reverse=True)
    assert [next(scan)[0] for _ in range(3)] == [
        (99).to_bytes(2),
        (98).to_bytes(2),
        (97).to_bytes(2),
    ]


def test_column_families_are_independent_key_spaces(kv: KeyValueStore) -> None:
    kv.write([(cf, b"same", cf.encode()) for cf in COLUMN_FAMILIES], sync=False)
    for cf in COLUMN_FAMILIES:
        assert _all(kv, cf) == [(b"same", cf.encode())]
    kv.write([(CF, b"same", None)], sync=False)
    assert kv.get(CF, b"same") is None
    assert kv.get(OTHER_CF, b"same") == OTHER_CF.encode()


def test_multi_get_answers_in_request_order_with_none_for_missing(kv: KeyValueStore) -> None:
    kv.write([(CF, b"a", b"1"), (CF, b"c", b"3")], sync=False)
    assert kv.multi_get(CF, [b"c", b"b", b"a", b"c"]) == [b"3", None, b"1", b"3"]
    assert kv.multi_get(CF, []) == []
    assert kv.multi_get(OTHER_CF, [b"a"]) == [None]


def test_a_batch_applies_puts_and_deletes_together(kv: KeyValueStore) -> None:
    kv.write([(CF, b"a", b"1"), (CF, b"b", b"2")], sync=True)
    kv.write(
        [(CF, b"a", None), (CF, b"c", b"3"), (OTHER_CF, b"x", b"y"), (CF, b"missing", None)],
        sync=True,
    )
    assert _all(kv, CF) == [(b"b", b"2"), (b"c", b"3")]
    assert _all(kv, OTHER_CF) == [(b"x", b"y")]


def test_deleting_a_missing_key_is_not_an_error(kv: KeyValueStore) -> None:
    kv.write([(CF, b"never", None)], sync=False)
    assert _all(kv, CF) == []


def test_later_ops_on_the_same_key_win_within_a_batch(kv: KeyValueStore) -> None:
    kv.write([(CF, b"k", b"1"), (CF, b"k", None)], sync=False)
    assert kv.get(CF, b"k") is None
    kv.write([(CF, b"k", None), (CF, b"k", b"2"), (CF, b"k", b"3")], sync=False)
    assert _all(kv, CF) == [(b"k", b"3")]


def test_a_batch_naming_an_unknown_column_family_applies_nothing(kv: KeyValueStore) -> None:
    kv.write([(CF, b"keep", b"1")], sync=False)
    with pytest.raises(KeyError):
        kv.write([(CF, b"new", b"1"), (CF, b"keep", None), ("no_such_cf", b"k", b"v")], sync=True)
    assert _all(kv, CF) == [(b"keep", b"1")]


def test_an_empty_batch_changes_nothing(kv: KeyValueStore) -> None:
    kv.write([(CF, b"a", b"1")], sync=False)
    kv.write([], sync=True)
    assert _all(kv, CF) == [(b"a", b"1")]


def test_delete_range_removes_exactly_the_keys_in_range(kv: KeyValueStore) -> None:
    kv.write([(CF, bytes([i]), b"v") for i in range(10)], sync=False)
    kv.write([(OTHER_CF, bytes([i]), b"v") for i in range(10)], sync=False)
    kv.delete_range(CF, b"\x02", b"\x07")
    assert _keys(kv, CF, *EVERYTHING) == [bytes([i]) for i in (0, 1, 7, 8, 9)]
    assert _keys(kv, CF, *EVERYTHING, reverse=True) == [bytes([i]) for i in (9, 8, 7, 1, 0)]
    assert kv.get(CF, b"\x04") is None
    assert len(_all(kv, OTHER_CF)) == 10
    kv.write([(CF, b"\x04", b"back")], sync=False)
    assert kv.get(CF, b"\x04") == b"back"


def test_sync_wal_keeps_every_write_readable(kv: KeyValueStore) -> None:
    kv.write([(CF, b"a", b"1")], sync=False)
    kv.sync_wal()
    assert kv.get(CF, b"a") == b"1"


def test_size_grows_as_data_is_written(kv: KeyValueStore) -> None:
    before = kv.size_bytes()
    kv.write([(CF, i.to_bytes(4), b"v" * 1000) for i in range(200)], sync=True)
    assert kv.size_bytes() > before
    assert kv.size_bytes() > 0


def test_a_closed_store_refuses_reads_and_writes(engine: Engine) -> None:
    kv = engine.open()
    kv.write([(CF, b"a", b"1")], sync=True)
    kv.close()
    with pytest.raises(RuntimeError, match="closed"):
        kv.get(CF, b"a")
    with pytest.raises(RuntimeError, match="closed"):
        kv.multi_get(CF, [b"a"])
    with pytest.raises(RuntimeError, match="closed"):
        list(kv.scan(CF, *EVERYTHING))
    with pytest.raises(RuntimeError, match="closed"):
        kv.write([(CF, b"b", b"2")], sync=False)
    with pytest.raises(RuntimeError, match="closed"):
        kv.delete_range(CF, *EVERYTHING)
    with pytest.raises(RuntimeError, match="closed"):
        kv.sync_wal()
    kv.close()  # closing again is harmless: shutdown paths may get there twice


def test_rocks_store_keeps_synced_and_unsynced_writes_across_a_clean_reopen(
    tmp_path: Path,
) -> None:
    kv = RocksStore(tmp_path / "db")
    kv.write([(CF, b"synced", b"1")], sync=True)
    kv.write([(CF, b"unsynced", b"2"), (OTHER_CF, b"m", b"3")], sync=False)
    kv.write([(CF, b"gone", b"x")], sync=False)
    kv.write([(CF, b"gone", None)], sync=False)
    kv.close()
    kv = RocksStore(tmp_path / "db")
    try:
        assert _all(kv, CF) == [(b"synced", b"1"), (b"unsynced", b"2")]
        assert _all(kv, OTHER_CF) == [(b"m", b"3")]
    finally:
        kv.close()


@pytest.mark.slow
def test_rocks_store_write_ahead_log_stays_bounded_and_reuses_its_files(tmp_path: Path) -> None:
    kv = RocksStore(tmp_path / "db")
    value = b"v" * (1 << 20)
    writes = 6 * MAX_WAL_BYTES // len(value)  # six logs' worth
    try:
        for i in range(writes):
            # A family written a little at a time holds on to every log its writes are in
            # until something makes it flush.
            kv.write([(CF, b"%06d" % i, value), (OTHER_CF, b"%06d" % i, b"m")], sync=False)
        kv.sync_wal()
        logs = list((tmp_path / "db").glob("*.log"))
        # The live log (a write past the limit starts the next one) and the files kept for
        # reuse, each about the limit.
        assert sum(log.stat().st_size for log in logs) <= (2 + RECYCLED_WAL_FILES) * (
            MAX_WAL_BYTES + 2 * len(value)
        )
        assert reused_a_log_file(tmp_path / "db")
        last = b"%06d" % (writes - 1)
        assert kv.get(CF, last) == value and kv.get(CF, b"000000") == value
        assert len(_all(kv, OTHER_CF)) == writes
    finally:
        kv.close()


def test_rocks_store_keeps_large_values_apart_and_counts_them_in_its_size(tmp_path: Path) -> None:
    # Values of MIN_BLOB_BYTES and more go to blob files once flushed (here: by the reopen).
    kv = RocksStore(tmp_path / "db")
    large = {b"%03d" % i: os.urandom(MIN_BLOB_BYTES * 8) for i in range(64)}
    small = {b"%03d" % i: b"s%d" % i for i in range(64, 128)}
    kv.write([(CF, key, value) for key, value in (large | small).items()], sync=True)
    kv.close()
    kv = RocksStore(tmp_path / "db")
    try:
        assert dict(_all(kv, CF)) == large | small
        assert [k for k, _ in kv.scan(CF, *EVERYTHING, reverse=True)][:2] == [b"127", b"126"]
        assert list((tmp_path / "db").glob("*.blob"))
        # Random bytes do not compress: the size counts every large value.
        assert kv.size_bytes() >= sum(len(value) for value in large.values())
    finally:
        kv.close()


_short_keys = st.binary(min_size=0, max_size=4)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(_short_keys, st.one_of(st.none(), st.binary(max_size=3))), max_size=8),
        max_size=6,
    ),
    bounds=st.lists(st.tuples(_short_keys, _short_keys), min_size=1, max_size=4),
)
def test_scans_agree_with_a_sorted_dict_for_any_writes(
    kv: KeyValueStore,
    batches: list[list[tuple[bytes, bytes | None]]],
    bounds: list[tuple[bytes, bytes]],
) -> None:
    kv.delete_range(CF, *EVERYTHING)  # the store is shared by every example of this test
    expected: dict[bytes, bytes] = {}
    for batch in batches:
        kv.write([(CF, k, v) for k, v in batch], sync=False)
        for k, v in batch:
            if v is None:
                expected.pop(k, None)
            else:
                expected[k] = v
    assert _all(kv, CF) == sorted(expected.items())
    for start, end in bounds:
        inside = sorted((k, v) for k, v in expected.items() if start <= k < end)
        assert list(kv.scan(CF, start, end)) == inside
        assert list(kv.scan(CF, start, end, reverse=True)) == inside[::-1]
    probe = [k for batch in batches for k, _ in batch]
    assert kv.multi_get(CF, probe) == [expected.get(k) for k in probe]
