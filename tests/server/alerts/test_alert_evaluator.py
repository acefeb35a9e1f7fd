"""The evaluator on real stored profiles at chosen times, on both databases: values, states, history, outbox.

Profiles are real captures from tests/data; goroutine counts are varied by
scaling the capture's sample values (a real profile, as Go would serve it with
k times the goroutines on every stack).
"""

from __future__ import annotations

import asyncio
import gzip
import time

import pytest

from server.alerts.evaluate import Evaluator
from server.alerts.receivers import Receiver
from server.alerts.rules import parse_rule
from server.alerts.service import Alerting
from server.alerts.values import rule_samples
from server.ingest.profile import ingest
from server.pprof import decode, profile_pb2
from server.settings import Settings
from server.store.repository import Store
from server.syntax.times import format_time
from tests.support.tools import DATA
from tests.support.webhook import WebhookServer

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

NS = 10**9
T0 = 1_790_000_000 * NS
CAPTURE = (DATA / "goroutine.pb.gz").read_bytes()
N = decode(CAPTURE).totals()[0]


def scaled(factor: int, data: bytes = CAPTURE) -> bytes:
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress(data))
    for sample in message.sample:
        sample.value[:] = [v * factor for v in sample.value]
    return gzip.compress(message.SerializeToString())


def push(store: Store, settings: Settings, factor: int, at_s: float, instance: str, kind: str = "goroutine") -> None:
    labels = {"service": "checkout", "instance": instance}
    ingest(store, settings, scaled(factor), labels, kind, T0 + int(at_s * NS))


def rule(expr: str, **extra: object) -> dict[str, object]:
    return {"name": "Growth", "query": '{service="checkout"}', "type": "goroutine", "expr": expr, **extra}


def test_values_of_each_expression(store: Store, settings: Settings) -> None:
    for step, factor in enumerate((1, 2, 3, 4)):
        push(store, settings, factor, step * 10, "a")
    push(store, settings, 5, 0, "b")
    now = T0 + 30 * NS

    def values(expr: str) -> dict[str, float]:
        samples = rule_samples(store, parse_rule(rule(expr)), now, 1000)
        return {s.labels["instance"]: s.value for s in samples}

    assert values("value > 0") == {"a": 4 * N, "b": 5 * N}
    # b has one profile in the window: no increase and no slope, rather than a made-up one.
    assert values("increase(1m) > 0") == {"a": 3 * N}
    assert values("increase(1m) > 50%") == {"a": pytest.approx(300.0)}
    assert values("slope(1m) > 1/min") == {"a": pytest.approx(6 * N)}  # N per 10 s
    assert values("slope(1m) > 1/s") == {"a": pytest.approx(N / 10)}
    assert values("increase(15s) > 0") == {"a": N}  # only the profiles at 20 s and 30 s
    # Nothing newer than the lookback (5 minutes): no value, so no alert.
    assert rule_samples(store, parse_rule(rule("value > 0")), now + 400 * NS, 1000) == []


def test_cpu_is_seconds_per_second_and_heap_uses_the_named_sample(store: Store, settings: Settings) -> None:
    cpu = (DATA / "cpu.pb.gz").read_bytes()
    heap = (DATA / "heap.pb.gz").read_bytes()
    labels = {"service": "checkout", "instance": "a"}
    ingest(store, settings, cpu, labels, "cpu", T0)
    ingest(store, settings, heap, labels, "heap", T0)
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress(cpu))
    names = [message.string_table[st.type] for st in message.sample_type]
    cpu_ns = decode(cpu).totals()[names.index("cpu")]
    cpu_rule = parse_rule({"name": "Cpu", "type": "cpu", "expr": "value > 0.5"})
    (sample,) = rule_samples(store, cpu_rule, T0 + NS, 1000)
    assert sample.value == pytest.approx(cpu_ns / message.duration_nanos)
    heap_message = profile_pb2.Profile()
    heap_message.ParseFromString(gzip.decompress(heap))
    heap_names = [heap_message.string_table[st.type] for st in heap_message.sample_type]
    inuse = decode(heap).totals()[heap_names.index("inuse_space")]
    heap_rule = parse_rule({"name": "Heap", "type": "heap", "sample": "inuse_space", "expr": "value > 1"})
    (heap_sample,) = rule_samples(store, heap_rule, T0 + NS, 1000)
    assert heap_sample.value == inuse


def _alerting(store: Store, settings: Settings, url: str, **spec: object) -> Alerting:
    the_rule = parse_rule(
        rule(
            f"value > {N * 1.5}",
            receiver="oncall",
            labels={"severity": "page"},
            annotations={"summary": "{{ $value }} goroutines on {{ $labels.instance }}"},
            **spec,
        ),
        source="config",
    )
    return Alerting(store, settings, [the_rule], [Receiver("oncall", url, "config")])


def test_state_machine_survives_a_restart_and_notifies_once(store: Store, settings: Settings) -> None:
    url = "http://127.0.0.1:9/hook"
    alerting = _alerting(store, settings, url, **{"for": "2m"})
    push(store, settings, 1, 0, "a")
    push(store, settings, 1, 0, "b")
    for at in (60, 120, 180, 240):
        push(store, settings, 2, at, "a")
        push(store, settings, 1, at, "b")
    push(store, settings, 1, 300, "a")

    def states() -> dict[str, str]:
        return {s.labels["instance"]: s.state for s in store.alerts.states()}

    alerting.evaluator.evaluate(T0)
    assert states() == {}
    alerting.evaluator.evaluate(T0 + 60 * NS)
    assert states() == {"a": "pending"}
    alerting.evaluator.evaluate(T0 + 120 * NS)
    assert states() == {"a": "pending"}  # held for 60 s of the 2 minutes
    assert store.alerts.outbox() == []
    alerting.evaluator.evaluate(T0 + 180 * NS)
    assert states() == {"a": "firing"}
    (firing,) = store.alerts.outbox()
    assert (firing.receiver, firing.status, firing.url) == ("oncall", "firing", url)
    alert = firing.body["alerts"][0]
    assert alert["labels"] == {
        "service": "checkout",
        "instance": "a",
        "severity": "page",
        "alertname": "Growth",
    }
    assert alert["annotations"] == {"summary": f"{2 * N} goroutines on a"}
    assert alert["startsAt"] == format_time(T0 + 60 * NS)  # when it became pending
    assert firing.body["version"] == "4" and firing.body["status"] == "firing"

    # A restart: new objects over the same database. The firing is neither lost nor sent again.
    restarted = _alerting(store, settings, url, **{"for": "2m"})
    restarted.evaluator.evaluate(T0 + 240 * NS)
    assert states() == {"a": "firing"}
    assert len(store.alerts.outbox()) == 1
    restarted.evaluator.evaluate(T0 + 240 * NS)
    assert len(store.alerts.outbox()) == 1

    restarted.evaluator.evaluate(T0 + 300 * NS)
    assert states() == {"a": "resolved"}
    resolved = [n for n in store.alerts.outbox() if n.status == "resolved"]
    assert len(resolved) == 1
    assert resolved[0].body["alerts"][0]["endsAt"] == format_time(T0 + 300 * NS)
    assert resolved[0].body["alerts"][0]["startsAt"] == alert["startsAt"]
    restarted.evaluator.evaluate(T0 + 300 * NS)
    assert len(store.alerts.outbox()) == 2

    history = [(t.from_state, t.to_state) for t in reversed(store.alerts.history(100))]
    assert history == [("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]


def test_pending_that_clears_goes_back_to_inactive_and_for_zero_fires_at_once(store: Store, settings: Settings) -> None:
    push(store, settings, 2, 0, "a")
    push(store, settings, 1, 30, "a")
    slow = _alerting(store, settings, "http://127.0.0.1:9/hook", **{"for": "5m"})
    slow.evaluator.evaluate(T0 + 10 * NS)
    slow.evaluator.evaluate(T0 + 40 * NS)
    assert [(t.from_state, t.to_state) for t in reversed(store.alerts.history(10))] == [
        ("inactive", "pending"),
        ("pending", "inactive"),
    ]
    assert store.alerts.outbox() == []
    slow.evaluator.evaluate(T0 + 50 * NS)  # an inactive state is not kept once its transition is recorded
    assert store.alerts.states() == []
    eager = Alerting(store, settings, [parse_rule(rule(f"value > {N * 1.5}", name="Eager"))])
    eager.evaluator.evaluate(T0 + 10 * NS)
    assert {(s.rule, s.state) for s in store.alerts.states()} >= {("Eager", "firing")}


def test_deleting_a_rule_resolves_what_it_fired(store: Store, settings: Settings) -> None:
    push(store, settings, 2, 0, "a")
    alerting = Alerting(store, settings, receivers=[Receiver("oncall", "http://127.0.0.1:9/hook")])
    alerting.add_rule(parse_rule(rule(f"value > {N}", receiver="oncall")))
    alerting.evaluator.evaluate(T0 + NS)
    assert [s.state for s in store.alerts.states()] == ["firing"]
    alerting.delete_rule("Growth")
    alerting.evaluator.evaluate(T0 + 2 * NS)
    assert store.alerts.states() == []
    assert sorted(n.status for n in store.alerts.outbox()) == ["firing", "resolved"]
    newest = store.alerts.history(1)[0]
    assert (newest.from_state, newest.to_state) == ("firing", "resolved")


def _fire_once(store: Store, settings: Settings, url: str) -> Alerting:
    push(store, settings, 2, 0, "a")
    alerting = _alerting(store, settings, url)
    alerting.evaluator.evaluate(T0 + NS)
    return alerting


@pytest.mark.timeout(60)
def test_webhook_answering_500_is_retried_with_backoff(store: Store, settings: Settings) -> None:
    quick = settings.model_copy(update={"notify_backoff_initial": 0.3, "notify_backoff_max": 0.5})
    with WebhookServer(statuses=[500, 503]) as hook:
        alerting = _fire_once(store, quick, hook.url)

        async def scenario() -> None:
            await alerting.start()
            try:
                assert alerting.dispatcher is not None
                deadline = time.monotonic() + 20
                while not hook.bodies() and time.monotonic() < deadline:
                    await alerting.dispatcher.run_once()
                    await alerting.dispatcher.drain()
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # more rounds: a delivered notification is not sent again
                await alerting.dispatcher.run_once()
                await alerting.dispatcher.drain()
            finally:
                await alerting.stop()

        asyncio.run(scenario())
    assert [status for _, status in hook.attempts] == [500, 503, 200]
    gaps = [later - earlier for (earlier, _), (later, _) in zip(hook.attempts, hook.attempts[1:], strict=False)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.5  # 0.3 s, then 0.6 s capped at 0.5 s
    assert len(hook.bodies("firing")) == 1
    (sent,) = store.alerts.outbox()
    assert (sent.outcome, sent.attempts) == ("sent", 3)


@pytest.mark.timeout(60)
def test_retries_are_bounded(store: Store, settings: Settings) -> None:
    bounded = settings.model_copy(update={"notify_backoff_initial": 0.05, "notify_max_attempts": 3})
    with WebhookServer(statuses=[500] * 10) as hook:
        alerting = _fire_once(store, bounded, hook.url)

        async def scenario() -> None:
            await alerting.start()
            try:
                assert alerting.dispatcher is not None
                for _ in range(40):
                    await alerting.dispatcher.run_once()
                    await alerting.dispatcher.drain()
                    await asyncio.sleep(0.05)
            finally:
                await alerting.stop()

        asyncio.run(scenario())
    assert len(hook.attempts) == 3
    (given_up,) = store.alerts.outbox()
    assert (given_up.outcome, given_up.attempts) == ("failed", 3)
    assert given_up.last_error is not None and "HTTP 500" in given_up.last_error


@pytest.mark.timeout(60)
def test_a_hanging_webhook_blocks_neither_evaluation_nor_other_receivers(store: Store, settings: Settings) -> None:
    patient = settings.model_copy(update={"notify_timeout": 2.0, "notify_backoff_initial": 30.0})
    with WebhookServer(hang_s=6.0) as stuck, WebhookServer() as fine:
        push(store, patient, 2, 0, "a")
        rules = [
            parse_rule(rule(f"value > {N}", name="ToStuck", receiver="stuck")),
            parse_rule(rule(f"value > {N}", name="ToFine", receiver="fine")),
        ]
        alerting = Alerting(store, patient, rules, [Receiver("stuck", stuck.url), Receiver("fine", fine.url)])
        alerting.evaluator.evaluate(T0 + NS)

        async def scenario() -> tuple[float, float]:
            await alerting.start()
            try:
                assert alerting.dispatcher is not None
                await alerting.dispatcher.run_once()
                started = time.monotonic()
                # While the stuck receiver holds its request, evaluation rounds run and the other receiver is served.
                for second in (2, 3, 4):
                    await asyncio.to_thread(alerting.evaluator.evaluate, T0 + second * NS)
                evaluated = time.monotonic() - started
                while not fine.bodies() and time.monotonic() - started < 5:
                    await asyncio.sleep(0.05)
                served = time.monotonic() - started
                await alerting.dispatcher.drain()
                return evaluated, served
            finally:
                await alerting.stop()

        evaluated, served = asyncio.run(scenario())
    assert evaluated < 2.0 and served < 2.0  # both well before the stuck request's 2 s timeout
    assert len(fine.bodies("firing")) == 1
    by_receiver = {n.receiver: n for n in store.alerts.outbox()}
    assert by_receiver["fine"].outcome == "sent"
    stuck_row = by_receiver["stuck"]
    assert (stuck_row.outcome, stuck_row.attempts) == ("pending", 1)
    assert stuck_row.last_error is not None and "Timeout" in stuck_row.last_error


@pytest.mark.timeout(60)
def test_alertmanager_gets_postable_alerts_on_its_api(store: Store, settings: Settings) -> None:
    # No Alertmanager binary here: a loopback server stands in for its POST /api/v2/alerts.
    with WebhookServer() as manager:
        base = manager.url.removesuffix("/hook")
        with_am = settings.model_copy(update={"alertmanager_url": base})
        push(store, with_am, 2, 0, "a")
        push(store, with_am, 1, 10, "a")
        alerting = Alerting(store, with_am, [parse_rule(rule(f"value > {N * 1.5}"))])

        async def scenario() -> int:
            await alerting.start()
            try:
                assert alerting.dispatcher is not None
                await asyncio.to_thread(alerting.evaluator.evaluate, T0 + NS)
                await alerting.dispatcher.run_once()
                await alerting.dispatcher.drain()
                resent = await alerting.dispatcher.resend()  # what the periodic job does while it fires
                await asyncio.to_thread(alerting.evaluator.evaluate, T0 + 11 * NS)
                await alerting.dispatcher.run_once()
                await alerting.dispatcher.drain()
                return resent
            finally:
                await alerting.stop()

        resent = asyncio.run(scenario())
        urls = sorted(n.url for n in store.alerts.outbox())
        paths = [path for path, _ in manager.paths]
    assert resent == 1
    assert urls == [base + "/api/v2/alerts"] * 2
    assert paths == ["/api/v2/alerts"] * 3
    firing, again, resolved = manager.bodies()
    labels = {"service": "checkout", "instance": "a", "alertname": "Growth"}
    assert firing == [
        {
            "labels": labels,
            "annotations": {},
            "startsAt": format_time(T0 + NS),
            "endsAt": format_time(T0 + NS + 4 * 60 * NS),  # kept alive by re-sends, as Prometheus does
            "generatorURL": "http://127.0.0.1:4180/alerts?rule=Growth",
        }
    ]
    assert again[0]["labels"] == labels and again[0]["startsAt"] == format_time(T0 + NS)
    assert resolved[0]["endsAt"] == format_time(T0 + 11 * NS)


def test_two_replicas_evaluating_at_once_notify_once(store: Store, settings: Settings, database_url: str) -> None:
    import threading

    push(store, settings, 2, 0, "a")
    push(store, settings, 2, 0, "b")
    stores = [Store.from_url(database_url) for _ in range(4)]
    try:
        replicas = [_alerting(other, settings, "http://127.0.0.1:9/hook") for other in stores]
        barrier = threading.Barrier(len(replicas))

        def run(replica: Alerting) -> None:
            barrier.wait()
            for second in (1, 2, 3):
                replica.evaluator.evaluate(T0 + second * NS)

        threads = [threading.Thread(target=run, args=(replica,)) for replica in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for other in stores:
            other.close()
    assert sorted((n.status, n.body["alerts"][0]["labels"]["instance"]) for n in store.alerts.outbox()) == [
        ("firing", "a"),
        ("firing", "b"),
    ]
    firings = [t for t in store.alerts.history(100) if t.to_state == "firing"]
    assert len(firings) == 2


def test_a_rule_made_again_under_its_name_starts_inactive(store: Store, settings: Settings) -> None:
    """Replay: a rule deleted and re-created fired 44 s after creation despite ``for: 1m``."""
    for at in range(0, 181, 15):
        push(store, settings, 2, at, "a")
    alerting = Alerting(store, settings)
    spec = rule(f"value > {N}", **{"for": "1m"})
    alerting.add_rule(parse_rule(spec))
    alerting.evaluator.evaluate(T0)
    assert [s.state for s in store.alerts.states()] == ["pending"]
    alerting.delete_rule("Growth")
    assert store.alerts.states() == []  # a quiet state goes with its rule
    alerting.add_rule(parse_rule(spec))  # again, 16 s in
    for at in (30, 45, 60, 75):
        alerting.evaluator.evaluate(T0 + at * NS)
        assert [s.state for s in store.alerts.states()] == ["pending"], at  # the old pending would fire at 60
    (state,) = store.alerts.states()
    assert state.active_ns == T0 + 30 * NS
    alerting.evaluator.evaluate(T0 + 90 * NS)  # a minute after the new rule's first round
    assert [s.state for s in store.alerts.states()] == ["firing"]


def test_a_former_rules_states_are_retired_not_inherited(store: Store, settings: Settings) -> None:
    """Whatever a former rule of the name left (a round in flight while it was deleted, or what it fired)."""
    for at in range(0, 121, 15):
        push(store, settings, 2, at, "a")
    alerting = Alerting(store, settings, receivers=[Receiver("oncall", "http://127.0.0.1:9/hook")])
    alerting.add_rule(parse_rule(rule(f"value > {N}", receiver="oncall")))
    (former,) = alerting.rules()
    alerting.evaluator.evaluate(T0)
    assert [s.state for s in store.alerts.states()] == ["firing"]
    alerting.delete_rule("Growth")  # what fired stays until a round resolves it
    slow = parse_rule(rule(f"value > {N}", receiver="oncall", **{"for": "1m"}))
    alerting.add_rule(slow)
    (current,) = alerting.rules()
    assert current.created_ns > former.created_ns
    alerting.evaluator.evaluate(T0 + 15 * NS)
    assert [(s.state, s.rule_created_ns) for s in store.alerts.states()] == [("pending", current.created_ns)]
    assert sorted(n.status for n in store.alerts.outbox()) == ["firing", "resolved"]  # the former firing ended
    history = [(t.from_state, t.to_state) for t in reversed(store.alerts.history(10))]
    assert history == [("inactive", "firing"), ("firing", "resolved"), ("inactive", "pending")]
    # A round that read the rules before the delete wrote the former rule's state after it: not inherited.
    stale = Evaluator(store, settings, lambda: [former], alerting.receivers_by_name)
    alerting.delete_rule("Growth")
    alerting.add_rule(slow)
    stale.evaluate(T0 + 30 * NS)
    assert [s.state for s in store.alerts.states()] == ["firing"]
    alerting.evaluator.evaluate(T0 + 45 * NS)
    (state,) = store.alerts.states()
    assert (state.state, state.active_ns) == ("pending", T0 + 45 * NS)
