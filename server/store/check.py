"""The store's consistency checker: what must hold after any crash, and ``stackyard check`` reports.

Every write is one transaction, so a ``kill -9`` at any moment should leave
only whole writes behind; this module verifies that rather than trusting it.
It checks what SQL constraints cannot see (blobs reference sample keys by
id, invisibly to the database) as well as what they should have enforced:

- every profile has its blob, and the blob decodes and sums to the totals
  recorded on the row (a torn or truncated blob shows here); a blob, a
  rollup's blob and a goroutine group carry their owner's series id (the key
  a Citus cluster would place them by, docs/scaling.md);
- stack, sample-key, line-vector and function segments decode and agree with
  their rows, and every segment is of a kind still written (the line tree and
  line frames that migration 0022 converts are not); no key id, hash or
  function is stored twice (what the unique indexes of the row-per-key tables
  enforced); nodes hang off existing parents and functions; sample keys point
  at existing nodes and label sets; a line vector belongs to an existing key
  and has a frame for each level of the key's stack; every sample key a blob
  names exists;
- every rollup decodes, sums to its totals, and still stands for exactly the
  profiles of its bucket (a rollup is complete or absent, never half-built);
- the ``gc_epoch`` row exists; on SQLite, ``PRAGMA quick_check`` and
  ``foreign_key_check`` pass.

Read-only, in one connection; reading every blob is what makes it thorough,
and ``blobs=False`` skips that for a quick look at a large store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, Select, func, literal_column, select, text
from sqlalchemy.orm import InstrumentedAttribute

from server.store import blob, linevectors, samplekeys, symbols
from server.store.models import (
    GoroutineDump,
    GoroutineGroup,
    ProfileBlob,
    ProfileRow,
    Rollup,
    RollupBlob,
    SampleLabelset,
    SegmentKind,
    SegmentRow,
    StoreState,
)
from server.store.rollups import DAY_S, HOUR_S, NS
from server.store.stackcodec import CorruptSegment, decode
from server.store.stacks import FUNCTIONS
from server.store.state import EPOCH


class _Segment(Protocol):
    """What a decoded key, vector or function segment offers the checks: its ids."""

    @property
    def ids(self) -> npt.NDArray[np.int64]: ...


_Rows = TypeVar("_Rows", bound=_Segment)

BATCH = 500
#: Kinds no longer written: the tree of (function, line) frames and its frames, which migration 0022 converts.
_CONVERTED = (SegmentKind.LINE_STACKS, SegmentKind.LINE_FRAMES)
EXAMPLES = 5  # ids quoted per problem; the count says how many there are


@dataclass(frozen=True, slots=True)
class Problem:
    check: str
    count: int
    examples: tuple[int, ...]

    def __str__(self) -> str:
        ids = ", ".join(str(i) for i in self.examples)
        return f"{self.check}: {self.count} (e.g. {ids})" if ids else f"{self.check}: {self.count}"


@dataclass(slots=True)
class Report:
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, check: str, ids: Iterable[int]) -> None:
        found = sorted(int(i) for i in ids)
        if found:
            self.problems.append(Problem(check, len(found), tuple(found[:EXAMPLES])))


def check_store(engine: Engine, blobs: bool = True, raw_since_ns: int = 0, hourly_since_ns: int = 0) -> Report:
    """Check everything; ``*_since_ns`` are the retention cutoffs (now minus ``retention_raw``/``_hourly``)."""
    report = Report()
    with engine.connect() as conn:
        for name, model in (("profiles", ProfileRow), ("rollups", Rollup)):
            report.counts[name] = int(conn.execute(select(func.count()).select_from(model)).scalar_one())
        grouped = select(SegmentRow.kind, func.sum(SegmentRow.items)).group_by(SegmentRow.kind)
        items = {int(kind): int(count) for kind, count in conn.execute(grouped)}
        for name, kind in (
            ("functions", SegmentKind.FUNCTIONS),
            ("sample_keys", SegmentKind.SAMPLE_KEYS),
            ("stack_nodes", SegmentKind.FUNCTION_STACKS),
            ("line_vectors", SegmentKind.LINE_VECTORS),
        ):
            report.counts[name] = int(items.get(kind, 0))
        known = [int(kind) for kind in SegmentKind if kind not in _CONVERTED]
        report.add(
            "segments of no kind still written (by first id; the line tree's and line frames' are converted by "
            "migration 0022)",
            _ids(conn, select(SegmentRow.first_id).where(SegmentRow.kind.not_in(known))),
        )
        _rows(conn, report)
        keys = _key_segments(conn, report)
        functions = _function_segments(conn, report)
        tree = _stack_segments(conn, report, keys, functions)
        _vector_segments(conn, report, keys, tree)
        if blobs:
            _profile_blobs(conn, report, keys.ids)
            _rollup_blobs(conn, report, keys.ids)
        _rollup_coverage(conn, report, raw_since_ns, hourly_since_ns)
        if conn.execute(select(StoreState.value).where(StoreState.key == EPOCH)).first() is None:
            report.problems.append(Problem("store_state has no gc_epoch row", 1, ()))
        if conn.dialect.name == "sqlite":
            quick = [str(row[0]) for row in conn.execute(text("PRAGMA quick_check"))]
            if quick != ["ok"]:
                report.problems.append(Problem(f"SQLite quick_check: {'; '.join(quick[:3])}", len(quick), ()))
            broken = conn.execute(text("PRAGMA foreign_key_check")).all()
            report.add("rows whose foreign key points nowhere (SQLite foreign_key_check)", (r[1] for r in broken))
    return report


def _ids(conn: Connection, query: object) -> list[int]:
    return [int(row[0]) for row in conn.execute(query)]  # type: ignore[call-overload]


def _rows(conn: Connection, report: Report) -> None:
    """Row-to-row references, answered by the database with anti-joins."""
    blob_row = select(ProfileBlob.profile_id).where(ProfileBlob.profile_id == ProfileRow.id)
    report.add("profiles without a blob", _ids(conn, select(ProfileRow.id).where(~blob_row.exists())))
    owner = select(ProfileRow.id).where(ProfileRow.id == ProfileBlob.profile_id)
    report.add("blobs without a profile", _ids(conn, select(ProfileBlob.profile_id).where(~owner.exists())))
    rollup_blob = select(RollupBlob.rollup_id).where(RollupBlob.rollup_id == Rollup.id)
    report.add("rollups without a blob", _ids(conn, select(Rollup.id).where(~rollup_blob.exists())))
    rollup_owner = select(Rollup.id).where(Rollup.id == RollupBlob.rollup_id)
    report.add("rollup blobs without a rollup", _ids(conn, select(RollupBlob.rollup_id).where(~rollup_owner.exists())))
    report.add(
        "blobs whose series is not their profile's",
        _ids(
            conn,
            select(ProfileBlob.profile_id).join(
                ProfileRow,
                (ProfileRow.id == ProfileBlob.profile_id)
                & (ProfileRow.time_ns == ProfileBlob.time_ns)
                & (ProfileRow.series_id != ProfileBlob.series_id),
            ),
        ),
    )
    report.add(
        "rollup blobs whose series is not their rollup's",
        _ids(
            conn,
            select(RollupBlob.rollup_id).join(
                Rollup, (Rollup.id == RollupBlob.rollup_id) & (Rollup.series_id != RollupBlob.series_id)
            ),
        ),
    )
    report.add(
        "goroutine dumps whose groups name another series",
        _ids(
            conn,
            select(GoroutineGroup.dump_id)
            .join(
                GoroutineDump,
                (GoroutineDump.id == GoroutineGroup.dump_id)
                & (GoroutineDump.time_ns == GoroutineGroup.time_ns)
                & (GoroutineDump.series_id != GoroutineGroup.series_id),
            )
            .distinct(),
        ),
    )


def _key_segments(conn: Connection, report: Report) -> samplekeys.KeyRows:
    """Every sample key, checked: segments decode and agree with their rows, no id or hash twice, label sets
    exist."""
    parts, torn = _decoded(conn.execute(_segments_of(SegmentKind.SAMPLE_KEYS)), samplekeys.decode)
    report.add("sample-key segments that do not decode or disagree with their row (by first key)", torn)
    parts.sort(key=lambda part: int(part.ids[0]) if len(part) else 0)
    keys = samplekeys.concatenate(parts)
    report.add("sample keys stored twice (by id)", _repeated(keys.ids))
    report.add("sample keys whose hash is stored twice (by id)", keys.ids[_repeated_at(keys.hashes)].tolist())
    labelsets = np.sort(np.fromiter(conn.execute(select(SampleLabelset.id)).scalars(), dtype=np.int64))
    unlabelled = (keys.labelsets != 0) & ~_member(keys.labelsets, labelsets)
    report.add("sample keys whose label set is missing", keys.ids[unlabelled].tolist())
    return keys


def _vector_segments(
    conn: Connection,
    report: Report,
    keys: samplekeys.KeyRows,
    tree: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> None:
    """Line vectors, checked: segments decode and agree with their rows, no id twice, each names a stored key
    and has as many frames as the key's node is deep (``tree``: node ids, sorted, and their depths; -1 where
    the tree is broken, reported already, and those keys' vectors are not judged)."""
    parts, torn = _decoded(conn.execute(_segments_of(SegmentKind.LINE_VECTORS)), linevectors.decode)
    report.add("line-vector segments that do not decode or disagree with their row (by first vector)", torn)
    parts.sort(key=lambda part: int(part.ids[0]) if len(part) else 0)
    vectors = linevectors.concatenate(parts)
    report.add("line vectors stored twice (by id)", _repeated(vectors.ids))
    order = np.argsort(keys.ids)
    sorted_keys = keys.ids[order]
    stored = _member(vectors.keys, sorted_keys)
    report.add("line vectors whose sample key is missing (by vector id)", vectors.ids[~stored].tolist())
    if not bool(stored.any()):
        return
    at = np.searchsorted(sorted_keys, vectors.keys[stored])
    nodes = keys.nodes[order][at]
    ids, depth = tree
    where = np.minimum(np.searchsorted(ids, nodes), max(ids.shape[0] - 1, 0))
    inside = (ids[where] == nodes) if ids.size else np.zeros(nodes.shape[0], dtype=bool)
    expected = np.where(nodes == 0, 0, np.where(inside, depth[where] if ids.size else 0, -1))
    wrong = (expected >= 0) & (vectors.lengths[stored] != expected)
    report.add(
        "line vectors whose frame count is not their key's stack depth (by vector id)",
        vectors.ids[stored][wrong].tolist(),
    )


def _function_segments(conn: Connection, report: Report) -> npt.NDArray[np.int64]:
    """Every function id (sorted), checked: segments decode and agree with their rows, no id or function twice."""
    parts, torn = _decoded(conn.execute(_segments_of(SegmentKind.FUNCTIONS)), symbols.decode)
    report.add("function segments that do not decode or disagree with their row (by first function)", torn)
    parts.sort(key=lambda part: int(part.ids[0]) if len(part) else 0)
    functions = symbols.concatenate(parts)
    report.add("functions stored twice (by id)", _repeated(functions.ids))
    seen: set[tuple[str, str, str]] = set()
    twice: list[int] = []
    for fid, key in zip(functions.ids.tolist(), functions.keys(), strict=True):
        if key in seen:
            twice.append(fid)
        seen.add(key)
    report.add("functions whose (name, system name, file) is stored twice (by id)", twice)
    return np.sort(functions.ids)


def _segments_of(kind: SegmentKind) -> Select[int, int, int, bytes]:
    """``(first id, last id, count, data)`` of ``kind``'s segments."""
    return select(SegmentRow.first_id, SegmentRow.last_id, SegmentRow.items, SegmentRow.data).where(
        SegmentRow.kind == kind
    )


def _decoded(rows: Iterable[Any], decode: Callable[[bytes], _Rows]) -> tuple[list[_Rows], list[int]]:
    """Segments from ``(first id, last id, count, data)`` rows: those that decode and agree with their row, and
    the first ids of those that do not."""
    parts: list[_Rows] = []
    torn: list[int] = []
    for first, last, count, data in rows:
        try:
            part = decode(bytes(data))
        except CorruptSegment:
            torn.append(int(first))
            continue
        if not _agrees(part.ids, int(first), int(last), int(count)):
            torn.append(int(first))
            continue
        parts.append(part)
    return parts, torn


def _agrees(ids: npt.NDArray[np.int64], first: int, last: int, count: int) -> bool:
    return len(ids) == count and (len(ids) == 0 or (int(ids[0]) == first and int(ids[-1]) == last))


def _repeated(ids: npt.NDArray[np.int64]) -> list[int]:
    """Ids that occur more than once."""
    ordered = np.sort(ids)
    repeated: list[int] = np.unique(ordered[1:][ordered[1:] == ordered[:-1]]).tolist()
    return repeated


def _repeated_at(values: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Per position, whether its value occurred at an earlier position."""
    _, first_at = np.unique(values, return_index=True)
    later = np.ones(values.shape[0], dtype=bool)
    later[first_at] = False
    return later


def _stack_segments(
    conn: Connection, report: Report, stored_keys: samplekeys.KeyRows, functions: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Segments decode and agree with their rows; nodes hang off stored parents and functions; sample keys
    point at stored nodes. Returns the node ids (sorted) and their depths (-1: below a missing parent). The
    node ids are held as sorted arrays: a few bytes per node."""
    id_parts: list[npt.NDArray[np.int64]] = []
    parent_parts: list[npt.NDArray[np.int64]] = []
    frame_parts: list[npt.NDArray[np.int64]] = []
    torn: list[int] = []
    rows = conn.execute(
        select(SegmentRow.first_id, SegmentRow.last_id, SegmentRow.items, SegmentRow.data).where(
            SegmentRow.kind == FUNCTIONS
        )
    )
    for first, last, count, data in rows:
        try:
            segment = decode(bytes(data))
        except CorruptSegment:
            torn.append(int(first))
            continue
        if not _agrees(segment.ids, int(first), int(last), int(count)):
            torn.append(int(first))
            continue
        id_parts.append(segment.ids)
        parent_parts.append(segment.parents)
        frame_parts.append(segment.frames)
    report.add("stack segments that do not decode or disagree with their row (by first node)", torn)
    empty = np.zeros(0, dtype=np.int64)
    nodes = np.concatenate(id_parts) if id_parts else empty
    parents = np.concatenate(parent_parts) if parent_parts else empty
    frames = np.concatenate(frame_parts) if frame_parts else empty
    ids = np.sort(nodes)
    orphans = nodes[(parents != 0) & ~_member(parents, ids)]
    report.add("stack nodes whose parent is missing", orphans.tolist())
    report.add("stack nodes whose function is missing", nodes[~_member(frames, functions)].tolist())
    missing = (stored_keys.nodes != 0) & ~_member(stored_keys.nodes, ids)
    report.add("sample keys whose stack node is missing", stored_keys.ids[missing].tolist())
    return ids, _depths(nodes, parents, ids)


def _depths(
    nodes: npt.NDArray[np.int64], parents: npt.NDArray[np.int64], ids: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The depth of each node of ``ids`` (sorted), -1 for nodes below a missing parent: by pointer doubling,
    log2(depth) passes over the nodes, none per node in Python."""
    if not nodes.size:
        return np.zeros(0, dtype=np.int64)
    at = np.minimum(np.searchsorted(ids, parents), ids.shape[0] - 1)
    found = ids[at] == parents
    up = np.where(parents == 0, -1, np.where(found, at, -2))  # an index into ids; -1: the root; -2: missing
    order = np.argsort(nodes, kind="stable")
    up = up[order]  # by position in ids
    dist = np.ones(ids.shape[0], dtype=np.int64)
    live = up >= 0
    while bool(live.any()):
        target = np.where(live, up, 0)
        dist = dist + np.where(live, dist[target], 0)
        up = np.where(live, up[target], up)
        live = up >= 0
    depth: npt.NDArray[np.int64] = np.where(up == -1, dist, -1)
    return depth


def _int_pairs(conn: Connection, query: object) -> npt.NDArray[np.int64]:
    rows = conn.execute(query)  # type: ignore[call-overload]
    return np.fromiter(chain.from_iterable(rows), dtype=np.int64).reshape(-1, 2)


def _member(values: npt.NDArray[np.int64], sorted_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    if sorted_ids.size == 0:
        return np.zeros(values.shape[0], dtype=bool)
    at = np.minimum(np.searchsorted(sorted_ids, values), sorted_ids.shape[0] - 1)
    found: npt.NDArray[np.bool_] = sorted_ids[at] == values
    return found


def _decode_and_sum(rows: list[tuple[int, bytes, list[int]]], keys_seen: set[int]) -> tuple[list[int], list[int]]:
    """Blobs that do not decode, and blobs whose values do not sum to the row's totals."""
    undecodable: list[int] = []
    wrong_totals: list[int] = []
    for row_id, data, totals in rows:
        try:
            arrays = blob.decode(data)
            per_node = blob.decode_nodes(data)  # a rollup's values summed per stack node, when it has them
        except Exception:  # a torn blob may fail anywhere in numpy, zlib or zstd
            undecodable.append(row_id)
            continue
        keys_seen.update(arrays.keys.tolist())
        for table in (arrays, per_node):
            if table is None:
                continue
            sums = table.values.sum(axis=0).tolist() if len(table) else [0] * len(totals)
            if [int(v) for v in sums] != [int(v) for v in totals]:
                wrong_totals.append(row_id)
                break
    return undecodable, wrong_totals


def _profile_blobs(conn: Connection, report: Report, key_ids: npt.NDArray[np.int64]) -> None:
    _blobs(conn, report, "profile", ProfileRow, ProfileBlob.data, ProfileBlob.profile_id, key_ids)


def _rollup_blobs(conn: Connection, report: Report, key_ids: npt.NDArray[np.int64]) -> None:
    _blobs(conn, report, "rollup", Rollup, RollupBlob.data, RollupBlob.rollup_id, key_ids)


def _blobs(
    conn: Connection,
    report: Report,
    what: str,
    owner: type[ProfileRow] | type[Rollup],
    data: InstrumentedAttribute[bytes],
    owner_id: InstrumentedAttribute[int],
    key_ids: npt.NDArray[np.int64],
) -> None:
    """Every blob of ``owner`` rows (profiles or rollups) decodes, sums to its row's totals, names stored keys."""
    keys: set[int] = set()
    undecodable: list[int] = []
    wrong: list[int] = []
    cursor = 0
    while True:
        batch = conn.execute(
            select(owner.id, data, owner.totals)
            .join(data.class_, owner_id == owner.id)
            .where(owner.id > cursor)
            .order_by(owner.id)
            .limit(BATCH)
        ).all()
        if not batch:
            break
        cursor = int(batch[-1][0])
        bad, off = _decode_and_sum([(int(i), bytes(d), list(t)) for i, d, t in batch], keys)
        undecodable += bad
        wrong += off
    report.add(f"{what} blobs that do not decode", undecodable)
    report.add(f"{what} blobs that do not sum to the {what}'s totals", wrong)
    named = np.fromiter(keys, dtype=np.int64, count=len(keys))
    report.add(f"sample keys named by {what} blobs but missing", named[~_member(named, np.sort(key_ids))].tolist())


def _rollup_coverage(conn: Connection, report: Report, raw_since_ns: int, hourly_since_ns: int) -> None:
    """A rollup stands for every profile of its bucket, or it would not exist (late data deletes it).

    Retention deletes raw profiles (the inputs of hourly rollups) and hourly
    rollups (those of daily ones) older than its cutoff, so a bucket that
    starts before the cutoff may have fewer inputs left than its rollup
    counts, never more; buckets after it must match exactly.
    """
    hour = HOUR_S * NS
    bucket = (ProfileRow.time_ns - ProfileRow.time_ns % literal_column(str(hour))).label("bucket")
    inputs = {
        (int(s), int(b), int(shape)): int(n)
        for s, b, shape, n in conn.execute(
            select(ProfileRow.series_id, bucket, ProfileRow.shape_id, func.count()).group_by(
                ProfileRow.series_id, bucket, ProfileRow.shape_id
            )
        )
    }
    rollups = conn.execute(
        select(Rollup.id, Rollup.series_id, Rollup.width_s, Rollup.bucket_ns, Rollup.shape_id, Rollup.profiles)
        .where(Rollup.width_s.in_((HOUR_S, DAY_S)))
        .order_by(Rollup.width_s)  # hours first: they are the days' inputs
    ).all()
    hours_per_day: dict[tuple[int, int, int], int] = {}
    wrong: list[int] = []
    for rid, raw_sid, width, raw_bucket, raw_shape, raw_profiles in rollups:
        sid, start, shape, profiles = int(raw_sid), int(raw_bucket), int(raw_shape), int(raw_profiles)
        if int(width) == HOUR_S:
            day = start - start % (DAY_S * NS)
            hours_per_day[(sid, day, shape)] = hours_per_day.get((sid, day, shape), 0) + profiles
            found, since = inputs.get((sid, start, shape), 0), raw_since_ns
        else:
            found, since = hours_per_day.get((sid, start, shape), 0), hourly_since_ns
        if profiles != found and (start >= since or profiles < found):
            wrong.append(int(rid))
    report.add("rollups that no longer stand for every profile of their bucket", wrong)
