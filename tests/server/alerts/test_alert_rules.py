"""Rule and receiver parsing (good and bad), shared by the API and the config file; config errors carry lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.alerts.receivers import parse_receiver
from server.alerts.rules import expand_template, parse_expr, parse_rule
from server.config.load import load_config
from server.config.problems import ConfigError
from server.errors import InvalidParameter

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


@pytest.mark.parametrize(
    ("text", "function", "op", "threshold", "window_s", "per_s"),
    [
        ("value > 10000", "value", ">", 10000, 0, 1),
        ("value<0.5", "value", "<", 0.5, 0, 1),
        ("increase(30m) > 50%", "increase_pct", ">", 50, 1800, 1),
        ("increase( 20s ) > 20", "increase", ">", 20, 20, 1),
        ("slope(10m) > 100/min", "slope", ">", 100, 600, 60),
        ("slope(1h) < -5 / h", "slope", "<", -5, 3600, 3600),
        ("slope(90s) > 2/s", "slope", ">", 2, 90, 1),
        ("leak_suspect(30m)", "leak_suspect", ">", 0, 1800, 1),
        ("value > 1e3", "value", ">", 1000, 0, 1),
    ],
)
def test_expressions_that_parse(
    text: str, function: str, op: str, threshold: float, window_s: int, per_s: float
) -> None:
    expr = parse_expr(text)
    assert (expr.function, expr.op, expr.threshold, expr.window_ns, expr.per_s) == (
        function,
        op,
        threshold,
        window_s * 10**9,
        per_s,
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("goroutines > 5", "does not parse"),
        ("value >= 5", "does not parse"),
        ("value > lots", "does not parse"),
        ("increase(-5m) > 3", "negative"),
        ("increase(0s) > 3", "longer than 0s"),
        ("increase(10parsecs) > 3", "not a duration"),
        ("slope(10m) > 100", "needs a unit"),
        ("slope(10m) > 100/day", "does not parse"),
        ("leak_suspect(-1m)", "negative"),
        ("increase(30d) > 1", "maximum of 7d"),
        ("value > 1e999", "not a finite number"),
    ],
)
def test_expressions_that_do_not(text: str, says: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_expr(text)
    assert caught.value.parameter == "expr"
    assert says in caught.value.message


GOOD = {
    "name": "CheckoutGoroutineGrowth",
    "query": '{service="checkout"}',
    "type": "goroutine",
    "expr": "slope(10m) > 100/min",
    "for": "5m",
    "receiver": "oncall",
    "labels": {"severity": "page"},
    "annotations": {"summary": "goroutines growing on {{ $labels.instance }}"},
}


def test_a_full_rule_round_trips() -> None:
    rule = parse_rule(GOOD)
    assert rule.for_s == 300 and rule.receiver == "oncall" and rule.sample is None
    assert {k: v for k, v in rule.to_json().items() if k not in ("source", "sample")} == GOOD


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"type": "goroutines"}, "type"),
        ({"type": None}, "type"),
        ({"sample": "inuse_space"}, "sample"),
        ({"query": '{service="checkout"'}, "query"),
        ({"expr": "slope(10m) > 100"}, "expr"),
        ({"expr": None}, "expr"),
        ({"for": "-5m"}, "for"),
        ({"for": "soon"}, "for"),
        ({"for": 5}, "for"),
        ({"labels": {"bad-name": "x"}}, "labels.bad-name"),
        ({"labels": {"severity": 3}}, "labels.severity"),
        ({"annotations": {"summary": "{{ .Labels.instance }}"}}, "annotations.summary"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_rules_name_the_field(change: dict[str, object], field: str) -> None:
    data = {**GOOD, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(InvalidParameter) as caught:
        parse_rule(data)
    assert caught.value.parameter == field


def test_leak_suspect_is_for_goroutines_only() -> None:
    with pytest.raises(InvalidParameter, match="only applies to type goroutine"):
        parse_rule({**GOOD, "type": "heap", "expr": "leak_suspect(30m)"})


def test_templates() -> None:
    labels = {"instance": "10.0.0.1:6060", "service": "checkout"}
    text = "{{ $value }} goroutines on {{$labels.instance}} ({{ $labels.missing }})"
    assert expand_template(text, labels, 1234.0) == "1234 goroutines on 10.0.0.1:6060 ()"
    assert expand_template("{{ $value }}", labels, 0.25) == "0.25"


def test_receivers() -> None:
    assert parse_receiver({"name": "oncall", "webhook_url": "http://hooks:9000/x"}).webhook_url == "http://hooks:9000/x"
    for bad, field in (
        ({"name": "oncall", "webhook_url": "ftp://x"}, "webhook_url"),
        ({"name": "oncall", "webhook_url": "http://host:99999/"}, "webhook_url"),
        ({"name": "oncall"}, "webhook_url"),
        ({"webhook_url": "http://x/"}, "name"),
        ({"name": "oncall", "webhook_url": "http://x/", "email": "a@b"}, "email"),
    ):
        with pytest.raises(InvalidParameter) as caught:
            parse_receiver(bad)
        assert caught.value.parameter == field


def test_config_file_rules_and_receivers(tmp_path: Path) -> None:
    path = tmp_path / "stackyard.yaml"
    path.write_text(
        "receivers:\n"
        "  - name: oncall\n"
        "    webhook_url: http://127.0.0.1:9000/hook\n"
        "rules:\n"
        "  - name: CheckoutGoroutineGrowth\n"
        "    query: '{service=\"checkout\"}'\n"
        "    type: goroutine\n"
        "    expr: increase(30m) > 50%\n"
        "    for: 10m\n"
        "    receiver: oncall\n"
        "    labels: {severity: page}\n"
        "  - name: HeapInUse\n"
        "    type: heap\n"
        "    sample: inuse_space\n"
        "    expr: value > 2e9\n"
    )
    config = load_config(path)
    assert [r.name for r in config.receivers] == ["oncall"]
    assert [(r.name, r.expr.function, r.source) for r in config.rules] == [
        ("CheckoutGoroutineGrowth", "increase_pct", "config"),
        ("HeapInUse", "value", "config"),
    ]


def test_config_file_mistakes_are_line_numbered(tmp_path: Path) -> None:
    path = tmp_path / "stackyard.yaml"
    path.write_text(
        "receivers:\n"  # 1
        "  - name: oncall\n"  # 2
        "    webhook_url: gopher://x\n"  # 3
        "rules:\n"  # 4
        "  - name: A\n"  # 5
        "    type: goroutine\n"  # 6
        "    expr: increase(-5m) > 3\n"  # 7
        "  - name: B\n"  # 8
        "    type: goroutines\n"  # 9
        "    expr: value > 1\n"  # 10
        "  - name: C\n"  # 11
        "    type: goroutine\n"  # 12
        "    expr: value > 1\n"  # 13
        "    receiver: pager\n"  # 14
        "    labels:\n"  # 15
        "      severity: 1\n"  # 16
        "  - name: D\n"  # 17
        "    type: goroutine\n"  # 18
        "    expr: value > 1\n"  # 19
        "    receiver: pager\n"  # 20
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}:3: receivers[0].webhook_url: 'gopher://x' is not an http:// or https:// URL"
    assert lines[1].startswith(f"{path}:7: rules[0].expr: the window in 'increase(-5m) > 3' is negative")
    assert lines[2].startswith(f"{path}:9: rules[1].type: unknown profile type 'goroutines'")
    assert lines[3] == f"{path}:16: rules[2].labels.severity: expected a string"
    assert lines[4] == f"{path}:20: rules[3].receiver: no receiver named 'pager' under receivers: (none are defined)"
    assert len(lines) == 5


def test_alerting_settings_refuse_what_cannot_work() -> None:
    from pydantic import ValidationError

    from server.settings import Settings

    with pytest.raises(ValidationError, match="alertmanager_url"):
        Settings(alertmanager_url="alertmanager:9093")
    with pytest.raises(ValidationError, match="rule_eval_interval"):
        Settings(rule_eval_interval=0)
    assert Settings().rule_eval_interval == 15.0
