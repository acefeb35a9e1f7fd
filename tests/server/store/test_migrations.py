"""The schema comes only from Alembic migrations, and the models agree with it on both databases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Connection, create_engine, inspect, text

from server.migrate import alembic_config, upgrade
from server.settings import Settings
from server.store import legacylines, linevectors, symbols
from server.store.check import check_store
from server.store.keys import hash64
from server.store.legacylines import NO_LINES, read_line_fills, with_line_fills
from server.store.models import Base, SegmentKind
from server.store.repository import Store
from server.store.samplekeys import concatenate as concatenate_keys
from server.store.samplekeys import read_segments as read_key_segments
from server.store.stacks import ROOT, StackTree, concatenate, read_segments
from server.store.symbols import FunctionTable
from tests.support.dataset import DAY, DAY0, NS, answers, fill
from tests.support.helpers import push, top
from tests.support.tools import DATA


def test_migrations_match_models(database_url: str) -> None:
    """The partitions of PostgreSQL's partitioned tables are not models (their parents are, and are compared)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            parts: set[str] = set()
            if conn.dialect.name == "postgresql":
                parts = set(conn.execute(text("SELECT relname FROM pg_class WHERE relispartition")).scalars())

            def include_name(name: str | None, type_: str, _parent: object) -> bool:
                return not (type_ == "table" and name in parts)

            context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
            differences = compare_metadata(context, Base.metadata)
            assert differences == [], differences
            tables = set(inspect(conn).get_table_names())
        assert {
            "series",
            "segments",
            "profiles",
            "profile_blobs",
            "alembic_version",
        } <= tables
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)


def test_rollup_blobs_move_out_of_rollups_and_back(database_url: str) -> None:
    """0006 moves each rollup's samples into ``rollup_blobs`` without losing one, and its downgrade moves them back."""
    config = alembic_config(database_url)
    command.downgrade(config, "0005")
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO series (id, kind, labels_hash, labels) VALUES (1, 'cpu', 7, '{}')"))
            conn.execute(
                text(
                    "INSERT INTO profile_shapes (id, hash, period_type, sample_types, default_sample_type)"
                    " VALUES (1, 9, '', '', '')"
                )
            )
            for rid in (1, 2):
                conn.execute(
                    text(
                        "INSERT INTO rollups (id, series_id, width_s, bucket_ns, shape_id, profiles, duration_ns,"
                        " period, samples, totals, max_totals, data)"
                        " VALUES (:id, 1, 3600, :bucket, 1, 1, 0, 1, 0, '[1]', '[1]', :data)"
                    ),
                    {"id": rid, "bucket": rid * 3600, "data": b"samples-%d" % rid},
                )
        command.upgrade(config, "0011")  # 0013 drops the foreign key this checks (rollup_blobs are partitioned)
        with engine.connect() as conn:
            moved = conn.execute(text("SELECT rollup_id, data FROM rollup_blobs ORDER BY rollup_id")).all()
            assert [(int(r), bytes(d)) for r, d in moved] == [(1, b"samples-1"), (2, b"samples-2")]
            assert "data" not in {c["name"] for c in inspect(conn).get_columns("rollups")}
        with engine.begin() as conn:  # the key cascades: a deleted rollup takes its blob along
            if conn.dialect.name == "sqlite":
                conn.execute(text("PRAGMA foreign_keys=ON"))
            conn.execute(text("DELETE FROM rollups WHERE id = 2"))
            assert conn.execute(text("SELECT count(*) FROM rollup_blobs")).scalar_one() == 1
        command.downgrade(config, "0005")
        with engine.connect() as conn:
            assert [bytes(d) for (d,) in conn.execute(text("SELECT data FROM rollups"))] == [b"samples-1"]
        command.upgrade(config, "head")
    finally:
        engine.dispose()


def _depth(stacks: StackTree, node: int) -> int:
    """How many nodes lead from the root to ``node``, itself included (the store keeps no depth column)."""
    depth = 0
    while node != ROOT:
        node, depth = int(stacks.parent[node]), depth + 1
    return depth


def test_stack_nodes_become_segments_and_back(database_url: str) -> None:
    """0013 copies every stack node into segments (same ids, parents, functions, flags); its downgrade writes
    the rows back with their depths."""
    config = alembic_config(database_url)
    command.downgrade(config, "0012")
    # Ids as the row-per-node store gave them: a level at a time, with a gap where a node was collected.
    rows = [(1, 0, 1, 1, False), (2, 0, 2, 1, False), (3, 1, 2, 2, False), (5, 3, 1, 3, True), (6, 5, 2, 4, True)]
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            for fid in (1, 2):
                conn.execute(
                    text(
                        "INSERT INTO functions (id, hash, name, system_name, filename, start_line)"
                        " VALUES (:id, :id, :name, '', '', 0)"
                    ),
                    {"id": fid, "name": f"f{fid}"},
                )
            for node, parent, function, depth, recursive in rows:
                conn.execute(
                    text(
                        "INSERT INTO stack_nodes (id, parent_id, function_id, depth, recursive)"
                        " VALUES (:id, :parent, :function, :depth, :recursive)"
                    ),
                    {"id": node, "parent": parent, "function": function, "depth": depth, "recursive": recursive},
                )
        command.upgrade(config, "head")
        with engine.connect() as conn:
            assert "stack_nodes" not in set(inspect(conn).get_table_names())
            tree = concatenate(read_segments(conn))
        assert list(
            zip(tree.ids.tolist(), tree.parents.tolist(), tree.frames.tolist(), tree.recursive.tolist(), strict=True)
        ) == [(node, parent, function, recursive) for node, parent, function, _, recursive in rows]
        stacks = StackTree(engine)
        stacks.ensure(np.array([6], dtype=np.int64))
        assert [_depth(stacks, node) for node in (1, 2, 3, 5, 6)] == [1, 1, 2, 3, 4]
        command.downgrade(config, "0012")
        with engine.connect() as conn:
            back = conn.execute(
                text("SELECT id, parent_id, function_id, depth, recursive FROM stack_nodes ORDER BY id")
            ).all()
        assert [(int(a), int(b), int(c), int(d), bool(e)) for a, b, c, d, e in back] == rows
        with engine.begin() as conn:  # ids handed out after the downgrade continue past the restored ones
            conn.execute(
                text("INSERT INTO stack_nodes (parent_id, function_id, depth, recursive) VALUES (6, 1, 5, :flag)"),
                {"flag": True},
            )
            assert conn.execute(text("SELECT max(id) FROM stack_nodes")).scalar_one() == 7
        command.upgrade(config, "head")
    finally:
        engine.dispose()


def test_line_frames_migrate_down_and_up(database_url: str) -> None:
    """0015 adds the line tree's columns and the time line data starts from; both go on downgrade."""
    config = alembic_config(database_url)
    engine = create_engine(database_url)
    try:
        command.downgrade(config, "0014")
        with engine.connect() as conn:
            assert "line_frames" not in inspect(conn).get_table_names()
            assert "line_node_id" not in {c["name"] for c in inspect(conn).get_columns("sample_keys")}
            assert conn.execute(text("SELECT count(*) FROM store_state WHERE key = 'line_data_since_ns'")).scalar() == 0
        command.upgrade(config, "0017")
        with engine.connect() as conn:
            assert "line_node_id" in {c["name"] for c in inspect(conn).get_columns("sample_keys")}
        command.upgrade(config, "head")
        with engine.connect() as conn:
            # No profile was stored before line data: nothing is ever refused for lack of it.
            since = conn.execute(text("SELECT value FROM store_state WHERE key = 'line_data_since_ns'")).scalar()
            assert since == 0
    finally:
        engine.dispose()


def test_system_names_equal_to_names_are_stored_once(database_url: str) -> None:
    """0017 keeps a function's system name only where it differs; ids and the id sequence survive both ways."""
    config = alembic_config(database_url)
    engine = create_engine(database_url)
    insert = text(
        "INSERT INTO functions (hash, name, system_name, filename, start_line) "
        "VALUES (:hash, :name, :system_name, :filename, 0) RETURNING id"
    )
    try:
        command.downgrade(config, "0016")
        with engine.begin() as conn:
            a, b, c = (
                conn.execute(insert, {"hash": h, "name": n, "system_name": s, "filename": f}).scalar_one()
                for h, n, s, f in ((11, "main.a", "main.a", "a.go"), (12, "b", "_ZN1b", "b.cc"), (13, "c", "c", "c"))
            )
            conn.execute(text("DELETE FROM functions WHERE id = :id"), {"id": c})  # collected: never handed out again
        command.upgrade(config, "0017")
        with engine.begin() as conn:
            stored = conn.execute(text("SELECT id, system_name FROM functions ORDER BY id")).all()
            assert [tuple(row) for row in stored] == [(a, None), (b, "_ZN1b")]
            d = conn.execute(insert, {"hash": 14, "name": "d", "system_name": None, "filename": "d.go"}).scalar_one()
            assert d > c
        command.upgrade(config, "head")
        assert FunctionTable(engine).rows([a, b, d]) == {
            a: ("main.a", "main.a", "a.go", 0),
            b: ("b", "_ZN1b", "b.cc", 0),
            d: ("d", "d", "d.go", 0),
        }
        command.downgrade(config, "0016")
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT id, system_name FROM functions ORDER BY id")).all()
            assert [tuple(row) for row in stored] == [(a, "main.a"), (b, "_ZN1b"), (d, "d")]
        command.upgrade(config, "head")
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM segments WHERE kind = :kind"), {"kind": SegmentKind.FUNCTIONS})
    finally:
        engine.dispose()


def test_functions_keep_their_system_names(database_url: str) -> None:
    """Written through the store: the same name is stored once (no copy in the segment), a different one kept,
    both read back whole, by this process and by another."""
    engine = create_engine(database_url)
    try:
        table = FunctionTable(engine)
        same, other = table.ids([("main.f", "main.f", "f.go"), ("g", "_Zg", "g.cc")], [3, 4])
        with engine.connect() as conn:
            data = (
                conn.execute(text("SELECT data FROM segments WHERE kind = :kind"), {"kind": SegmentKind.FUNCTIONS})
                .scalars()
                .all()
            )
        assert len(data) == 1 and bytes(data[0]).count(b"main.f") == 1  # too short to compress: there once, not twice
        stored = symbols.decode(bytes(data[0]))
        assert stored.keys() == [("g", "_Zg", "g.cc"), ("main.f", "main.f", "f.go")]
        expected = {same: ("main.f", "main.f", "f.go", 3), other: ("g", "_Zg", "g.cc", 4)}
        assert table.rows([same, other]) == expected
        assert FunctionTable(engine).rows([same, other]) == expected
    finally:
        engine.dispose()


#: The primary keys 0016 gives PostgreSQL's distributed tables (series_id last, so id lookups keep their index),
#: and those it restores on its downgrade.
SERIES_KEYS = {
    "profiles": ("id, time_ns", "id, time_ns, series_id"),
    "profile_blobs": ("profile_id, time_ns", "profile_id, time_ns, series_id"),
    "rollups": ("id, width_s, bucket_ns", "id, width_s, bucket_ns, series_id"),
    "rollup_blobs": ("rollup_id, width_s, bucket_ns", "rollup_id, width_s, bucket_ns, series_id"),
    "rollup_dirty": ("id", "id, series_id"),
    "goroutine_dumps": ("id, time_ns", "id, time_ns, series_id"),
    "goroutine_groups": ("dump_id, stack_id, state, time_ns", "dump_id, stack_id, state, time_ns, series_id"),
}
#: SQLite's keys, which 0016 leaves alone (a one-column INTEGER key is the rowid, and counts up by itself).
SQLITE_KEYS = {
    "profiles": ["id"],
    "profile_blobs": ["profile_id"],
    "rollups": ["id"],
    "rollup_blobs": ["rollup_id"],
    "rollup_dirty": ["id"],
    "goroutine_dumps": ["id"],
    "goroutine_groups": ["dump_id", "stack_id", "state"],
}
#: Each table given a series id, and the join that finds its owner holding the same one.
SAME_SERIES = {
    "profile_blobs": "profiles o ON o.id = c.profile_id AND o.time_ns = c.time_ns",
    "rollup_blobs": "rollups o ON o.id = c.rollup_id AND o.width_s = c.width_s AND o.bucket_ns = c.bucket_ns",
    "goroutine_groups": "goroutine_dumps o ON o.id = c.dump_id AND o.time_ns = c.time_ns",
}


def _keys(conn: Connection) -> dict[str, str | list[str]]:
    if conn.dialect.name == "postgresql":
        query = text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'p'"
        )
        return {t: str(conn.execute(query, {"t": t}).scalar_one()) for t in SERIES_KEYS}
    return {t: inspect(conn).get_pk_constraint(t)["constrained_columns"] for t in SQLITE_KEYS}


def _expected_keys(postgres: bool, revision: int) -> dict[str, str | list[str]]:
    """The keys before (0) or after (1) 0016."""
    if not postgres:
        return dict(SQLITE_KEYS)
    return {t: f"PRIMARY KEY ({keys[revision]})" for t, keys in SERIES_KEYS.items()}


def _rows(conn: Connection) -> dict[str, int]:
    return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in SERIES_KEYS}


@pytest.mark.dates
def test_series_ids_go_into_a_store_with_data_and_out_again(
    client: TestClient, store: Store, settings: Settings
) -> None:
    """0016 on both databases holding data: the blobs, rollup blobs and goroutine groups take their owner's
    series id, PostgreSQL's keys take it too, every answer stays; its downgrade keeps every row."""
    fill(client, store, settings)
    push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + 3600 + 30))  # late: a rollup_dirty row
    before = answers(client)
    config = alembic_config(settings.database_url)
    previous = ScriptDirectory.from_config(config).get_revision("0016").down_revision
    assert isinstance(previous, str)
    postgres = store.engine.dialect.name == "postgresql"
    with store.engine.connect() as conn:
        rows = _rows(conn)
        assert _keys(conn) == _expected_keys(postgres, 1)
    assert all(rows.values()), rows  # every table holds rows to convert
    store.close()
    command.downgrade(config, previous)
    with store.engine.begin() as conn:
        for table in SAME_SERIES:
            assert "series_id" not in {c["name"] for c in inspect(conn).get_columns(table)}
        assert _rows(conn) == rows
        assert _keys(conn) == _expected_keys(postgres, 0)
        # A blob whose profile is gone: no series to copy, and unreadable anyway; the upgrade drops it.
        conn.execute(
            text("INSERT INTO profile_blobs (profile_id, time_ns, data) VALUES (:id, :t, :data)"),
            {"id": 10**9, "t": DAY0 * NS, "data": b"orphan"},
        )
    store.close()
    command.upgrade(config, "head")
    store.reset_caches()
    with store.engine.connect() as conn:
        assert _rows(conn) == rows
        assert _keys(conn) == _expected_keys(postgres, 1)
        for table, owner in SAME_SERIES.items():
            column = next(c for c in inspect(conn).get_columns(table) if c["name"] == "series_id")
            assert column["nullable"] is False
            same = f"SELECT count(*) FROM {table} c JOIN {owner} AND o.series_id = c.series_id"
            assert conn.execute(text(same)).scalar_one() == rows[table]
        high = int(conn.execute(text("SELECT max(id) FROM profiles")).scalar_one())
    report = check_store(store.engine)
    assert report.ok, report.problems
    assert answers(client) == before
    # Writes go on: ids count on from the highest (SQLite's rowid keys still count by themselves), and carry
    # their series into the blob.
    pushed = push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + 5 * 3600))
    assert pushed["id"] > high
    with store.engine.connect() as conn:
        assert _rows(conn)["profile_blobs"] == rows["profile_blobs"] + 1
        same = f"SELECT count(*) FROM profile_blobs c JOIN {SAME_SERIES['profile_blobs']} AND o.series_id = c.series_id"
        assert conn.execute(text(same)).scalar_one() == rows["profile_blobs"] + 1


def _kind_data(conn: Connection, kind: SegmentKind) -> list[bytes]:
    query = text("SELECT data FROM segments WHERE kind = :kind ORDER BY first_id")
    return [bytes(data) for data in conn.execute(query, {"kind": int(kind)}).scalars()]


def _legacy_keys(conn: Connection) -> legacylines.LegacyKeyRows:
    """The keys as a store before 0022 held them, the line leaves found later put in."""
    keys = [legacylines.decode(data) for data in _kind_data(conn, SegmentKind.SAMPLE_KEYS)]
    return with_line_fills(legacylines.concatenate(keys), read_line_fills(conn))


def _legacy_frames(conn: Connection) -> legacylines.FrameRows:
    return legacylines.concatenate_frames(
        [legacylines.decode_frames(data) for data in _kind_data(conn, SegmentKind.LINE_FRAMES)]
    )


def _key_rows(conn: Connection) -> list[tuple[int, ...]]:
    """Before 0022 (0018 to 0021): every key with its line leaf."""
    keys = _legacy_keys(conn)
    columns = (keys.ids, keys.hashes, keys.nodes, keys.labelsets, keys.line_nodes)
    return list(zip(*(c.tolist() for c in columns), strict=True))


def _frame_rows(conn: Connection) -> list[tuple[int, ...]]:
    frames = _legacy_frames(conn)
    columns = (frames.ids, frames.functions, frames.lines, frames.inlined)
    return list(zip(*(c.tolist() for c in columns), strict=True))


def _vectors(conn: Connection) -> dict[int, list[int]]:
    """Every key's line vector (the newest, should a key have two), by key id."""
    rows = linevectors.concatenate(linevectors.read_segments(conn))
    offsets = rows.offsets.tolist()
    return {key: rows.values[offsets[i] : offsets[i + 1]].tolist() for i, key in enumerate(rows.keys.tolist())}


@pytest.mark.dates
def test_sample_keys_and_line_frames_become_segments_and_back(
    client: TestClient, store: Store, settings: Settings
) -> None:
    """0018 on both databases holding data: every key and line frame keeps its id and columns both ways (a key
    stored before line data keeps having none), every answer stays, and ids go on past the highest.

    The captures hold inlined frames, which the table before 0018 cannot key apart from the called
    (function, line): going down drops them with the line tree and every key's line leaf (as 0015's
    downgrade does), and writes the other frames back. (The store keeps line vectors since 0022; its
    downgrade gives back the line tree and leaves 0018 converts.)"""
    fill(client, store, settings)
    before = answers(client)
    config = alembic_config(settings.database_url)
    store.close()
    command.downgrade(config, "0021")
    with store.engine.connect() as conn:
        keys, frames = _key_rows(conn), _frame_rows(conn)
    assert len(keys) > 50 and len(frames) > 50
    called = [frame for frame in frames if frame[3] == 0]
    assert len(called) < len(frames)  # inlined frames are stored
    keys = [(*key[:4], NO_LINES) for key in keys]  # dropped by the downgrade
    command.downgrade(config, "0017")
    with store.engine.begin() as conn:
        rows = conn.execute(
            text("SELECT id, hash, node_id, labelset_id, coalesce(line_node_id, -1) FROM sample_keys ORDER BY id")
        ).all()
        assert [tuple(int(v) for v in row) for row in rows] == keys
        rows = conn.execute(text("SELECT id, function_id, line FROM line_frames ORDER BY id")).all()
        assert [(*(int(v) for v in row), 0) for row in rows] == called
        assert conn.execute(text("SELECT count(*) FROM stack_segments WHERE tree = 1")).scalar_one() == 0
        newest = conn.execute(text("SELECT max(time_ns) FROM profiles")).scalar_one()
        since = conn.execute(text("SELECT value FROM store_state WHERE key = 'line_data_since_ns'")).scalar_one()
        assert int(since) == int(newest) + 1  # line views answer "no line data before" every stored profile
        # New rows get ids past the restored ones (PostgreSQL's sequences are set past them).
        added = conn.execute(
            text("INSERT INTO sample_keys (hash, node_id, labelset_id) VALUES (7, 0, 0) RETURNING id")
        ).scalar_one()
        assert added > keys[-1][0]
        conn.execute(text("DELETE FROM sample_keys WHERE id = :id"), {"id": added})
        # A key as stored before line data (migration 0015): no line leaf.
        conn.execute(text("UPDATE sample_keys SET line_node_id = NULL WHERE id = :id"), {"id": keys[0][0]})
    store.close()
    command.upgrade(config, "0021")
    with store.engine.connect() as conn:
        assert {"sample_keys", "line_frames"}.isdisjoint(inspect(conn).get_table_names())
        assert _key_rows(conn) == keys
        assert _frame_rows(conn) == called
    command.upgrade(config, "head")
    store.reset_caches()
    with store.engine.connect() as conn:
        assert _vectors(conn) == {}  # no key has lines: every one is as stored before line data
    report = check_store(store.engine)
    assert report.ok, report.problems
    assert answers(client) == before
    # Writes go on: keys without lines get them when seen again, new keys count on from the highest.
    push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + 5 * 3600))
    push(client, DATA / "heap.pb.gz", service="api", time=str(DAY0 + 5 * 3600))
    store.reset_caches()
    with store.engine.connect() as conn:
        stored = concatenate_keys(read_key_segments(conn))
        now = list(
            zip(
                stored.ids.tolist(),
                stored.hashes.tolist(),
                stored.nodes.tolist(),
                stored.labelsets.tolist(),
                strict=True,
            )
        )
        vectors = _vectors(conn)
    assert now[: len(keys)] == [key[:4] for key in keys] and len(now) > len(keys)
    assert any(key[0] in vectors for key in keys)  # keys seen again got their lines
    assert [row[0] for row in now[len(keys) :]] == list(range(keys[-1][0] + 1, keys[-1][0] + 1 + len(now) - len(keys)))
    report = check_store(store.engine)
    assert report.ok, report.problems


def _function_rows(conn: Connection) -> list[tuple[int, str, str, str, int]]:
    functions = symbols.concatenate(symbols.read_segments(conn))
    columns = (functions.ids.tolist(), functions.names, functions.system_names, functions.filenames)
    return list(zip(*columns, functions.start_lines.tolist(), strict=True))


@pytest.mark.dates
def test_functions_become_segments_and_back(client: TestClient, store: Store, settings: Settings) -> None:
    """0019 on both databases holding data: every function keeps its id, strings and start line both ways (the
    content hash and its unique index come back with the rows), every answer stays, and ids go on past the
    highest stored one: after a downgrade from the sequence, after an upgrade from the segments."""
    fill(client, store, settings)
    before = answers(client)
    config = alembic_config(settings.database_url)
    with store.engine.connect() as conn:
        functions = _function_rows(conn)
    assert len(functions) > 50
    highest = functions[-1][0]
    store.close()
    command.downgrade(config, "0018")
    with store.engine.begin() as conn:
        rows = conn.execute(
            text("SELECT id, hash, name, coalesce(system_name, name), filename, start_line FROM functions ORDER BY id")
        ).all()
        assert [(row[0], row[2], row[3], row[4], row[5]) for row in rows] == functions
        assert all(row[1] == hash64((row[2], row[3], row[4])) for row in rows)
        assert conn.execute(text("SELECT count(*) FROM functions WHERE system_name = name")).scalar_one() == 0
        inspector = inspect(conn)
        assert "function_segments" not in inspector.get_table_names()
        assert [c["column_names"] for c in inspector.get_unique_constraints("functions")] == [["hash"]]
        added = conn.execute(
            text("INSERT INTO functions (hash, name, filename, start_line) VALUES (7, 'new', 'new.go', 1) RETURNING id")
        ).scalar_one()
        assert added > highest  # PostgreSQL's sequence is set past the rows written back
        conn.execute(text("DELETE FROM functions WHERE id = :id"), {"id": added})
    command.upgrade(config, "head")
    store.reset_caches()
    with store.engine.connect() as conn:
        assert "functions" not in inspect(conn).get_table_names()
        assert _function_rows(conn) == functions
    report = check_store(store.engine)
    assert report.ok, report.problems
    assert answers(client) == before
    # Writes go on: functions never seen get ids counting on from the highest stored.
    push(client, DATA / "big_cpu.pb.gz", service="api", time=str(DAY0 + 5 * 3600))
    store.reset_caches()
    with store.engine.connect() as conn:
        now = _function_rows(conn)
    assert now[: len(functions)] == functions and len(now) > len(functions)
    assert [row[0] for row in now[len(functions) :]] == list(
        range(highest + 1, highest + 1 + len(now) - len(functions))
    )
    report = check_store(store.engine)
    assert report.ok, report.problems


_IDEMPOTENCY_INDEX = {
    "postgresql": "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_profiles_idempotency_key'",
    "sqlite": "SELECT sql FROM sqlite_master WHERE name = 'ix_profiles_idempotency_key'",
}


def test_the_idempotency_index_holds_only_keyed_profiles(client: TestClient, store: Store) -> None:
    """0020 both ways: the index leaves out profiles without a key, and a key is still found (and a retry with it
    stored once) through it."""
    config = alembic_config(store.engine.url.render_as_string(hide_password=False))
    with store.engine.connect() as conn:
        definition = str(conn.execute(text(_IDEMPOTENCY_INDEX[conn.dialect.name])).scalar_one())
    assert "WHERE" in definition.upper() and "IS NOT NULL" in definition.upper()
    first = push(client, DATA / "cpu.pb.gz", service="keyed", idempotency_key="k-1")
    again = client.post(
        "/api/v1/ingest",
        params={"service": "keyed", "idempotency_key": "k-1"},
        content=(DATA / "cpu.pb.gz").read_bytes(),
    )
    assert again.status_code == 200 and again.json()["id"] == first["id"]  # the retry found the stored profile
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))  # a table this small would be scanned whatever its indexes
            found = conn.execute(text("EXPLAIN SELECT id FROM profiles WHERE idempotency_key IN ('x', 'y')")).all()
            plan = " ".join(str(row[0]) for row in found)
            assert "Index" in plan and "idempotency_key_idx" in plan, plan  # each partition's copy of the index
        else:
            found = conn.execute(text("EXPLAIN QUERY PLAN SELECT id FROM profiles WHERE idempotency_key = 'x'")).all()
            plan = " ".join(str(row[-1]) for row in found)
            assert "INDEX ix_profiles_idempotency_key" in plan, plan
    store.close()
    command.downgrade(config, "0019")
    with store.engine.connect() as conn:
        definition = str(conn.execute(text(_IDEMPOTENCY_INDEX[conn.dialect.name])).scalar_one())
    assert "WHERE" not in definition.upper()
    command.upgrade(config, "head")


#: Where each kind of segment lived before 0021: (table, first-id, last-id and count columns, and a filter).
_SEGMENT_TABLES = {
    SegmentKind.FUNCTION_STACKS: "SELECT first_node, last_node, nodes, data FROM stack_segments WHERE tree = 0",
    SegmentKind.LINE_STACKS: "SELECT first_node, last_node, nodes, data FROM stack_segments WHERE tree = 1",
    SegmentKind.SAMPLE_KEYS: "SELECT first_key, last_key, keys, data FROM sample_key_segments",
    SegmentKind.LINE_FRAMES: "SELECT first_frame, last_frame, frames, data FROM line_frame_segments",
    SegmentKind.FUNCTIONS: "SELECT first_function, last_function, functions, data FROM function_segments",
}


def _segment_rows(conn: Connection, query: str) -> list[tuple[int, int, int, bytes]]:
    return sorted((int(a), int(b), int(c), bytes(d)) for a, b, c, d in conn.execute(text(query)).all())


@pytest.mark.dates
def test_the_segment_tables_become_one_and_back(client: TestClient, store: Store, settings: Settings) -> None:
    """0021 on both databases holding data: every segment of every kind keeps its ids, count and bytes both
    ways, every answer stays, and appends go on past the highest ids after the round trip.

    The kinds are those of 0021: the store keeps line vectors since 0022, whose downgrade gives back the line
    tree and frames (in one segment each, for this little data) that 0021 copies."""
    fill(client, store, settings)
    before = answers(client)
    config = alembic_config(settings.database_url)
    select_kind = "SELECT first_id, last_id, items, data FROM segments WHERE kind = {kind}"
    store.close()
    command.downgrade(config, "0021")
    with store.engine.connect() as conn:
        segments = {kind: _segment_rows(conn, select_kind.format(kind=int(kind))) for kind in _SEGMENT_TABLES}
    rebuilt = (SegmentKind.LINE_STACKS, SegmentKind.LINE_FRAMES)
    assert all(len(rows) >= (1 if kind in rebuilt else 2) for kind, rows in segments.items()), {
        k: len(v) for k, v in segments.items()
    }
    command.downgrade(config, "0020")
    with store.engine.connect() as conn:
        assert "segments" not in inspect(conn).get_table_names()
        assert {kind: _segment_rows(conn, query) for kind, query in _SEGMENT_TABLES.items()} == segments
    command.upgrade(config, "0021")
    with store.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert {kind: _segment_rows(conn, select_kind.format(kind=int(kind))) for kind in _SEGMENT_TABLES} == segments
    assert not tables & {"stack_segments", "sample_key_segments", "line_frame_segments", "function_segments"}
    command.upgrade(config, "head")
    store.reset_caches()
    report = check_store(store.engine)
    assert report.ok, report.problems
    assert answers(client) == before
    # Appends go on in the one table: new nodes, keys, vectors and functions, ids past every stored one.
    written = (SegmentKind.FUNCTION_STACKS, SegmentKind.SAMPLE_KEYS, SegmentKind.LINE_VECTORS, SegmentKind.FUNCTIONS)
    with store.engine.connect() as conn:
        segments = {kind: _segment_rows(conn, select_kind.format(kind=int(kind))) for kind in written}
    push(client, DATA / "big_cpu.pb.gz", service="api", time=str(DAY0 + 5 * 3600))
    store.reset_caches()
    with store.engine.connect() as conn:
        for kind, rows in segments.items():
            now = _segment_rows(conn, select_kind.format(kind=int(kind)))
            assert now[: len(rows)] == rows and len(now) > len(rows), kind
            assert all(row[0] > rows[-1][1] for row in now[len(rows) :])
    report = check_store(store.engine)
    assert report.ok, report.problems


def _line_stacks(conn: Connection) -> dict[int, list[tuple[int, int, int]]]:
    """Before 0022: every key with a line leaf, its stack read from the line tree, leaf first, as
    ``(function, line, inlined)`` frames; and the tree is one ingest could have written: parents below their
    children, no ``(parent, frame)`` twice, every frame stored once, recursive flags true to the frames."""
    tree = concatenate(read_segments(conn, SegmentKind.LINE_STACKS))
    frames = _legacy_frames(conn)
    triples = list(zip(frames.functions.tolist(), frames.lines.tolist(), frames.inlined.tolist(), strict=True))
    assert len(set(triples)) == len(triples)
    frame_of = dict(zip(frames.ids.tolist(), triples, strict=True))
    parent_of: dict[int, int] = {}
    line_frame_of: dict[int, int] = {}
    children: set[tuple[int, int]] = set()
    for node, parent, frame, recursive in zip(
        tree.ids.tolist(), tree.parents.tolist(), tree.frames.tolist(), tree.recursive.tolist(), strict=True
    ):
        assert parent < node and (parent == 0 or parent in parent_of) and frame in frame_of
        assert (parent, frame) not in children
        children.add((parent, frame))
        parent_of[node], line_frame_of[node] = parent, frame
        above, seen = parent, False
        while above:
            seen = seen or line_frame_of[above] == frame
            above = parent_of[above]
        assert bool(recursive) == seen
    stacks: dict[int, list[tuple[int, int, int]]] = {}
    keys = _legacy_keys(conn)
    for key, leaf in zip(keys.ids.tolist(), keys.line_nodes.tolist(), strict=True):
        if leaf == NO_LINES:
            continue
        node, stack = leaf, []
        while node:
            stack.append(frame_of[line_frame_of[node]])
            node = parent_of[node]
        stacks[key] = stack
    return stacks


def _function_stacks(conn: Connection, keys: list[int]) -> dict[int, list[int]]:
    """The function ids of each key's stack, leaf first."""
    tree = concatenate(read_segments(conn))
    parent_of = dict(zip(tree.ids.tolist(), tree.parents.tolist(), strict=True))
    function_of = dict(zip(tree.ids.tolist(), tree.frames.tolist(), strict=True))
    stored = concatenate_keys(read_key_segments(conn))
    node_of = dict(zip(stored.ids.tolist(), stored.nodes.tolist(), strict=True))
    stacks: dict[int, list[int]] = {}
    for key in keys:
        node, stack = node_of[key], []
        while node:
            stack.append(function_of[node])
            node = parent_of[node]
        stacks[key] = stack
    return stacks


def _line_answers(client: TestClient) -> dict[str, dict[str, Any]]:
    """Line granularity over the whole store and over one series (the lines are what 0022 converts)."""
    whole = {"from": str(DAY0 - 40 * DAY), "to": str(DAY0 + 400 * DAY), "type": "cpu", "granularity": "lines"}
    return {"all": top(client, **whole), "web": top(client, **whole, query='{service="web"}')}


@pytest.mark.dates
def test_line_trees_become_line_vectors_and_back(client: TestClient, store: Store, settings: Settings) -> None:
    """0022 on both databases holding data: its downgrade gives every key with lines a leaf in a rebuilt line
    tree whose stack, read back, is the key's vector with the functions of its stack (keys without lines get
    none, and ``sample_key_lines`` is back, empty); the upgrade gives every key the same vector again, the key
    segments the bytes they had, and every answer, line granularity's too, stays."""
    fill(client, store, settings)
    before, lines = answers(client), _line_answers(client)
    assert lines["all"]["rows"] and any(row["line"] for row in lines["all"]["rows"])
    config = alembic_config(settings.database_url)
    with store.engine.connect() as conn:
        vectors = _vectors(conn)
        keys = concatenate_keys(read_key_segments(conn)).ids.tolist()
        key_segments = _segment_rows(conn, f"SELECT first_id, last_id, items, data FROM segments WHERE kind = {2}")
        functions = _function_stacks(conn, keys)
    assert len(vectors) > 50 and set(vectors) <= set(keys)
    assert any(value & 1 for vector in vectors.values() for value in vector)  # inlined frames among them
    store.close()
    command.downgrade(config, "0021")
    with store.engine.connect() as conn:
        assert "sample_key_lines" in inspect(conn).get_table_names()
        assert conn.execute(text("SELECT count(*) FROM sample_key_lines")).scalar_one() == 0
        assert _kind_data(conn, SegmentKind.LINE_VECTORS) == []
        stacks = _line_stacks(conn)
        legacy = _legacy_keys(conn)
    assert legacy.ids.tolist() == keys
    assert set(stacks) == set(vectors)  # a key without a vector has no leaf (NO_LINES)
    for key, stack in stacks.items():
        assert [function for function, _, _ in stack] == functions[key]
        assert [line << 1 | inlined for _, line, inlined in stack] == vectors[key]
    command.upgrade(config, "head")
    store.reset_caches()
    with store.engine.connect() as conn:
        assert "sample_key_lines" not in inspect(conn).get_table_names()
        assert _kind_data(conn, SegmentKind.LINE_STACKS) == _kind_data(conn, SegmentKind.LINE_FRAMES) == []
        assert _vectors(conn) == vectors
        assert _segment_rows(conn, f"SELECT first_id, last_id, items, data FROM segments WHERE kind = {2}") == (
            key_segments
        )
    report = check_store(store.engine)
    assert report.ok, report.problems
    assert answers(client) == before
    assert _line_answers(client) == lines


def test_keys_stored_before_line_data_keep_none_or_their_later_leaf(
    client: TestClient, store: Store, settings: Settings
) -> None:
    """0022 on a key stored before line data (0015, leaf -1): with a leaf found later in ``sample_key_lines``
    it gets that leaf's vector, without one it gets no vector (as it had no lines), on both databases; going
    down again, the first has its leaf in its segment, the second still none."""
    push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + 3600))
    config = alembic_config(settings.database_url)
    with store.engine.connect() as conn:
        vectors = _vectors(conn)
    store.close()
    command.downgrade(config, "0021")
    with store.engine.begin() as conn:
        stored = _legacy_keys(conn)
        filled, lacking = (int(k) for k in stored.ids[stored.line_nodes > 0][:2])
        leaf = int(stored.line_nodes[stored.ids == filled][0])
        # As 0018 wrote such keys: leaf -1 in the segment; the first one's found later.
        rows = conn.execute(
            text("SELECT first_id, data FROM segments WHERE kind = :kind"), {"kind": SegmentKind.SAMPLE_KEYS}
        ).all()
        for first, data in rows:
            part = legacylines.decode(bytes(data))
            part.line_nodes[np.isin(part.ids, [filled, lacking])] = NO_LINES
            conn.execute(
                text("UPDATE segments SET data = :data WHERE kind = :kind AND first_id = :first"),
                {"data": legacylines.encode(part), "kind": SegmentKind.SAMPLE_KEYS, "first": first},
            )
        conn.execute(
            text("INSERT INTO sample_key_lines (key_id, line_node_id) VALUES (:k, :n)"), {"k": filled, "n": leaf}
        )
    command.upgrade(config, "head")
    store.reset_caches()
    with store.engine.connect() as conn:
        now = _vectors(conn)
    assert now[filled] == vectors[filled]
    assert lacking not in now
    assert now == {k: v for k, v in vectors.items() if k != lacking}
    report = check_store(store.engine)
    assert report.ok, report.problems
    store.close()
    command.downgrade(config, "0021")
    with store.engine.connect() as conn:
        again = _legacy_keys(conn)
        assert conn.execute(text("SELECT count(*) FROM sample_key_lines")).scalar_one() == 0
    assert int(again.line_nodes[again.ids == filled][0]) > 0
    assert int(again.line_nodes[again.ids == lacking][0]) == NO_LINES
    command.upgrade(config, "head")


def test_line_vectors_not_as_deep_as_their_stacks_are_refused(
    client: TestClient, store: Store, settings: Settings
) -> None:
    """A vector whose length is not its key's stack depth is a corrupt store: 0022's downgrade refuses it,
    naming the key, rather than build a tree of guesses."""
    push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + 3600))
    config = alembic_config(settings.database_url)
    with store.engine.begin() as conn:
        rows = linevectors.concatenate(linevectors.read_segments(conn))
        key = int(rows.keys[rows.lengths > 1][0])
        short = linevectors.VectorRows(
            np.array([int(rows.ids[-1]) + 1]), np.array([key]), np.array([0, 1]), np.array([2])
        )
        conn.execute(
            text(
                "INSERT INTO segments (kind, first_id, last_id, items, data)"
                " VALUES (:kind, :first_id, :last_id, :items, :data)"
            ),
            linevectors.segment_row(short),
        )
    store.close()
    with pytest.raises(Exception, match=f"sample key {key} has 1 frames of lines for a stack of"):
        command.downgrade(config, "0021")


def test_a_key_with_two_vectors_goes_down_with_the_newer(client: TestClient, store: Store, settings: Settings) -> None:
    """Two processes may each fill a key stored before line data; the vector with the higher id is the key's, and
    0022's downgrade gives the key that one's lines, on both databases."""
    push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + 3600))
    config = alembic_config(settings.database_url)
    with store.engine.begin() as conn:
        vectors = _vectors(conn)
        key = next(k for k, v in vectors.items() if v)
        newer = [vectors[key][0] + 2, *vectors[key][1:]]  # another line for the leaf frame
        high = int(conn.execute(text("SELECT max(last_id) FROM segments WHERE kind = 5")).scalar_one())
        rows = linevectors.VectorRows(
            np.array([high + 1]), np.array([key]), np.array([0, len(newer)]), np.array(newer, dtype=np.int64)
        )
        conn.execute(
            text(
                "INSERT INTO segments (kind, first_id, last_id, items, data)"
                " VALUES (:kind, :first_id, :last_id, :items, :data)"
            ),
            linevectors.segment_row(rows),
        )
    store.close()
    command.downgrade(config, "0021")
    with store.engine.connect() as conn:
        stacks = _line_stacks(conn)
    assert [line << 1 | inlined for _, line, inlined in stacks[key]] == newer
    command.upgrade(config, "head")
    with store.engine.connect() as conn:
        assert _vectors(conn) == {**vectors, key: newer}


def test_line_leaves_not_as_deep_as_their_stacks_are_refused(
    client: TestClient, store: Store, settings: Settings
) -> None:
    """0022's upgrade refuses a key whose line leaf is not as deep as its function node, naming the key: no
    vector it could write would line up with the key's stack."""
    push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + 3600))
    config = alembic_config(settings.database_url)
    store.close()
    command.downgrade(config, "0021")
    with store.engine.begin() as conn:
        stacks = _line_stacks(conn)
        keys = _legacy_keys(conn)
        deep, shallow = max(stacks, key=lambda k: len(stacks[k])), min(stacks, key=lambda k: len(stacks[k]))
        assert len(stacks[deep]) != len(stacks[shallow])
        first, data = conn.execute(
            text("SELECT first_id, data FROM segments WHERE kind = 2 AND first_id <= :key ORDER BY first_id DESC"),
            {"key": shallow},
        ).all()[0]
        part = legacylines.decode(bytes(data))
        part.line_nodes[part.ids == shallow] = keys.line_nodes[keys.ids == deep]
        conn.execute(
            text("UPDATE segments SET data = :data WHERE kind = 2 AND first_id = :first"),
            {"data": legacylines.encode(part), "first": first},
        )
    with pytest.raises(Exception, match=f"sample key {shallow} has {len(stacks[deep])} frames of lines for a stack"):
        command.upgrade(config, "head")
