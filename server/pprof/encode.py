"""A :class:`~server.pprof.model.Profile` back to gzip-compressed pprof bytes.

Ids and the string table are rebuilt from scratch: functions and locations
are numbered in the order first met, so encoding is deterministic for a given
profile and ``go tool pprof`` reads the result like any Go-written profile.
"""

from __future__ import annotations

import gzip

from server.pprof import profile_pb2
from server.pprof.model import Function, Location, Mapping, Profile


class _Strings:
    def __init__(self) -> None:
        self.table: list[str] = [""]
        self.index: dict[str, int] = {"": 0}

    def __call__(self, value: str) -> int:
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.table)
            self.table.append(value)
        return found


def to_message(profile: Profile) -> profile_pb2.Profile:
    """Build the protobuf message for ``profile``."""
    out = profile_pb2.Profile()
    strings = _Strings()
    for value_type in profile.sample_types:
        out.sample_type.add(type=strings(value_type.type), unit=strings(value_type.unit))
    function_ids: dict[int, int] = {}
    location_ids: dict[int, int] = {}
    mapping_ids: dict[int, int] = {}

    def mapping_id(mapping: Mapping | None) -> int:
        if mapping is None:
            return 0
        key = id(mapping)
        found = mapping_ids.get(key)
        if found is None:
            found = mapping_ids[key] = len(mapping_ids) + 1
            out.mapping.add(
                id=found,
                memory_start=mapping.memory_start,
                memory_limit=mapping.memory_limit,
                file_offset=mapping.file_offset,
                filename=strings(mapping.filename),
                build_id=strings(mapping.build_id),
            )
        return found

    def function_id(function: Function) -> int:
        key = id(function)
        found = function_ids.get(key)
        if found is None:
            found = function_ids[key] = len(function_ids) + 1
            out.function.add(
                id=found,
                name=strings(function.name),
                system_name=strings(function.system_name),
                filename=strings(function.filename),
                start_line=function.start_line,
            )
        return found

    def location_id(location: Location) -> int:
        key = id(location)
        found = location_ids.get(key)
        if found is None:
            found = location_ids[key] = len(location_ids) + 1
            pb_location = out.location.add(id=found, mapping_id=mapping_id(location.mapping), address=location.address)
            for line in location.lines:
                pb_location.line.add(function_id=function_id(line.function), line=line.line)
        return found

    for sample in profile.samples:
        pb_sample = out.sample.add()
        pb_sample.location_id.extend([location_id(location) for location in sample.locations])
        pb_sample.value.extend(sample.values)
        for key, value in sample.labels:
            pb_sample.label.add(key=strings(key), str=strings(value))
        for key, number, unit in sample.num_labels:
            pb_sample.label.add(key=strings(key), num=number, num_unit=strings(unit))

    if profile.period_type is not None:
        out.period_type.type = strings(profile.period_type.type)
        out.period_type.unit = strings(profile.period_type.unit)
    out.period = profile.period
    out.time_nanos = profile.time_nanos
    out.duration_nanos = profile.duration_nanos
    if profile.default_sample_type:
        out.default_sample_type = strings(profile.default_sample_type)
    out.comment.extend([strings(comment) for comment in profile.comments])
    if profile.drop_frames:
        out.drop_frames = strings(profile.drop_frames)
    if profile.keep_frames:
        out.keep_frames = strings(profile.keep_frames)
    out.string_table.extend(strings.table)
    return out


def encode(profile: Profile, compresslevel: int = 6) -> bytes:
    """Serialise ``profile`` as gzip-compressed protobuf, as Go serves profiles."""
    return gzip.compress(to_message(profile).SerializeToString(), compresslevel=compresslevel, mtime=0)
