"""The ``stackyard`` command: serve, collect, migrate, ingest files, manage targets.

Errors a user can fix (a bad file, a bad URL) print one line to stderr and exit
non-zero; they never end in a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from collector.config import ConfigError
from server import __version__, logs
from server.errors import StackyardError, TooOld
from server.labels import parse_label_pairs
from server.pprof.errors import ProfileError
from server.settings import Settings
from server.targets import PROFILE_PATHS, default_kinds
from stackyard import querycli

log = logging.getLogger("stackyard")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    for name in ("host", "port", "database_url", "ingest_processes"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    settings = Settings(**overrides)  # type: ignore[arg-type]
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return settings


def cmd_migrate(args: argparse.Namespace) -> int:
    from server.migrate import upgrade

    settings = _settings(args)
    upgrade(settings.database_url)
    log.info("migrated", extra={"database": _redact(settings.database_url)})
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.auth.binding import InsecureBind, check_bind
    from stackyard.runtime import build_server

    settings = _settings(args)
    app = build_server(settings, args.config)  # migrates at start, retrying while the database is away
    try:
        warning = check_bind(settings.host, bool(app.state.tokens), args.insecure)
    except InsecureBind as exc:
        print(f"stackyard: {exc}", file=sys.stderr)
        return 2
    if warning:
        log.warning(warning, extra={"host": settings.host})
    log.info(
        "serving",
        extra={"url": f"http://{settings.host}:{settings.port}", "database": _redact(settings.database_url)},
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(), access_log=False)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    import uvicorn

    from collector.httpapp import metrics_app, parse_listen
    from collector.manager import Shard
    from server.auth.binding import InsecureBind, check_bind
    from stackyard.runtime import build_collector

    settings = _settings(args)
    try:
        shard = Shard.parse(args.shard)
        host, port = parse_listen(args.listen)
        # /metrics names every target: the same rule as serve's (tokens, loopback, or --insecure).
        warning = check_bind(host, bool(settings.auth_tokens), args.insecure)
    except (ValueError, InsecureBind) as exc:
        print(f"stackyard: {exc}", file=sys.stderr)
        return 2
    if warning:
        log.warning(warning, extra={"host": host})
    manager, registry = build_collector(settings, args.push_url, shard, args.config)
    app = metrics_app(registry, settings)

    async def run() -> None:
        await manager.start()
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        serving = asyncio.create_task(server.serve())
        log.info("collecting", extra={"push_url": args.push_url, "shard": args.shard, "metrics": args.listen})
        await stop.wait()
        log.info("shutting down", extra={"deadline_s": args.shutdown_deadline})
        await manager.stop(args.shutdown_deadline)
        server.should_exit = True
        await serving

    asyncio.run(run())
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from server.migrate import upgrade
    from server.store.repository import Store
    from server.targets import ProfileSpec, TargetSpec, check_target, default_kinds
    from server.timeparse import format_duration, parse_duration_ns

    settings = _settings(args)
    upgrade(settings.database_url)
    store = Store.from_url(settings.database_url)
    try:
        if args.action == "add":
            labels = parse_label_pairs(args.label or [])
            kinds = args.profiles.split(",") if args.profiles else default_kinds()
            target = check_target(
                TargetSpec(
                    url=args.url,
                    service=args.service,
                    labels=labels,
                    interval_s=parse_duration_ns(args.interval, "interval") / 1e9,
                    profiles=tuple(ProfileSpec(kind.strip()) for kind in kinds),
                ),
                settings.network_policy(),
            )
            created = store.targets.create(target)
            print(f"added target {created.id}: {created.url} (service {created.service})")
        elif args.action == "list":
            rows = store.targets.list()
            print(f"{'ID':>4}  {'SERVICE':<20} {'INTERVAL':<9} {'PAUSED':<6} URL")
            for t in rows:
                paused = "yes" if t.paused else "no"
                print(f"{t.id:>4}  {t.service:<20} {format_duration(t.interval_s):<9} {paused:<6} {t.url}")
        else:
            store.targets.delete(args.id)
            print(f"removed target {args.id}")
    finally:
        store.close()
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from server.ingest import ingest
    from server.migrate import upgrade
    from server.store.repository import Store
    from server.timeparse import format_time, parse_time_ns

    settings = _settings(args)
    # Parsed once, before anything is opened: a typo in --time is one message, not one per file.
    time_ns = parse_time_ns(args.time, "--time") if args.time else None
    upgrade(settings.database_url)
    labels = parse_label_pairs(args.label or [])
    labels["service"] = args.service
    store = Store.from_url(settings.database_url)
    failures = 0
    try:
        for name in args.files:
            path = Path(name)
            try:
                data = path.read_bytes()
                result = ingest(store, settings, data, dict(labels), args.type, time_ns)
            except OSError as exc:
                print(f"{name}: cannot read: {exc.strerror}", file=sys.stderr)
                failures += 1
                continue
            except TooOld as exc:
                print(f"{name}: {exc.naming('--time')}", file=sys.stderr)
                failures += 1
                continue
            except (StackyardError, ProfileError) as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                failures += 1
                continue
            totals = ", ".join(f"{k}={v}" for k, v in result.totals_by_name().items())
            print(
                f"{name}: stored profile {result.stored.id} ({result.kind}, {result.stored.samples} samples, "
                f"{format_time(result.stored.time_ns)}; {totals})"
            )
    finally:
        store.close()
    return 1 if failures else 0


def cmd_token(args: argparse.Namespace) -> int:
    """A new token and the entry to configure for it; only the entry (a digest) goes into settings."""
    import json

    from server.auth.tokens import digest, new_token

    token = new_token()
    entry = {"name": args.name, "scopes": sorted(set(args.scope)), "sha256": digest(token)}
    print(f"token: {token}")
    print(f"entry: {json.dumps(entry)}")
    print("Keep the token secret; add the entry to STACKYARD_AUTH_TOKENS or the config file's auth.tokens.")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Verify the store is consistent (after a crash, a restore, an upgrade); exit 1 when it is not."""
    import time

    from server.store.check import check_store
    from server.store.database import make_engine
    from server.timeparse import parse_duration_ns

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    now = time.time_ns()
    try:
        report = check_store(
            engine,
            blobs=not args.skip_blobs,
            raw_since_ns=now - parse_duration_ns(settings.retention_raw),
            hourly_since_ns=now - parse_duration_ns(settings.retention_hourly),
        )
    finally:
        engine.dispose()
    counts = ", ".join(f"{n} {name}" for name, n in report.counts.items())
    if report.ok:
        print(f"store consistent: {counts}")
        return 0
    print(f"store INCONSISTENT ({counts}):", file=sys.stderr)
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackyard", description="Continuous profiling for Go fleets.")
    parser.add_argument("--version", action="version", version=f"stackyard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--database-url", dest="database_url", help="overrides STACKYARD_DATABASE_URL")
        return p

    serve = with_db(sub.add_parser("serve", help="migrate, then serve the API and dashboard"))
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--config", type=Path, help="YAML config file with scrape_configs (docs/config.md)")
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without API tokens")
    serve.add_argument(
        "--ingest-processes",
        type=int,
        help="worker processes that decode and store pushes (STACKYARD_INGEST_PROCESSES; 0: in-process threads)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = with_db(sub.add_parser("migrate", help="bring the database schema up to date"))
    migrate.set_defaults(func=cmd_migrate)

    collect = sub.add_parser("collect", help="scrape targets and push their profiles to a remote server")
    collect.add_argument("--push-url", required=True, help="base URL of the Stackyard server to push to")
    collect.add_argument("--shard", default="0/1", help="I/N: scrape only targets whose URL hashes to shard I of N")
    collect.add_argument("--config", type=Path, help="YAML config file with scrape_configs")
    collect.add_argument("--listen", default="127.0.0.1:4181", help="where to serve /metrics")
    collect.add_argument("--insecure", action="store_true", help="allow a non-loopback --listen without API tokens")
    collect.add_argument("--shutdown-deadline", type=float, default=15.0, help="seconds to finish and flush on stop")
    collect.set_defaults(func=cmd_collect)

    targets = sub.add_parser("targets", help="register, list and remove scrape targets")
    target_actions = targets.add_subparsers(dest="action", required=True)
    add = with_db(target_actions.add_parser("add", help="register a target"))
    add.add_argument("url")
    add.add_argument("--service", required=True)
    add.add_argument("--label", action="append", metavar="KEY=VALUE")
    add.add_argument("--interval", default="15s")
    kinds, defaults = ", ".join(PROFILE_PATHS), ", ".join(default_kinds())
    add.add_argument("--profiles", help=f"comma-separated, of {kinds} (default: {defaults})")
    add.set_defaults(func=cmd_targets)
    listing = with_db(target_actions.add_parser("list", help="list registered targets"))
    listing.set_defaults(func=cmd_targets)
    remove = with_db(target_actions.add_parser("remove", help="remove a target"))
    remove.add_argument("id", type=int)
    remove.set_defaults(func=cmd_targets)

    querycli.add_parser(sub)

    token = sub.add_parser("token", help="create an API token and print the entry to configure for it")
    token.add_argument("name", help="who uses it (shows in logs, never in responses)")
    token.add_argument(
        "--scope", action="append", required=True, choices=["read", "ingest", "admin"], help="repeatable"
    )
    token.set_defaults(func=cmd_token)
    check = with_db(sub.add_parser("check", help="verify the store is consistent (exit 1 if not)"))
    check.add_argument("--skip-blobs", action="store_true", help="only row references; do not decode every blob")
    check.set_defaults(func=cmd_check)

    ingest = with_db(sub.add_parser("ingest", help="store pprof files from disk"))
    ingest.add_argument("files", nargs="+", metavar="FILE")
    ingest.add_argument("--service", required=True)
    ingest.add_argument("--type", choices=["cpu", "heap", "allocs", "goroutine", "mutex", "block", "threadcreate"])
    ingest.add_argument("--label", action="append", metavar="KEY=VALUE")
    ingest.add_argument(
        "--time",
        metavar="now|RFC3339|UNIX",
        help="store every file at this time instead of its own capture time (needed for captures older than "
        "the raw retention)",
    )
    ingest.set_defaults(func=cmd_ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"stackyard: invalid setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        code: int = args.func(args)
    except StackyardError as exc:
        print(f"stackyard: {exc.message}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"stackyard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from server.availability import describe, is_unavailable

        if not is_unavailable(exc):
            raise
        print(f"stackyard: database unavailable: {describe(exc)}", file=sys.stderr)
        return 3
    return code


if __name__ == "__main__":
    sys.exit(main())
