"""Regex matchers cannot stall the server: RE2 (linear time), a size budget, and clear 400s for what RE2 lacks.

The attack, as found: ``{pod=~"(.|.)*x"}`` against a 25-character label value
took 5.5 s under Python's backtracking ``re`` and doubled with every further
character. Here it runs against label values of 1,000 characters (2^1000
paths for a backtracking engine: such a test would never finish), on series
labels, on pprof sample labels and in an alert rule. Speed itself is measured
in bench/regex.py, not here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from server.alerts.rules import parse_rule
from server.alerts.values import rule_samples
from server.errors import InvalidParameter, SelectorError
from server.query.regex import MAX_PATTERN_BYTES, RegexError, compile_regex
from server.query.selector import parse_selector
from server.settings import Settings
from server.store.repository import Store
from tests.support.helpers import push, top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

EVIL = "(.|.)*x"
LONG = "a" * 1000  # within the default label value limit (1024)


def test_the_reported_pattern_answers_at_once_on_series_labels(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz", service="api", label=f"pod={LONG}", time="1000")
    push(client, DATA / "cpu2.pb.gz", service="api", label=f"pod={LONG}x", time="2000")
    response = client.get("/api/v1/series", params={"type": "cpu", "query": f'{{pod=~"{EVIL}"}}'})
    assert response.status_code == 200, response.text
    assert [s["labels"]["pod"] for s in response.json()["series"]] == [f"{LONG}x"]
    assert top(client, type="cpu", query=f'{{pod=~"{EVIL}"}}')["profiles"] == 1
    assert top(client, type="cpu", query=f'{{pod!~"{EVIL}"}}')["profiles"] == 1
    assert top(client, type="cpu", query='{pod=~"a+"}')["profiles"] == 1  # anchored: "a…ax" is not all a's


def test_the_reported_pattern_on_sample_labels(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz", service="demo", time="1000")
    everything = top(client, type="cpu", sample="cpu")["total"]
    # No handler value ends in x; the slow engine would try 2^len paths per value before saying so.
    assert top(client, type="cpu", sample="cpu", query=f'{{handler=~"{EVIL}"}}')["total"] == 0
    assert top(client, type="cpu", sample="cpu", query=f'{{handler!~"{EVIL}"}}')["total"] == everything


def test_the_reported_pattern_in_an_alert_rule(store: Store, settings: Settings) -> None:
    from server.ingest.profile import ingest

    t0 = 1_790_000_000 * 10**9
    goroutines = (DATA / "goroutine.pb.gz").read_bytes()
    ingest(store, settings, goroutines, {"service": "api", "pod": LONG + "x"}, "goroutine", t0)
    ingest(store, settings, goroutines, {"service": "api", "pod": LONG}, "goroutine", t0)
    rule = parse_rule({"name": "Evil", "query": f'{{pod=~"{EVIL}"}}', "type": "goroutine", "expr": "value > 0"})
    assert [s.labels["pod"] for s in rule_samples(store, rule, t0 + 10**9, 1000)] == [LONG + "x"]


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"(a)\\1", r"backreferences (\1) are not supported"),
        ("(?=a)a", "lookahead ((?=...), (?!...)) is not supported"),
        ("(?!a)b", "lookahead ((?=...), (?!...)) is not supported"),
        ("(?<=a)b", "lookbehind ((?<=...), (?<!...)) is not supported"),
        ("(?<!a)b", "lookbehind ((?<=...), (?<!...)) is not supported"),
        (r"[\\p{L}]{1000}", "the pattern is too large (its compiled form exceeds 2 MiB)"),
        ("a{1001}", "invalid repetition size"),
        ("(", "missing )"),
    ],
)
def test_unsupported_syntax_is_a_400_naming_the_matcher(client: TestClient, pattern: str, says: str) -> None:
    query = f'{{service="api", pod=~"{pattern}"}}'
    response = client.get("/api/v1/top", params={"type": "cpu", "query": query})
    assert response.status_code == 400
    error = response.json()["error"]
    shown = pattern.replace("\\\\", "\\")
    assert error.startswith(f'query: invalid regular expression in pod=~"{shown}": {says}'), error
    assert "RE2 syntax" in error or "too large" in error


def test_alert_rules_refuse_the_same_syntax(client: TestClient) -> None:
    body = {"name": "Back", "query": r'{pod=~"(a)\\1"}', "type": "goroutine", "expr": "value > 0"}
    response = client.post("/api/v1/rules", json=body)
    assert response.status_code == 400
    assert 'invalid regular expression in pod=~"(a)\\1": backreferences' in response.json()["error"]
    with pytest.raises(InvalidParameter, match="lookbehind"):
        parse_rule({**body, "query": '{pod!~"(?<=a)b"}'})


def test_size_budget_on_the_pattern_text() -> None:
    longest = "a|" * (MAX_PATTERN_BYTES // 2 - 1) + "b"
    assert compile_regex(longest).fullmatch("b")
    with pytest.raises(RegexError, match=f"bytes long; at most {MAX_PATTERN_BYTES} are allowed"):
        compile_regex(longest + "|c")
    with pytest.raises(SelectorError, match="at most 4096"):
        parse_selector(f'{{a=~"{"é" * 2049}"}}')  # 4098 bytes of UTF-8 in 2049 characters


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("prod|dev", ["prod", "dev"], ["production", "xdev", ""]),
        ("/check.*", ["/checkout", "/check"], ["x/check"]),
        (".*", ["", "anything"], ["two\nlines"]),  # . does not match a newline, as in Prometheus
        ("(?s).*", ["two\nlines"], []),
        ("(?i)API", ["api", "Api"], ["apis"]),
        ("é.", ["éü", "é\U0001f600"], ["é", "e\u0301x"]),  # one character is one code point
        (r"\d+", ["0123"], ["١٢"]),  # ASCII digits only: RE2 (and Prometheus) semantics
        ("", [""], ["a"]),
    ],
)
def test_matching_is_anchored_and_follows_re2(pattern: str, yes: list[str], no: list[str]) -> None:
    regex = compile_regex(pattern)
    assert [regex.fullmatch(text) for text in yes] == [True] * len(yes)
    assert [regex.fullmatch(text) for text in no] == [False] * len(no)


def test_a_lone_surrogate_in_a_value_does_not_raise() -> None:
    assert compile_regex(".").fullmatch("\ud800")
    assert not compile_regex("a").fullmatch("\udcff")


def test_the_server_does_not_start_without_re2() -> None:
    # No fallback to the backtracking engine: a missing module fails the import of the app.
    code = "import sys; sys.modules['re2'] = None; import server.app"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "re2" in result.stderr and "ModuleNotFoundError" in result.stderr
