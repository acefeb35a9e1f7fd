"""``stackyard targets add|list|show|pause|resume|remove``: scrape targets through a running server's API.

The server is the one writer of its targets: these commands never open a
database, so the directory they run from cannot matter. A target is named by
its id or by its URL (with ``--service`` when several services share one URL).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from server.errors import StackyardError
from server.scrape.spec import PROFILE_PATHS, default_kinds
from server.syntax.labels import parse_label_pairs
from stackyard.apiclient import ApiClient, ApiError


class TargetNotFound(ApiError):
    """The id or URL names no target this command may change."""


def add_parser(sub: Any, with_server: Any) -> None:
    targets = sub.add_parser("targets", help="register, list, pause and remove scrape targets of a running server")
    actions = targets.add_subparsers(dest="action", required=True)

    add = with_server(actions.add_parser("add", help="register a target"))
    add.add_argument("url", help="the Go service's base URL, e.g. http://10.0.0.7:6060")
    add.add_argument("--service", required=True)
    add.add_argument("--label", action="append", metavar="KEY=VALUE")
    add.add_argument("--interval", default="15s")
    # The same list the server and the dashboard's forms use (server.scrape.spec.KINDS); without
    # --profiles nothing is sent and the server applies its defaults, which are these.
    kinds, defaults = ", ".join(PROFILE_PATHS), ", ".join(default_kinds())
    add.add_argument("--profiles", help=f"comma-separated, of {kinds} (default: {defaults})")
    add.set_defaults(func=run)

    listing = with_server(actions.add_parser("list", help="list targets with their health"))
    listing.set_defaults(func=run)

    for action, text in (
        ("show", "one target's health per profile kind"),
        ("pause", "stop scraping a target (its data stays)"),
        ("resume", "scrape a paused target again"),
        ("remove", "remove a target (its data stays)"),
    ):
        parser = with_server(actions.add_parser(action, help=text))
        parser.add_argument("target", metavar="ID|URL", help="the target's id, or its URL")
        parser.add_argument("--service", help="with a URL that several services share: which one")
        parser.set_defaults(func=run)


def run(args: argparse.Namespace, client: ApiClient | None = None) -> int:
    api = client or ApiClient.from_args(args.server)
    try:
        print(ACTIONS[args.action](api, args))
    except ApiError as exc:
        print(f"stackyard: {exc}", file=sys.stderr)
        return exc.exit_code
    except StackyardError as exc:  # a malformed --label, before anything was sent
        print(f"stackyard: {exc.message}", file=sys.stderr)
        return 2
    finally:
        if client is None:
            api.close()
    return 0


def _add(api: ApiClient, args: argparse.Namespace) -> str:
    body: dict[str, Any] = {
        "url": args.url,
        "service": args.service,
        "labels": parse_label_pairs(args.label or []),
        "interval": args.interval,
    }
    if args.profiles:
        body["profiles"] = [kind.strip() for kind in args.profiles.split(",") if kind.strip()]
    created = api.request("POST", "/api/v1/targets", json=body).json()
    line = f"added target {created['id']}: {created['url']} (service {created['service']})"
    if created["url"] != args.url.strip().rstrip("/") and created["url"] != args.url.strip():
        line += f"; scraped at {created['url']}{created['path_prefix']}/..."
    return line


def _status(target: dict[str, Any]) -> str:
    if target["paused"]:
        return "paused"
    if target["up"] is None:
        return "waiting"
    return "up" if target["up"] else "down"


def _list(api: ApiClient, _args: argparse.Namespace) -> str:
    targets = api.get("/api/v1/targets")["targets"]
    lines = [f"{'ID':>4}  {'SERVICE':<20} {'INTERVAL':<9} {'STATUS':<8} {'SOURCE':<7} URL"]
    for t in targets:
        ident = str(t["id"]) if t["id"] is not None else "-"
        lines.append(f"{ident:>4}  {t['service']:<20} {t['interval']:<9} {_status(t):<8} {t['source']:<7} {t['url']}")
    if not targets:
        lines.append("(no targets; add one with `stackyard targets add URL --service NAME`)")
    return "\n".join(lines)


def find(api: ApiClient, given: str, service: str | None) -> dict[str, Any]:
    """The API target named by id or URL; config-file targets cannot be changed here and say so."""
    targets: list[dict[str, Any]] = api.get("/api/v1/targets")["targets"]
    if given.isdigit():
        found = [t for t in targets if t["id"] == int(given)]
        if not found:
            raise TargetNotFound(f"no target with id {given}; `stackyard targets list` shows them")
        return found[0]
    url = given.strip().rstrip("/")
    found = [
        t
        for t in targets
        if t["url"].rstrip("/") in (url, url.removesuffix(t["path_prefix"].rstrip("/")).rstrip("/"))
        and (service is None or t["service"] == service)
    ]
    if not found:
        raise TargetNotFound(f"no target with URL {given}" + (f" and service {service}" if service else ""))
    if len(found) > 1:
        services = ", ".join(sorted(t["service"] for t in found))
        raise TargetNotFound(f"{given} is the URL of several targets ({services}); add --service NAME or give the id")
    return found[0]


def _changeable(target: dict[str, Any]) -> int:
    if target["id"] is None:
        raise TargetNotFound(
            f"{target['url']} (service {target['service']}) comes from the config file; change it there"
        )
    return int(target["id"])


def _show(api: ApiClient, args: argparse.Namespace) -> str:
    target = find(api, args.target, args.service)
    ident = target["id"] if target["id"] is not None else "-"
    labels = ", ".join(f"{k}={v}" for k, v in sorted(target["labels"].items()))
    lines = [
        f"target {ident}: {target['url']}{target['path_prefix']} (service {target['service']}"
        + (f", {labels}" if labels else "")
        + f"), every {target['interval']}, {_status(target)}, from {target['source']}",
    ]
    for kind, health in sorted(target["health"].items()):
        if health.get("not_served"):
            state = "not served by this Go version"
        elif health["up"] is None:
            state = "not scraped yet"
        else:
            state = "up" if health["up"] else f"down: {health['last_error']}"
        last = health["last_scrape"] or "-"
        lines.append(f"  {kind:<15} {state}  (last scrape {last})")
    return "\n".join(lines)


def _pause(api: ApiClient, args: argparse.Namespace, paused: bool = True) -> str:
    target_id = _changeable(find(api, args.target, args.service))
    api.request("PATCH", f"/api/v1/targets/{target_id}", json={"paused": paused})
    return f"{'paused' if paused else 'resumed'} target {target_id}"


def _resume(api: ApiClient, args: argparse.Namespace) -> str:
    return _pause(api, args, paused=False)


def _remove(api: ApiClient, args: argparse.Namespace) -> str:
    target = find(api, args.target, args.service)
    target_id = _changeable(target)
    api.request("DELETE", f"/api/v1/targets/{target_id}")
    return f"removed target {target_id}: {target['url']} (service {target['service']})"


ACTIONS = {
    "add": _add,
    "list": _list,
    "show": _show,
    "pause": _pause,
    "resume": _resume,
    "remove": _remove,
}
