"""Fuzzing the parsers of untrusted input with hypothesis (the targets are in tests/support/fuzzing.py).

In CI this is a bounded, deterministic run (profile ``ci``: few examples, a
fixed seed, a few seconds in all). ``scripts/fuzz.sh`` (``make fuzz``) runs the
same tests with profile ``long`` and many more examples, then atheris. Every
finding is kept in tests/data/fuzz/<target>/ and replayed by
:func:`test_kept_findings_stay_fixed`.

Inputs are real captures from tests/data, mutated (bytes flipped, inserted,
deleted, chunks spliced, varints replaced with extremes, truncated) and sent
both raw and gzip-wrapped; random bytes; and protobuf ``Profile`` messages
built field by field with small, often dangling, indices, so that the
validation stage sees input that parses.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.pprof import profile_pb2
from tests.support.fuzzing import FUZZ_DATA, TARGETS, regressions, run, seeds

settings.register_profile(
    "ci",
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("STACKYARD_FUZZ_EXAMPLES", "5000")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
FUZZ = settings.get_profile(os.environ.get("STACKYARD_FUZZ_PROFILE", "ci"))

PPROF_SEEDS = list(seeds("pprof"))
RAW_SEEDS = list(seeds("pprof_limits"))

# --------------------------------------------------------------------------- strategies


@st.composite
def mutated(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    """A real input with a few byte-level edits, the way a flaky network or a buggy agent would damage it."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "splice", "varint", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "splice" and data:
            start = draw(st.integers(0, len(data) - 1))
            data[at:at] = data[start : start + draw(st.integers(1, 64))]
        elif op == "varint":
            extreme = draw(st.sampled_from([b"\xff" * 9 + b"\x01", b"\xff" * 10, b"\x80" * 11, b"\x00", b"\x7f"]))
            data[at : at + len(extreme)] = extreme
        elif op == "truncate":
            del data[at:]
    return bytes(data)


small = st.integers(-2, 6)
ids = st.integers(0, 6)


@st.composite
def profile_messages(draw: st.DrawFn) -> bytes:
    """A protobuf Profile with tiny tables and indices that are as often wrong as right."""
    message = profile_pb2.Profile()
    message.string_table.extend(draw(st.lists(st.text(max_size=6), max_size=6)))
    for _ in range(draw(st.integers(0, 3))):
        value_type = message.sample_type.add()
        value_type.type, value_type.unit = draw(small), draw(small)
    for _ in range(draw(st.integers(0, 4))):
        sample = message.sample.add()
        sample.location_id.extend(draw(st.lists(ids, max_size=5)))
        sample.value.extend(draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)))
        for _ in range(draw(st.integers(0, 2))):
            label = sample.label.add()
            label.key, label.str, label.num, label.num_unit = draw(small), draw(small), draw(small), draw(small)
    for _ in range(draw(st.integers(0, 2))):
        mapping = message.mapping.add()
        mapping.id, mapping.filename = draw(ids), draw(small)
    for _ in range(draw(st.integers(0, 4))):
        location = message.location.add()
        location.id, location.mapping_id, location.address = draw(ids), draw(ids), draw(st.integers(0, 2**64 - 1))
        for _ in range(draw(st.integers(0, 2))):
            line = location.line.add()
            line.function_id, line.line = draw(ids), draw(small)
    for _ in range(draw(st.integers(0, 4))):
        function = message.function.add()
        function.id, function.name, function.system_name, function.filename = (
            draw(ids),
            draw(small),
            draw(small),
            draw(small),
        )
    message.comment.extend(draw(st.lists(small, max_size=2)))
    message.default_sample_type = draw(small)
    if draw(st.booleans()):
        message.period_type.type, message.period_type.unit = draw(small), draw(small)
    message.period = draw(st.integers(-(2**63), 2**63 - 1))
    message.time_nanos = draw(st.integers(-(2**63), 2**63 - 1))
    return message.SerializeToString()


RECORDS = [
    b"\x12\x00",  # an empty sample
    b"\x12\x04\x08\x01\x10\x05",  # a sample at location 1, value 5
    b"\x12\x02\x1a\x00",  # a sample with an empty label
    b"\x1a\x02\x08\x01",  # a mapping
    b"\x22\x04\x08\x01\x22\x00",  # a location with an empty line
    b"\x2a\x02\x08\x01",  # a function
    b"\x32\x01a",  # a string
    b"\x0a\x04\x08\x01\x10\x02",  # a sample type
    b"\x6a\x03\x01\x02\x03",  # packed comments
    b"\x32\x80\x40",  # a string of 8 KiB, announced (more than the record limit)
]


@st.composite
def record_floods(draw: st.DrawFn) -> bytes:
    """Records repeated past the small limits: what a bomb is made of, with the odd byte off."""
    parts = [b"\x32\x00"]
    for _ in range(draw(st.integers(1, 4))):
        parts.append(draw(st.sampled_from(RECORDS)) * draw(st.integers(1, 400)))
    data = bytearray(b"".join(parts))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


pprof_inputs = st.one_of(
    mutated(PPROF_SEEDS),
    st.binary(max_size=512),
    st.binary(max_size=512).map(lambda b: gzip.compress(b, mtime=0)),
    mutated(PPROF_SEEDS).map(lambda b: gzip.compress(b, compresslevel=1, mtime=0)),
    profile_messages(),
)

label_names = st.sampled_from(["service", "env", "handler", "a_1", "_x", "1bad", "", "__name__"])
#: Patterns that hurt a backtracking engine, and syntax RE2 lacks: the selector's regex path must refuse or answer.
REGEX_TRAPS = ["(.|.)*x", "(a+)+$", "(a|aa)*b", "(x+x+)+y", "(a)\\\\1", "(?=a)", "(?<!a)b", "a++", "\\\\Z", "a{1001}"]
label_values = st.text(max_size=8) | st.sampled_from(
    [".*", "prod|dev", "(", "[a-", "\\", '"', "a{2,1}", "(?P<x", *REGEX_TRAPS]
)
ops = st.sampled_from(["=", "!=", "=~", "!~", "==", "~", ""])
quotes = st.sampled_from(['"', "'", "`", ""])


@st.composite
def selectors(draw: st.DrawFn) -> bytes:
    """Mostly-well-formed selectors, with one part often wrong; plus plain text."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        quote = draw(quotes)
        closing = draw(quotes) if draw(st.booleans()) else quote
        parts.append(f"{draw(label_names)}{draw(ops)}{quote}{draw(label_values)}{closing}")
    body = draw(st.sampled_from([", ", ",", " ", ""])).join(parts)
    text = f"{draw(st.sampled_from(['{', '', ' {']))}{body}{draw(st.sampled_from(['}', '', '},', '} x']))}"
    return text.encode()


numbers = st.one_of(
    st.integers(0, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", ".", "1.", ".5", "0x10", "1e400", "9" * 400, "-0", "١٢", "²"]),
)
units = st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h", "d", "w", "y", "", "x", "H"])


@st.composite
def times(draw: st.DrawFn) -> bytes:
    """Durations (``1h30m``), ``now-DURATION``, Unix seconds and RFC 3339, joined into a from/to pair."""

    def one() -> str:
        duration = "".join(f"{draw(numbers)}{draw(units)}" for _ in range(draw(st.integers(1, 3))))
        kind = draw(st.sampled_from(["duration", "now", "unix", "rfc3339", "text"]))
        if kind == "duration":
            return duration
        if kind == "now":
            return f"now{draw(st.sampled_from(['-', '+', '', '--']))}{duration}"
        if kind == "unix":
            return draw(numbers)
        if kind == "rfc3339":
            year = draw(st.integers(0, 99999))
            zone = draw(st.sampled_from(["Z", "z", "+00:00", "-23:59", "+24:00", ""]))
            return f"{year:04d}-{draw(st.integers(0, 13)):02d}-{draw(st.integers(0, 32)):02d}T12:00:00{zone}"
        return draw(st.text(max_size=12))

    return f"{one()}\n{one()}".encode()


config_keys = st.sampled_from(
    [
        "scrape_configs",
        "job_name",
        "scrape_interval",
        "scrape_timeout",
        "static_configs",
        "targets",
        "labels",
        "scheme",
        "path_prefix",
        "profiles",
        "basic_auth",
        "bearer_token",
        "bearer_token_file",
        "tls_config",
        "file_sd_configs",
        "files",
        "cpu",
        "seconds",
        "enabled",
        "<<",
        "nope",
    ]
)
config_scalars = st.one_of(
    st.sampled_from(["15s", "0s", "1h30m", "-1s", "9" * 30 + "s", "http", "ftp", "127.0.0.1:6060", "[::1]:1", "/x"]),
    st.sampled_from(["null", "~", "true", "1e400", "0x", "2026-02-30", "*a", "&a x", "!!binary x", "'", '"']),
    st.integers(-(10**20), 10**20).map(str),
    st.text(max_size=10),
)


@st.composite
def configs(draw: st.DrawFn) -> bytes:
    """YAML assembled from the config's own keys with values of every shape, at random depths and indents."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 12))):
        indent = "  " * draw(st.integers(0, 4))
        dash = draw(st.sampled_from(["", "- "]))
        key = draw(config_keys)
        value = draw(config_scalars) if draw(st.booleans()) else ""
        lines.append(f"{indent}{dash}{key}: {value}".rstrip())
    return "\n".join(lines).encode()


@st.composite
def portable_regexes(draw: st.DrawFn) -> str:
    """Patterns from the subset RE2 and ``re`` read alike (support/fuzzing.py REGEX_PORTABLE), nested a few levels."""
    atoms = st.sampled_from(["a", "b", "c", ".", "[ab]", "[^c]", "[a-c]", "()", "a{2}", "[]a]"])
    quantifiers = st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "{0,}", "*?", "+?", "{0,2}?"])
    tree = st.recursive(
        atoms,
        lambda inner: st.one_of(
            inner.map(lambda r: f"({r})"),
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map("|".join),
            st.tuples(inner, quantifiers).map(lambda t: f"({t[0]}){t[1]}"),
        ),
        max_leaves=8,
    )
    return str(draw(tree))


regex_inputs = st.one_of(
    st.tuples(portable_regexes(), st.text(alphabet="abc\n", max_size=12)),
    st.tuples(st.sampled_from(REGEX_TRAPS), st.text(alphabet="abxy", min_size=20, max_size=200)),
    st.tuples(st.text(max_size=12), st.text(max_size=12)),
).map(lambda pair: f"{pair[0]}\0{pair[1]}".encode("utf-8", "surrogatepass")) | st.binary(max_size=64)

webhook_hosts = st.sampled_from(
    [
        "169.254.169.254",
        "2852039166",
        "0xa9fea9fe",
        "0251.0376.0251.0376",
        "169.254.43518",
        "169.16689662",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[64:ff9b::a9fe:a9fe]",
        "[::a9fe:a9fe]",
        "[2002:a9fe:a9fe::]",
        "[::ffff:0:a9fe:a9fe]",
        "[fd00:ec2::254]",
        "[fe80::1%25eth0]",
        "127.0.0.1",
        "127.1",
        "0",
        "0.0.0.0",
        "0x0",
        "[::]",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "192.0.2.7",
        "hooks.example",
        "169.254.169.254.",
        "%31%36%39.254.169.254",
        "169\u3002254\u3002169\u3002254",
        "\uff11\uff16\uff19.254.169.254",
        "",
    ]
)


@st.composite
def webhook_urls(draw: st.DrawFn) -> bytes:
    """URLs assembled from schemes, userinfo tricks, address forms, ports and paths, with stray text at times."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "hTtPs", "ftp", "", "javascript"]))
    separator = draw(st.sampled_from(["://", ":/", ":\\\\", ":", "://\t"]))
    userinfo = draw(st.sampled_from(["", "user@", "user:pass@", "a@b@", "hooks.example@", "x\\@", "@"]))
    host = draw(webhook_hosts)
    port = draw(st.sampled_from(["", ":80", ":9093", ":0", ":65536", ":-1", ":x", ":"]))
    path = draw(st.sampled_from(["", "/", "/hook", "?q=1", "#f", "\\@hooks.example/", "/\t/x", "@hooks.example"]))
    parts = [scheme, separator, userinfo, host, port, path]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(parts)))
        parts.insert(at, draw(st.text(max_size=4)))
    return "".join(parts).encode("utf-8", "surrogatepass")


CONFIG_SEED = list(seeds("config"))
DUMP_SEEDS = list(seeds("goroutine_dump"))

INPUTS: dict[str, st.SearchStrategy[bytes]] = {
    "pprof": pprof_inputs,
    "pprof_limits": record_floods()
    | mutated([seed for seed in PPROF_SEEDS if seed[:2] != b"\x1f\x8b"])
    | profile_messages(),
    "pprof_gzip": pprof_inputs,
    "ingest": pprof_inputs,
    "selector": selectors() | st.binary(max_size=64),
    "time": times() | st.binary(max_size=32),
    "config": configs() | mutated(CONFIG_SEED) | st.binary(max_size=128),
    "goroutine_dump": mutated(DUMP_SEEDS) | st.binary(max_size=256),
    "regex": regex_inputs,
    "webhook_url": webhook_urls() | st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
}


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz(target: str) -> None:
    """Every generated input is accepted or refused with the parser's own error; counts show both happen."""
    outcomes = {True: 0, False: 0}

    @FUZZ
    @given(INPUTS[target])
    def check(data: bytes) -> None:
        outcomes[run(target, data)] += 1

    check()
    assert outcomes[False] > 0, f"no {target} input was rejected: the strategy is not reaching the error paths"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_are_accepted(target: str) -> None:
    """The real inputs the mutations start from are valid, so mutations probe the edge of valid input."""
    originals = list(seeds(target))
    assert originals
    accepted = [run(target, data) for data in originals]
    assert any(accepted), f"no seed of {target} is accepted"


def _finding_ids() -> list[str]:
    return [f"{target}/{path.name}" for target, path in regressions()]


@pytest.mark.parametrize(("target", "path"), list(regressions()), ids=_finding_ids())
def test_kept_findings_stay_fixed(target: str, path: Path) -> None:
    """Each file under tests/data/fuzz/<target>/ once crashed its target; now it must be accepted or refused."""
    run(target, path.read_bytes())


def test_every_finding_folder_names_a_target() -> None:
    assert FUZZ_DATA.is_dir()
    folders = {p.name for p in FUZZ_DATA.iterdir() if p.is_dir()}
    assert folders <= set(TARGETS), folders - set(TARGETS)
