"""Functions as segments: the bytes round-trip whatever the strings or are refused; writers with caches of their own
(replicas, worker processes) never store one function twice; a reader finds what another process appended;
nothing is kept from a rolled-back append; on both databases."""

from __future__ import annotations

import random
import threading
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from server.pprof.decode import decode_columns
from server.store import symbols
from server.store.appends import Appends, EpochMoved
from server.store.check import check_store
from server.store.database import make_engine
from server.store.dedup import Dedup
from server.store.gc import collect_garbage
from server.store.repository import Store
from server.store.stackcodec import CorruptSegment
from server.store.symbols import FunctionKey, FunctionTable
from tests.support.tools import DATA

ODD: list[FunctionKey] = [
    ("main.main", "main.main", "/src/main.go"),
    ("", "", ""),  # every string empty
    ("a\x00b", "a\x00b", "nul\x00.go"),  # a NUL is a character like any other: lengths delimit the strings
    ("std::vector<int>::push_back", "_ZNSt6vectorIiSaIiEE9push_backEOi", "/usr/include/c++/12/bits/stl_vector.h"),
    ("ünïcödé.函数", "ünïcödé.函数", "路径/文件.go"),
    ("\ud800lone", "\ud800lone", "surrogate.go"),  # not valid UTF-8 on its own: kept as Python holds it
    ("[libc.so.6]", "", ""),  # an unsymbolized frame: a system name that differs (empty)
]


def _keys(count: int, seed: int) -> list[FunctionKey]:
    rng = random.Random(seed)
    packages = [f"example.com/svc/internal/p{n}" for n in range(12)]
    found: set[FunctionKey] = set()
    while len(found) < count:
        package = rng.choice(packages)
        name = f"{package}.F{rng.randrange(10**6)}"
        found.add((name, name, f"{package}/f{rng.randrange(40)}.go"))
    return sorted(found)


def test_segments_round_trip_whatever_their_strings() -> None:
    keys = ODD + _keys(3000, 1)
    lines = [random.Random(2).randrange(-5, 10**7) for _ in keys]
    ids = np.cumsum(np.array([random.Random(3).randrange(1, 4) for _ in keys], dtype=np.int64)) + 10**10
    rows = symbols.FunctionRows(ids, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], np.array(lines))
    data = symbols.encode(rows)
    back = symbols.decode(data)
    assert back.ids.tolist() == ids.tolist()
    assert back.keys() == keys and back.start_lines.tolist() == lines
    assert len(data) < sum(len(k[0]) for k in keys) // 4  # names of one package side by side compress well


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda d: d[:5], "shorter than its header"),
        (lambda d: b"XX" + d[2:], "not a function segment"),
        (lambda d: d[:4] + (10**6).to_bytes(4, "little") + d[8:], "cut short"),
        (lambda d: d[:-3], "decompress|not the size"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 0xFF]), "decompress|not the size|UTF-8"),
    ],
)
def test_damaged_segments_are_refused(damage: Any, words: str) -> None:
    data = symbols.encode(symbols.rows_of(_keys(200, 4), list(range(200)), 1))
    with pytest.raises(CorruptSegment, match=words):
        symbols.decode(damage(data))


def test_concurrent_writers_store_each_function_once(database_url: str) -> None:
    """Tables of their own on engines of their own append overlapping new functions at once: every one gets one id,
    the same for all, and a table that loaded before them all finds every one by id and by name."""
    shared = _keys(900, 5)
    reader_engine = make_engine(database_url)
    reader = FunctionTable(reader_engine)
    assert reader.names([1]) == {}  # loaded now, before any function is stored
    results: dict[int, dict[FunctionKey, int]] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(3)

    def writer(number: int) -> None:
        engine = make_engine(database_url)
        try:
            table = FunctionTable(engine)
            mine = random.Random(number).sample(shared, 600)
            start.wait()
            found: dict[FunctionKey, int] = {}
            for at in range(0, len(mine), 100):  # one transaction a batch, as a profile's
                part = mine[at : at + 100]
                found.update(zip(part, table.ids(part, [0] * len(part)), strict=True))
            results[number] = found
        except BaseException as exc:  # reported below: a thread's exception would vanish
            failures.append(exc)
            start.abort()
        finally:
            engine.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    merged: dict[FunctionKey, int] = {}
    for found in results.values():
        for key, fid in found.items():
            assert merged.setdefault(key, fid) == fid  # no writer got another id for a function
    try:
        with reader_engine.connect() as conn:
            stored = symbols.concatenate(symbols.read_segments(conn))
        assert sorted(stored.keys()) == sorted(merged) and len(set(stored.ids.tolist())) == len(merged)
        assert reader.names(merged.values()) == {fid: key[0] for key, fid in merged.items()}
        some = next(iter(merged))
        assert reader.ids_named(some[0]) == {merged[some]}
        assert reader.ids(list(merged), [0] * len(merged)) == list(merged.values())  # found, nothing appended
        report = check_store(reader_engine, blobs=False)
        assert report.ok, report.problems
    finally:
        reader_engine.dispose()


def test_a_writer_behind_another_catches_up_before_it_appends(database_url: str) -> None:
    """A table that loaded before another process appended finds that process's functions under the append lock
    and appends only the rest, in the profile's one transaction."""
    engine = make_engine(database_url)
    try:
        behind, ahead = FunctionTable(engine), FunctionTable(engine)
        behind.ids([("base", "base", "b.go")], [1])
        first = ahead.ids([("base", "base", "b.go"), ("new", "new", "n.go")], [1, 2])
        with Appends(engine) as appends:
            ids = behind.ids([("new", "new", "n.go"), ("newer", "newer", "n.go")], [2, 3], appends)
            assert behind.cached([("newer", "newer", "n.go")]) is None  # not cached before the commit
        assert ids[0] == first[1] and ids[1] == first[1] + 1
        assert behind.cached([("newer", "newer", "n.go")]) == [ids[1]]
        with engine.connect() as conn:
            assert len(symbols.concatenate(symbols.read_segments(conn))) == 3
    finally:
        engine.dispose()


def test_a_rolled_back_append_hands_out_no_id(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        table = FunctionTable(engine)
        (first,) = table.ids([("kept", "kept", "k.go")], [1])

        def fail(_conn: Any) -> None:
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

        event.listen(engine, "commit", fail)
        try:
            with pytest.raises(OperationalError):
                table.ids([("lost", "lost", "l.go")], [1])
        finally:
            event.remove(engine, "commit", fail)
        assert table.cached([("lost", "lost", "l.go")]) is None and table.names([first + 1]) == {}
        assert table.ids([("lost", "lost", "l.go")], [1]) == [first + 1]  # the id nothing ever committed
    finally:
        engine.dispose()


def test_no_function_is_appended_once_a_collection_ran(database_url: str) -> None:
    """New functions share their profile's transaction, which appends nothing once a collection ran since its ids
    were resolved: the profile is resolved again instead."""
    engine = make_engine(database_url)
    try:
        table = FunctionTable(engine)
        with pytest.raises(EpochMoved), Appends(engine, epoch=7) as appends:  # the database is at epoch 0
            table.ids([("f", "f", "f.go")], [1], appends)
        assert table.cached([("f", "f", "f.go")]) is None
        with engine.connect() as conn:
            assert symbols.read_segments(conn) == []
    finally:
        engine.dispose()


def test_collection_drops_dead_functions_and_keeps_the_highest(database_url: str) -> None:
    """No profile names the keys stored: a collection keeps only the highest key's stack (and its functions) and the
    highest function, writing the segments again without the rest; a new function is numbered past the highest."""
    store = Store.from_url(database_url)
    try:
        Dedup(store.engine).sample_key_ids(decode_columns((DATA / "big_cpu.pb.gz").read_bytes()))
        FunctionTable(store.engine).ids([("named.by.nothing", "named.by.nothing", "x.go")], [1])  # the highest
        with store.engine.connect() as conn:
            before = symbols.concatenate(symbols.read_segments(conn))
        removed = collect_garbage(store)
        with store.engine.connect() as conn:
            after = symbols.concatenate(symbols.read_segments(conn))
        highest = int(before.ids[-1])
        assert 0 < removed["functions"] == len(before) - len(after)
        assert highest in after.ids.tolist() and set(after.ids.tolist()) < set(before.ids.tolist())
        kept = dict(zip(before.ids.tolist(), before.keys(), strict=True))
        assert all(kept[fid] == key for fid, key in zip(after.ids.tolist(), after.keys(), strict=True))
        report = check_store(store.engine, blobs=False)
        assert report.ok, report.problems  # no stack node or line frame left names a dropped function
        assert FunctionTable(store.engine).ids([("brand.new", "brand.new", "new.go")], [1]) == [highest + 1]
    finally:
        store.close()
