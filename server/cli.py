"""The ``stackyard`` command: serve, migrate, ingest files.

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

from server import __version__, logs
from server.errors import StackyardError
from server.pprof.errors import ProfileError
from server.settings import Settings

log = logging.getLogger("stackyard")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    for name in ("host", "port", "database_url"):
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

    from server.app import create_app
    from server.migrate import upgrade

    settings = _settings(args)
    upgrade(settings.database_url)
    app = create_app(settings)
    log.info(
        "serving", extra={"url": f"http://{settings.host}:{settings.port}", "database": _redact(settings.database_url)}
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(), access_log=False)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from server.ingest import ingest
    from server.labels import parse_label_pairs
    from server.migrate import upgrade
    from server.store.repository import Store
    from server.timeparse import format_time

    settings = _settings(args)
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
                result = ingest(store, settings, data, dict(labels), args.type)
            except OSError as exc:
                print(f"{name}: cannot read: {exc.strerror}", file=sys.stderr)
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
    serve.add_argument("--config", type=Path, help="YAML config file (scrape targets; see docs)")
    serve.set_defaults(func=cmd_serve)

    migrate = with_db(sub.add_parser("migrate", help="bring the database schema up to date"))
    migrate.set_defaults(func=cmd_migrate)

    ingest = with_db(sub.add_parser("ingest", help="store pprof files from disk"))
    ingest.add_argument("files", nargs="+", metavar="FILE")
    ingest.add_argument("--service", required=True)
    ingest.add_argument("--type", choices=["cpu", "heap", "allocs", "goroutine", "mutex", "block", "threadcreate"])
    ingest.add_argument("--label", action="append", metavar="KEY=VALUE")
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
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
