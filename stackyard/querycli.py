"""``stackyard query top|diff|timeseries``: the query API as readable tables in a terminal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from stackyard.apiclient import ApiClient, ApiError

UNITS: dict[str, list[tuple[float, str]]] = {
    "nanoseconds": [(1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1, "ns")],
    "bytes": [(1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "kB"), (1, "B")],
}


def human(value: float, unit: str) -> str:
    """``1234567890`` nanoseconds as ``1.23s``, as pprof prints values."""
    scales = UNITS.get(unit)
    if not scales:
        return f"{value:.4g}" if isinstance(value, float) and not float(value).is_integer() else f"{int(value)}"
    magnitude = abs(value)
    for size, suffix in scales:
        if magnitude >= size or size == 1:
            return f"{value / size:.2f}{suffix}" if size != 1 else f"{int(value)}{suffix}"
    return str(value)


def _params(args: argparse.Namespace, *names: str) -> dict[str, str]:
    """Query parameters from the options that were given; ``from`` is stored as ``from_``."""
    params = {"type": args.type, "from": args.from_, "to": args.to}
    for name in names:
        value = getattr(args, name, None)
        if value is True:
            params[name] = "true"
        elif value not in (None, False):
            params[name] = str(value)
    return params


def _get(client: ApiClient, path: str, params: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = client.get(path, params)
    return body


def top(client: ApiClient, args: argparse.Namespace) -> str:
    body = _get(client, "/api/v1/top", _params(args, "query", "sample", "aggregation", "limit"))
    unit, total = body["unit"], body["total"]
    amount = "average per profile" if body["aggregation"] == "avg" else "total"  # an average is never a total
    lines = [
        f"{body['type']} {body['sample_type']} ({body['aggregation']}) over {body['profiles']} profiles, "
        f"{amount} {human(total, unit)}",
        f"{'flat':>12} {'flat%':>7} {'cum':>12} {'cum%':>7}  function",
    ]
    for row in body["rows"]:
        lines.append(
            f"{human(row['flat'], unit):>12} {_percent(row['flat'], total):>7} "
            f"{human(row['cum'], unit):>12} {_percent(row['cum'], total):>7}  {row['name']}"
        )
    return "\n".join(lines)


def diff(client: ApiClient, args: argparse.Namespace) -> str:
    params = _params(args, "query", "sample", "base_query", "base_from", "base_to", "normalize", "limit")
    body = _get(client, "/api/v1/diff", params)
    unit = body["unit"]
    lines = [
        f"{body['sample_type']}: base {human(body['base_total'], unit)} over {body['base_profiles']} profiles, "
        f"now {human(body['total'], unit)} over {body['profiles']}"
        + (f" (normalised x{body['scale']:.4f})" if body["normalized"] else ""),
        f"{'change':>12} {'base flat':>12} {'flat':>12} {'cum change':>12}  function",
    ]
    for row in body["rows"]:
        change = _signed(human(row["flat_change"], unit), row["flat_change"])
        cum_change = _signed(human(row["cum_change"], unit), row["cum_change"])
        lines.append(
            f"{change:>12} {human(row['base_flat'], unit):>12} {human(row['flat'], unit):>12} {cum_change:>12}  "
            f"{row['name']}"
        )
    return "\n".join(lines)


def timeseries(client: ApiClient, args: argparse.Namespace) -> str:
    params = _params(args, "query", "sample", "step", "aggregation", "group_by")
    body = _get(client, "/api/v1/timeseries", params)
    unit = body["unit"]
    lines = [f"{body['sample_type']} ({body['aggregation']}, step {body['step']:g}s)"]
    for series in body["series"]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(series["labels"].items()))
        lines.append(f"{{{labels}}}")
        for time_s, value in series["points"]:
            stamp = datetime.fromtimestamp(time_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"  {stamp}  {human(value, unit)}")
    return "\n".join(lines)


def _percent(value: float, total: float) -> str:
    return f"{100 * value / total:.2f}%" if total else "-"


def _signed(text: str, value: float) -> str:
    return f"+{text}" if value > 0 else text


COMMANDS: dict[str, Callable[[ApiClient, argparse.Namespace], str]] = {
    "top": top,
    "diff": diff,
    "timeseries": timeseries,
}


def add_parser(sub: Any, with_server: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    query = sub.add_parser("query", help="ask a running server: top, diff, timeseries")
    actions = query.add_subparsers(dest="view", required=True)
    for view in COMMANDS:
        parser = with_server(actions.add_parser(view))
        parser.add_argument("--type", required=True, help="cpu, heap, allocs, goroutine, mutex, block, threadcreate")
        parser.add_argument("--query", help='selector, e.g. {service="api"}')
        parser.add_argument("--from", dest="from_", default="now-1h")
        parser.add_argument("--to", default="now")
        parser.add_argument("--sample", help="sample type (default: the profile's)")
        if view in ("top", "diff"):
            parser.add_argument("--limit", type=int, default=20)
        if view == "top":
            parser.add_argument("--aggregation", choices=["sum", "avg"])
        if view == "diff":
            parser.add_argument("--base-query", dest="base_query")
            parser.add_argument("--base-from", dest="base_from")
            parser.add_argument("--base-to", dest="base_to")
            parser.add_argument("--normalize", action="store_true")
        if view == "timeseries":
            parser.add_argument("--step")
            parser.add_argument("--group-by", dest="group_by")
            parser.add_argument("--aggregation", choices=["avg", "sum", "max"], default="avg")
        parser.set_defaults(func=run)


def run(args: argparse.Namespace, client: httpx.Client | None = None) -> int:
    """``client``: an HTTP client to use instead of one for ``--server`` (a test's in-process app)."""
    api = ApiClient.from_args(args.server) if client is None else ApiClient(str(client.base_url), client=client)
    try:
        print(COMMANDS[args.view](api, args))
    except ApiError as exc:
        print(f"stackyard: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        api.close()
    return 0
