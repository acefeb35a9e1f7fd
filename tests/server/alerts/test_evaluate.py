"""The evaluator (server.alerts.evaluate) called directly, round by round at chosen times, on both databases.

Each test is one edge of the state machine the module's docstring draws:
a rule that cannot be read this round, an instance that stops reporting
(firing and pending), a resolved state kept for a while and then forgotten,
a receiver that does not exist, a firing whose text must not change while it
fires. Goroutine counts are the real capture's, scaled (a profile as Go would
serve it with k times the goroutines on every stack).
"""

from __future__ import annotations

import gzip

import pytest

from server.alerts.evaluate import FORGET_AFTER_NS, Evaluator, RoundResult
from server.alerts.receivers import Receiver
from server.alerts.rules import Rule, parse_rule
from server.alerts.values import LOOKBACK_NS
from server.ingest.profile import ingest
from server.pprof import decode, profile_pb2
from server.settings import Settings
from server.store.repository import Store
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

NS = 10**9
T0 = 1_790_000_000 * NS
CAPTURE = (DATA / "goroutine.pb.gz").read_bytes()
N = decode(CAPTURE).totals()[0]
HOOK = "http://127.0.0.1:9/hook"


def push(store: Store, settings: Settings, factor: int, at_s: float, service: str = "checkout") -> None:
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress(CAPTURE))
    for sample in message.sample:
        sample.value[:] = [v * factor for v in sample.value]
    data = gzip.compress(message.SerializeToString())
    ingest(store, settings, data, {"service": service, "instance": "a"}, "goroutine", T0 + int(at_s * NS))


def rule(name: str, service: str = "checkout", **extra: object) -> Rule:
    spec = {"name": name, "query": f'{{service="{service}"}}', "type": "goroutine", "expr": f"value > {N * 1.5}"}
    return parse_rule({**spec, **extra})


def evaluator(store: Store, settings: Settings, *rules: Rule, receivers: tuple[Receiver, ...] = ()) -> Evaluator:
    return Evaluator(store, settings, lambda: list(rules), lambda: {r.name: r for r in receivers})


def states(store: Store) -> dict[str, str]:
    return {s.rule: s.state for s in store.alerts.states()}


def moves(result: RoundResult) -> list[tuple[str, str, str]]:
    return [(t.rule, t.from_state, t.to_state) for t in result.transitions]


def test_a_rule_that_cannot_be_read_keeps_its_states_while_the_others_move_on(store: Store, settings: Settings) -> None:
    push(store, settings, 2, 0)
    push(store, settings, 2, 0, service="other")
    rules = (rule("Checkout"), rule("Other", service="other"))
    first = evaluator(store, settings, *rules).evaluate(T0 + NS)
    assert first.evaluated and first.errors == {}
    assert states(store) == {"Checkout": "firing", "Other": "firing"}
    for at in (10, 20):
        push(store, settings, 1, at)  # both would clear...
    push(store, settings, 1, 10, service="other")
    tight = settings.model_copy(update={"rule_max_points": 2})  # ...but Checkout's window now holds 3 profiles
    strict = evaluator(store, tight, *rules)
    second = strict.evaluate(T0 + 30 * NS)
    assert second.errors == {"Checkout": "the window reads more than 2 profiles (STACKYARD_RULE_MAX_POINTS)"}
    assert strict.errors == second.errors and strict.last_round_ns == T0 + 30 * NS
    assert moves(second) == [("Other", "firing", "resolved")]
    assert states(store) == {"Checkout": "firing", "Other": "resolved"}  # not resolved for want of a reading


def test_an_instance_that_stops_reporting_resolves_and_its_pending_lapses(store: Store, settings: Settings) -> None:
    push(store, settings, 2, 0)
    rules = (rule("Now", receiver="oncall"), rule("Later", **{"for": "10m"}))
    alerting = evaluator(store, settings, *rules, receivers=(Receiver("oncall", HOOK),))
    fired = alerting.evaluate(T0 + NS)
    assert moves(fired) == [("Now", "inactive", "firing"), ("Later", "inactive", "pending")]
    assert fired.notifications == 1
    silent = alerting.evaluate(T0 + LOOKBACK_NS + 2 * NS)  # the newest profile is past the lookback: no value
    assert moves(silent) == [("Now", "firing", "resolved"), ("Later", "pending", "inactive")]
    assert silent.notifications == 1  # the receiver told of the firing hears that it ended
    assert sorted((n.rule, n.status) for n in store.alerts.outbox()) == [("Now", "firing"), ("Now", "resolved")]
    assert states(store) == {"Now": "resolved", "Later": "inactive"}
    alerting.evaluate(T0 + LOOKBACK_NS + 3 * NS)
    assert states(store) == {"Now": "resolved"}  # an inactive state is dropped once its transition is recorded


def test_a_resolved_state_is_shown_for_a_while_then_forgotten(store: Store, settings: Settings) -> None:
    push(store, settings, 2, 0)
    push(store, settings, 1, 10)
    alerting = evaluator(store, settings, rule("Growth"))
    alerting.evaluate(T0 + NS)
    resolved_at = T0 + 11 * NS
    assert moves(alerting.evaluate(resolved_at)) == [("Growth", "firing", "resolved")]
    alerting.evaluate(resolved_at + FORGET_AFTER_NS)
    assert states(store) == {"Growth": "resolved"}
    quiet = alerting.evaluate(resolved_at + FORGET_AFTER_NS + NS)
    assert quiet.transitions == [] and states(store) == {}
    history = [(t.from_state, t.to_state) for t in reversed(store.alerts.history(10))]
    assert history == [("inactive", "firing"), ("firing", "resolved")]  # forgetting writes no history


def test_a_receiver_that_does_not_exist_is_reported_and_the_alert_still_fires(store: Store, settings: Settings) -> None:
    push(store, settings, 2, 0)
    result = evaluator(store, settings, rule("Growth", receiver="nobody")).evaluate(T0 + NS)
    assert result.errors == {"Growth": "receiver 'nobody' does not exist; the alert fires without a notification"}
    assert states(store) == {"Growth": "firing"}
    assert result.notifications == 0 and store.alerts.outbox() == []


def test_the_text_of_a_firing_stays_what_was_sent(store: Store, settings: Settings) -> None:
    push(store, settings, 2, 0)
    push(store, settings, 3, 10)
    annotated = rule("Growth", receiver="oncall", annotations={"summary": "{{ $value }} goroutines"})
    alerting = evaluator(store, settings, annotated, receivers=(Receiver("oncall", HOOK),))
    alerting.evaluate(T0 + NS)
    alerting.evaluate(T0 + 11 * NS)
    (state,) = store.alerts.states()
    assert (state.state, state.value) == ("firing", 3 * N)  # the value follows the data...
    assert state.annotations == {"summary": f"{2 * N} goroutines"}  # ...the text is the one the receiver got
    (sent,) = store.alerts.outbox()
    assert sent.body["alerts"][0]["annotations"] == state.annotations
