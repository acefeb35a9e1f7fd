"""Fuzz targets: one function per parser that takes untrusted input, and the only errors it may raise.

Each target feeds one input to the real parser and fails (raises something
that is not :class:`Rejected`) if the parser crashes, raises an exception other
than its documented error type, or accepts input it then cannot use. Two
drivers run them: hypothesis (tests/server/pprof/test_fuzz.py, bounded in CI, long with
``scripts/fuzz.sh``) and atheris (scripts/fuzz_atheris.py, coverage-guided,
for minutes). Keeping the targets here means both drivers check exactly the
same properties, and a finding from either becomes a file in
``tests/data/fuzz/<target>/`` that tests/server/pprof/test_fuzz.py replays.

Adding a parser (the goroutine dump parser, for example): write one function
``def fuzz_goroutine_dump(data: bytes) -> None`` that calls it and lets its
own error type through as :class:`Rejected`, add it to :data:`TARGETS`, give
it a strategy in tests/server/pprof/test_fuzz.py and a seed corpus in :func:`seeds`
(``tests/data/goroutine_debug2.txt``). Nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpcore
import httpx
import numpy as np
from fastapi.testclient import TestClient

from server.alerts.receivers import check_webhook_url
from server.app import create_app
from server.config.load import load_config
from server.config.problems import ConfigError
from server.errors import InvalidParameter, SelectorError, TimeRangeError
from server.goroutines.groups import group_goroutines
from server.goroutines.parse import DumpError, DumpTooLarge, parse_dump
from server.migrate import upgrade
from server.network.guard import AddressRefused, GuardedBackend
from server.network.policy import DEFAULT_DENY_NETWORKS, NetworkPolicy, numeric_host
from server.pprof import DecodeLimitError, DecodeLimits, ProfileError, decode, encode
from server.pprof.columns import (
    NATIVE,
    ColumnParser,
    ProfileColumns,
    column_parser,
    parse_columns,
    parse_columns_native,
    parse_columns_python,
)
from server.pprof.decode import decompress
from server.pprof.frames import expand, expand_numpy
from server.pprof.identity import sample_keys, sample_keys_numpy
from server.pprof.validate import validate, validate_fully
from server.query.regex import RegexError, compile_regex
from server.query.selector import parse_selector
from server.settings import Settings
from server.syntax.times import format_time, parse_duration_ns, parse_time_ns, time_range_ns
from tests.support.tools import DATA

FUZZ_DATA = DATA / "fuzz"
#: Small enough that a random gzip bomb is cheap to reject, big enough for every capture in tests/data.
MAX_DECOMPRESSED = 4 * 1024 * 1024
#: A fixed "now" so that a replayed regression case behaves as it did when it was found.
NOW_NS = 1_790_000_000 * 10**9


class Rejected(Exception):
    """The input was refused the documented way; the driver counts it and moves on."""


# --------------------------------------------------------------------------- pprof


def _same_columns(a: ProfileColumns, b: ProfileColumns) -> bool:
    for name in ProfileColumns.__slots__:
        left, right = getattr(a, name), getattr(b, name)
        if isinstance(left, np.ndarray):
            if not np.array_equal(left, right):
                return False
        elif left != right:
            return False
    return True


def _kernels_agree(data: bytes) -> None:
    """The C decoder's kernels agree with the numpy they stand in for, on whatever parses.

    Its one-pass check may vouch only for columns the full check accepts, and
    its identity hash and frame expansion must equal the numpy ones on every accepted profile.
    """
    try:
        columns = parse_columns(decompress(data, MAX_DECOMPRESSED))
    except ProfileError:
        return
    try:
        validate_fully(columns)
    except ProfileError:
        try:
            validate(columns)
        except ProfileError:
            return
        raise AssertionError("the C decoder's check vouched for columns the full check refuses") from None
    if NATIVE:
        functions = np.arange(3, 3 + 7 * columns.function_id.shape[0], 7, dtype=np.int64)
        labelsets = np.arange(columns.sample_loc_offsets.shape[0] - 1, dtype=np.int64) % 3
        if not np.array_equal(
            sample_keys(columns, functions, labelsets), sample_keys_numpy(columns, functions, labelsets)
        ):
            raise AssertionError("the C decoder's identity hash differs from the numpy one")
        chosen = np.arange(0, columns.sample_loc_offsets.shape[0] - 1, 2, dtype=np.int64)
        for which in (None, chosen):
            native, reference = expand(columns, which), expand_numpy(columns, which)
            if native.extra_names != reference.extra_names or not all(
                np.array_equal(getattr(native, name), getattr(reference, name))
                for name in ("offsets", "entries", "entry_functions", "entry_lines", "entry_inlined")
            ):
                raise AssertionError("the C decoder's frame expansion differs from the numpy one")


def fuzz_pprof(data: bytes) -> None:
    """decode() raises only ``ProfileError``; what it accepts survives re-encoding; C and upb agree.

    The C decoder's kernels must agree with the numpy they replace (:func:`_kernels_agree`).
    The C decoder and the upb fallback must produce identical columns for
    every input both accept. They may disagree on acceptance only in the two
    ways server/pprof/columns.py documents (invalid UTF-8 in the string table,
    a known field with the wrong wire type), so only that case is compared.
    """
    _kernels_agree(data)
    try:
        profile = decode(data, MAX_DECOMPRESSED)
    except ProfileError as exc:
        if not str(exc):
            raise AssertionError("a ProfileError without a message") from exc
        raise Rejected(str(exc)) from None
    again = decode(encode(profile), MAX_DECOMPRESSED)
    if len(again.samples) != len(profile.samples) or again.sample_types != profile.sample_types:
        raise AssertionError("re-encoding an accepted profile changed it")
    if NATIVE:
        raw = decompress(data, MAX_DECOMPRESSED)
        native = parse_columns_native(raw)
        try:
            python = parse_columns_python(raw)
        except ProfileError:
            return  # upb is stricter about UTF-8 and wire types; documented
        if not _same_columns(native, python):
            raise AssertionError("the C decoder and the upb fallback disagree on an accepted profile")


#: Limits small enough that fuzzed inputs reach them: every count limit, the record limit and the budget.
SMALL_LIMITS = DecodeLimits(samples=40, locations=40, sample_types=6, memory=48 * 1024, record=4096)
#: The limits that count records (the fallback must refuse whenever the C decoder does by one of these).
COUNTED = {"profile_samples", "profile_locations", "profile_sample_types", "profile_record_bytes"}

Outcome = ProfileColumns | tuple[str, str]


def _decode_in_pieces(parser: ColumnParser, data: bytes, piece: int) -> Outcome:
    try:
        for start in range(0, len(data), piece):
            parser.feed(data[start : start + piece])
        return parser.finish()
    except DecodeLimitError as exc:
        return ("limit", exc.name)
    except ProfileError as exc:
        if not str(exc):
            raise AssertionError("a ProfileError without a message") from exc
        return ("error", str(exc))


def _same(a: Outcome, b: Outcome) -> bool:
    if isinstance(a, ProfileColumns) and isinstance(b, ProfileColumns):
        return _same_columns(a, b)
    return a == b


def fuzz_pprof_limits(data: bytes) -> None:
    """The decoder under small limits: a limit or a parse error, never more memory than the budget.

    The same input fed whole and in pieces (as inflation hands it over) has
    the same outcome, to the error message; the C decoder's budget is never
    passed; and when the C decoder refuses by a count, the fallback refuses too
    (it may refuse more: it estimates memory before upb parses).
    """
    whole = _decode_in_pieces(column_parser(SMALL_LIMITS), data, max(len(data), 1))
    piece = 1 + (data[0] if data else 0) % 13
    if not _same(whole, _decode_in_pieces(column_parser(SMALL_LIMITS), data, piece)):
        raise AssertionError(f"fed {piece} bytes at a time, the decoder answered differently than at once")
    if NATIVE:
        from server.pprof import _wire

        parser = _wire.Parser(
            samples=SMALL_LIMITS.samples,
            locations=SMALL_LIMITS.locations,
            sample_types=SMALL_LIMITS.sample_types,
            memory=SMALL_LIMITS.memory,
            record=SMALL_LIMITS.record,
        )
        with contextlib.suppress(ValueError):
            parser.feed(data)
        if parser.used > SMALL_LIMITS.memory:
            raise AssertionError(f"the C decoder used {parser.used} bytes, over its budget of {SMALL_LIMITS.memory}")
        fallback = _decode_in_pieces(column_parser(SMALL_LIMITS, native=False), data, max(len(data), 1))
        if (
            isinstance(whole, tuple)
            and whole[0] == "limit"
            and whole[1] in COUNTED
            and isinstance(fallback, ProfileColumns)
        ):
            raise AssertionError(f"the C decoder refused by {whole[1]}, the fallback accepted")
    if isinstance(whole, tuple):
        raise Rejected(whole[1])


def fuzz_pprof_gzip(data: bytes) -> None:
    """The same input gzip-wrapped, as Go serves profiles: every stage after gunzip is reached again."""
    fuzz_pprof(gzip.compress(data, compresslevel=1, mtime=0))


_ingest_client: list[TestClient] = []


def fuzz_ingest(data: bytes) -> None:
    """POST /api/v1/ingest on a real app over SQLite: 201, or a 4xx JSON error; never a 500.

    Reaches everything after decoding that a push runs (type inference, frame
    expansion, dedup, the store), which a bare decoder target cannot.
    """
    if not _ingest_client:
        folder = Path(tempfile.mkdtemp(prefix="stackyard-fuzz-ingest-"))
        url = f"sqlite:///{folder / 'fuzz.db'}"
        upgrade(url)
        settings = Settings(database_url=url, retention_raw="36500d", max_decompressed_bytes=MAX_DECOMPRESSED)
        _ingest_client.append(TestClient(create_app(settings), raise_server_exceptions=True))
    response = _ingest_client[0].post("/api/v1/ingest", params={"service": "fuzz", "time": "1790000000"}, content=data)
    if response.status_code == 201:
        return
    body = response.json()
    if not (400 <= response.status_code < 500 and body.get("status") == response.status_code and body.get("error")):
        raise AssertionError(f"ingest answered {response.status_code}: {response.text[:300]}")
    raise Rejected(body["error"])


# --------------------------------------------------------------------------- selectors and times


def fuzz_selector(data: bytes) -> None:
    """parse_selector raises only ``SelectorError``, whose position lies inside the text; a parsed selector works."""
    text = data.decode("utf-8", "replace")
    try:
        selector = parse_selector(text)
    except SelectorError as exc:
        raise Rejected(exc.message) from None
    labels = {m.name: m.value for m in selector.matchers}
    selector.matches(labels)
    selector.matches({})
    selector.split({m.name for m in selector.matchers[:1]})


def fuzz_time(data: bytes) -> None:
    """Durations, times and ranges raise only ``TimeRangeError``; what they accept can be formatted back."""
    text = data.decode("utf-8", "replace")
    start, _, end = text.partition("\n")
    rejected = 0
    try:
        parse_duration_ns(text)
    except TimeRangeError:
        rejected += 1
    try:
        format_time(parse_time_ns(text, "from", NOW_NS))
    except TimeRangeError:
        rejected += 1
    try:
        time_range_ns(start or None, end or None)
    except TimeRangeError:
        rejected += 1
    if rejected == 3:
        raise Rejected(text)


# --------------------------------------------------------------------------- regular expressions

#: Patterns made only of these characters mean the same in RE2 and Python's ``re`` when both accept them,
#: on subjects of ``REGEX_SUBJECT_ALPHABET``: the differential check below holds exactly there.
REGEX_PORTABLE = frozenset("abc.|*+?()[]{},0123456789^-")
REGEX_SUBJECT_ALPHABET = frozenset("abc\n")


def fuzz_regex(data: bytes) -> None:
    """Pattern, NUL, subject: compile_regex raises only ``RegexError``; a compiled pattern matches whole strings.

    Matching never raises, whatever the subject (lone surrogates included).
    Where the pattern uses only the portable subset and the subject only
    a, b, c and newlines, RE2's answer must equal ``re.fullmatch``'s: the
    switch of engine kept Prometheus's anchored semantics.
    """
    text = data.decode("utf-8", "surrogateescape")
    pattern, _, subject = text.partition("\0")
    try:
        regex = compile_regex(pattern)
    except RegexError as exc:
        if not str(exc):
            raise AssertionError("a RegexError without a message") from exc
        raise Rejected(str(exc)) from None
    found = regex.fullmatch(subject)
    if set(pattern) <= REGEX_PORTABLE and set(subject) <= REGEX_SUBJECT_ALPHABET and len(subject) <= 12:
        try:
            expected = re.fullmatch(pattern, subject) is not None
        except re.error:
            return  # RE2 accepts some patterns re does not (a{,2}, nested repeats): nothing to compare
        if found != expected:
            raise AssertionError(f"RE2 says {found}, re says {expected} for {pattern!r} on {subject!r}")


# --------------------------------------------------------------------------- webhook URLs

#: Loopback denied as well as the defaults, so "this host" forms are refusals to find.
WEBHOOK_POLICY = NetworkPolicy(deny=[*DEFAULT_DENY_NETWORKS, "127.0.0.0/8", "::1/128"])


class _Recorder(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer (a test cannot connect to 169.254.169.254): records where it was sent."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: object, **kwargs: object) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        raise httpcore.ConnectError("recorded, not connected")


async def _guard_connects(host: str, port: int) -> list[str]:
    recorder = _Recorder()
    with contextlib.suppress(AddressRefused, httpcore.ConnectError):
        await GuardedBackend(WEBHOOK_POLICY, recorder).connect_tcp(host, port)
    return recorder.connected


def fuzz_webhook_url(data: bytes) -> None:
    """check_webhook_url raises only ``InvalidParameter``; what it accepts cannot reach a denied address.

    For an accepted URL, the host httpx (the dispatcher's client) would
    connect to is taken from httpx's own parse, not ours: if it is written as
    an address, the policy must allow it (a parser disagreement would be a
    way around the registration check), and the connect-time guard, handed
    that host, may only ever connect to addresses the policy allows. Names
    are not resolved here (no DNS in a fuzz run); the guard's name path is
    the same code with the resolver's answers.
    """
    url = data.decode("utf-8", "replace")
    try:
        check_webhook_url(url, WEBHOOK_POLICY)
    except InvalidParameter as exc:
        raise Rejected(exc.message) from None
    try:
        parsed = httpx.URL(url)
        host, port = parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)
    except (httpx.InvalidURL, ValueError):
        return  # the dispatcher's client refuses it before any connection
    address = numeric_host(host) if host else None
    if address is None:
        return
    refusal = WEBHOOK_POLICY.refusal(address)
    if refusal is not None:
        raise AssertionError(f"accepted {url!r}, which httpx sends to {host} ({refusal})")
    for connected in asyncio.run(_guard_connects(host, port)):
        if WEBHOOK_POLICY.refusal(connected) is not None:
            raise AssertionError(f"the guard connected to {connected} for {url!r}")


# --------------------------------------------------------------------------- config


def _yaml_lines(data: bytes) -> int:
    """Lines as YAML counts them: CR, NEL, LS and PS end lines too (CRLF is one break)."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    return 1 + sum(text.count(b) for b in ("\n", "\r", "\x85", "\u2028", "\u2029"))


def fuzz_config(data: bytes) -> None:
    """load_config raises only ``ConfigError``, with a line number whenever the text is a YAML document."""
    with tempfile.TemporaryDirectory(prefix="stackyard-fuzz-") as folder:
        path = Path(folder) / "stackyard.yaml"
        path.write_bytes(data)
        try:
            load_config(path)
        except ConfigError as exc:
            for problem in exc.problems:
                if problem.line is None and not problem.message.startswith(
                    ("cannot read the file", "YAML syntax error: nested too deeply")
                ):
                    raise AssertionError(f"a config problem without a line number: {problem}") from exc
                if problem.line is not None and not 1 <= problem.line <= _yaml_lines(data) + 1:
                    raise AssertionError(f"line {problem.line} is outside the file: {problem}") from exc
            raise Rejected(str(exc)) from None


# --------------------------------------------------------------------------- goroutine dumps


def fuzz_goroutine_dump(data: bytes) -> None:
    """A ``debug=2`` dump parses or raises ``DumpError``; what parses also groups (what ingest does next).

    Parsed twice: with the default limits, and with limits small enough to be
    met (20 goroutines, 8 stacks), where the only other answer is ``DumpTooLarge``
    naming its limit, and what parses within them is what parses without.
    """
    try:
        goroutines = parse_dump(data)
    except DumpError as exc:
        raise Rejected(str(exc)) from None
    groups = group_goroutines(goroutines)
    assert sum(group.count for group in groups) == len(goroutines)
    try:
        within = parse_dump(data, max_goroutines=20, max_stacks=8)
    except DumpTooLarge as exc:
        if exc.limit not in ("dump_goroutines", "dump_stacks"):
            raise AssertionError(f"an unknown dump limit {exc.limit}") from exc
        if len(goroutines) <= 20 and len({(g.frames, g.created_by) for g in goroutines}) <= 8:
            raise AssertionError("refused by a limit the whole dump is within") from exc
        return
    assert within == goroutines


Target = Callable[[bytes], None]

TARGETS: dict[str, Target] = {
    "pprof": fuzz_pprof,
    "pprof_limits": fuzz_pprof_limits,
    "pprof_gzip": fuzz_pprof_gzip,
    "ingest": fuzz_ingest,
    "selector": fuzz_selector,
    "time": fuzz_time,
    "config": fuzz_config,
    "goroutine_dump": fuzz_goroutine_dump,
    "regex": fuzz_regex,
    "webhook_url": fuzz_webhook_url,
}


def seeds(target: str) -> Iterator[bytes]:
    """Real inputs to start mutating from: captures, the example config, typical selectors and times."""
    if target in ("pprof", "pprof_gzip", "ingest", "pprof_limits"):
        for path in sorted(DATA.glob("*.pb.gz")):
            raw = gzip.decompress(path.read_bytes())
            yield raw
            if target not in ("pprof_gzip", "pprof_limits"):
                yield path.read_bytes()
    elif target == "selector":
        yield from (b'{service="api", env=~"prod|dev", instance!="x"}', b"{handler!~'/check.*'}", b"{}")
    elif target == "time":
        yield from (b"now-1h\nnow", b"2026-09-01T00:00:00Z\n1790000000", b"1h30m", b"now-7d\nnow-6d")
    elif target == "goroutine_dump":
        yield from (path.read_bytes() for path in sorted(DATA.glob("goroutine*.txt")))
    elif target == "config":
        yield (DATA.parent.parent / "examples" / "stackyard.yaml").read_bytes()
    elif target == "regex":
        yield from (b"prod|dev\0prod", b"(.|.)*x\0" + b"a" * 40, b"/check.*\0/checkout", b"a{2,3}b\0aab", b"(a)\\1\0aa")
    elif target == "webhook_url":
        yield from (b"http://192.0.2.7:9093/hook", b"https://hooks.example/T0/B1", b"http://169.254.169.254/latest")
    for path in sorted((FUZZ_DATA / target).glob("*")) if (FUZZ_DATA / target).is_dir() else ():
        yield path.read_bytes()


def regressions() -> Iterator[tuple[str, Path]]:
    """Every kept finding, as (target, file): tests/data/fuzz/<target>/<anything>."""
    for folder in sorted(FUZZ_DATA.iterdir()) if FUZZ_DATA.is_dir() else ():
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                yield folder.name, path


def run(target: str, data: bytes) -> bool:
    """One input through one target: True if accepted, False if rejected the documented way."""
    try:
        TARGETS[target](data)
    except Rejected:
        return False
    return True
