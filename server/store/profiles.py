"""Profile rows and their sample blobs: writing one, listing many, reading blobs in bulk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select

from server.store.database import chunks
from server.store.models import ProfileBlob, ProfileRow


@dataclass(frozen=True, slots=True)
class ProfileMeta:
    id: int
    series_id: int
    time_ns: int
    duration_ns: int
    period: int
    period_type: str
    sample_types: list[str]
    default_sample_type: str
    samples: int
    totals: list[int]

    def sample_index(self, name: str) -> int | None:
        """Position of the sample type ``name`` ("cpu" or "cpu/nanoseconds")."""
        for index, entry in enumerate(self.sample_types):
            type_name = entry.split("/", 1)[0]
            if name in (type_name, entry):
                return index
        return None

    def default_sample_index(self) -> int:
        if self.default_sample_type:
            found = self.sample_index(self.default_sample_type)
            if found is not None:
                return found
        return len(self.sample_types) - 1


def insert_profile(engine: Engine, row: dict[str, object], blob: bytes) -> int:
    """One transaction: a profile row never exists without its blob."""
    with engine.begin() as conn:
        profile_id = int(conn.execute(insert(ProfileRow).returning(ProfileRow.id), [row]).scalar_one())
        conn.execute(insert(ProfileBlob), [{"profile_id": profile_id, "data": blob}])
    return profile_id


_META_COLUMNS = (
    ProfileRow.id,
    ProfileRow.series_id,
    ProfileRow.time_ns,
    ProfileRow.duration_ns,
    ProfileRow.period,
    ProfileRow.period_type,
    ProfileRow.sample_types,
    ProfileRow.default_sample_type,
    ProfileRow.samples,
    ProfileRow.totals,
)


def _meta(row: Sequence[object]) -> ProfileMeta:
    pid, sid, t, d, period, ptype, stypes, default, samples, totals = row
    return ProfileMeta(
        int(pid),  # type: ignore[call-overload]
        int(sid),  # type: ignore[call-overload]
        int(t),  # type: ignore[call-overload]
        int(d),  # type: ignore[call-overload]
        int(period),  # type: ignore[call-overload]
        str(ptype),
        str(stypes).split(",") if stypes else [],
        str(default),
        int(samples),  # type: ignore[call-overload]
        [int(v) for v in totals],  # type: ignore[attr-defined]
    )


def list_profiles(
    engine: Engine, series_ids: Sequence[int], start_ns: int, end_ns: int, limit: int
) -> list[ProfileMeta]:
    """Profiles of the series with ``start_ns <= time < end_ns``, oldest first, at most ``limit``."""
    result: list[ProfileMeta] = []
    with engine.connect() as conn:
        for part in chunks(list(series_ids), 500):
            query = (
                select(*_META_COLUMNS)
                .where(ProfileRow.series_id.in_(part), ProfileRow.time_ns >= start_ns, ProfileRow.time_ns < end_ns)
                .order_by(ProfileRow.time_ns, ProfileRow.id)
                .limit(limit - len(result) + 1)
            )
            result.extend(_meta(row) for row in conn.execute(query))
            if len(result) > limit:
                break
    result.sort(key=lambda m: (m.time_ns, m.id))
    return result


def get_profile(engine: Engine, profile_id: int) -> ProfileMeta | None:
    with engine.connect() as conn:
        row = conn.execute(select(*_META_COLUMNS).where(ProfileRow.id == profile_id)).first()
    return _meta(row) if row is not None else None


def load_blobs(engine: Engine, profile_ids: Sequence[int]) -> dict[int, bytes]:
    blobs: dict[int, bytes] = {}
    with engine.connect() as conn:
        for part in chunks(list(profile_ids), 500):
            query = select(ProfileBlob.profile_id, ProfileBlob.data).where(ProfileBlob.profile_id.in_(part))
            blobs.update({int(pid): bytes(data) for pid, data in conn.execute(query)})
    return blobs
