"""The ``stackyard`` command: serve, collect, migrate, check; targets, ingest and query through a server's API.

Errors a user can fix (a bad file, a bad URL) print one line to stderr and exit
non-zero; they never end in a traceback. Only ``serve``, ``migrate`` and
``check`` open the database; ``targets``, ``ingest`` and ``query`` ask a
running server (``--server`` or ``STACKYARD_URL``), which stays its one writer.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from server import __version__, logs
from server.errors import StackyardError
from server.settings import Settings
from stackyard import ingestcli, querycli, targetscli

log = logging.getLogger("stackyard")


def _settings(args: argparse.Namespace, database: bool = True) -> Settings:
    """Settings with the command line's overrides; ``database``: create a SQLite file's folder."""
    overrides: dict[str, object] = {}
    for name in ("host", "port", "database_url", "ingest_processes"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    settings = Settings(**overrides)  # type: ignore[arg-type]
    path = settings.sqlite_path()
    if database and path is not None:
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
    from server.network.proxies import uvicorn_proxy_options
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
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        **uvicorn_proxy_options(settings),  # forwarded headers only from STACKYARD_TRUSTED_PROXIES
    )
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    import uvicorn

    from collector.httpapp import metrics_app, parse_listen
    from collector.manager import Shard
    from server.auth.binding import InsecureBind, check_bind
    from server.gcfreeze import space_full_collections
    from server.network.proxies import uvicorn_proxy_options
    from stackyard.collecting import build_collector

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
    space_full_collections(settings.gc_full_collection_every)  # scrapes in flight: see server/gcfreeze.py

    async def run() -> None:
        await manager.start()
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", **uvicorn_proxy_options(settings))
        server = uvicorn.Server(config)
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
    from server.store.idspace import id_use
    from server.syntax.times import parse_duration_ns

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
        used = id_use(engine)
    finally:
        engine.dispose()
    counts = ", ".join(f"{n} {name}" for name, n in report.counts.items())
    if report.ok:
        print(f"store consistent: {counts}")
    else:
        print(f"store INCONSISTENT ({counts}):", file=sys.stderr)
        for problem in report.problems:
            print(f"  {problem}", file=sys.stderr)
    # Ids are never reused: how much of each kind's space is spent (docs/operations.md, the stack tree's id space).
    shares = (f"{u.kind} {u.highest:,} of {u.limit:,} ({100 * u.highest / u.limit:.1f} %)" for u in used)
    print("ids used: " + ", ".join(shares))
    return 0 if report.ok else 1


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

    def with_server(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--server",
            metavar="URL",
            help="the Stackyard server to ask (default: STACKYARD_URL, else http://127.0.0.1:4180)",
        )
        # These commands never open a database (the server is its one writer); say so to whoever tries.
        p.add_argument("--database-url", dest="database_url", help=argparse.SUPPRESS)
        p.set_defaults(uses_server=True)
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

    targetscli.add_parser(sub, with_server)
    ingestcli.add_parser(sub, with_server)
    querycli.add_parser(sub, with_server)

    token = sub.add_parser("token", help="create an API token and print the entry to configure for it")
    token.add_argument("name", help="who uses it (shows in logs, never in responses)")
    token.add_argument(
        "--scope", action="append", required=True, choices=["read", "ingest", "admin"], help="repeatable"
    )
    token.set_defaults(func=cmd_token)
    check = with_db(sub.add_parser("check", help="verify the store is consistent (exit 1 if not)"))
    check.add_argument("--skip-blobs", action="store_true", help="only row references; do not decode every blob")
    check.set_defaults(func=cmd_check)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "uses_server", False) and args.database_url is not None:
        print(
            f"stackyard: {args.command} asks a running server and opens no database; "
            "point it at the server with --server URL (or STACKYARD_URL)",
            file=sys.stderr,
        )
        return 2
    try:
        settings = _settings(args, database=not getattr(args, "uses_server", False))
    except ValidationError as exc:
        print(f"stackyard: invalid setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        code: int = args.func(args)
    except StackyardError as exc:
        print(f"stackyard: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Imported here: only serve and collect read a config file, and only serve, migrate and check
        # open a database (a scrape-only collector loads no SQLAlchemy).
        from server.config.problems import ConfigError

        if isinstance(exc, ConfigError):
            print(f"stackyard: {exc}", file=sys.stderr)
            return 2
        from server.store.availability import describe, is_unavailable

        if not is_unavailable(exc):
            raise
        print(f"stackyard: database unavailable: {describe(exc)}", file=sys.stderr)
        return 3
    return code


if __name__ == "__main__":
    sys.exit(main())
