"""``stackyard ingest FILE...``: push pprof files on disk to a running server (``POST /api/v1/ingest``).

Each file goes with an idempotency key made from everything that decides what
is stored (the file's bytes, service, labels, type and ``--time`` as given),
so a retry, whether this command's own after a lost answer or the same
command run again, answers with the profile already stored instead of storing
it twice.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from server.errors import StackyardError
from server.pprof.kinds import KINDS
from server.syntax.times import parse_time_ns
from stackyard.apiclient import ApiClient, ApiError, ApiRefused, ServerUnreachable


def add_parser(sub: Any, with_server: Any) -> None:
    ingest = with_server(sub.add_parser("ingest", help="push pprof files from disk to a running server"))
    ingest.add_argument("files", nargs="+", metavar="FILE")
    ingest.add_argument("--service", required=True)
    ingest.add_argument("--type", choices=list(KINDS))
    ingest.add_argument("--label", action="append", metavar="KEY=VALUE")
    ingest.add_argument(
        "--time",
        metavar="now|RFC3339|UNIX",
        help="store every file at this time instead of its own capture time (needed for captures older than "
        "the server's raw retention)",
    )
    ingest.set_defaults(func=run)


def idempotency_key(data: bytes, params: list[tuple[str, str]]) -> str:
    """The same file with the same parameters is the same profile, however often it is sent."""
    digest = hashlib.sha256()
    for name, value in sorted(params):
        digest.update(f"{name}={value}\0".encode())
    digest.update(data)
    return f"stackyard-ingest:{digest.hexdigest()}"


def _params(args: argparse.Namespace) -> list[tuple[str, str]]:
    params = [("service", args.service)]
    if args.type:
        params.append(("type", args.type))
    params += [("label", pair) for pair in args.label or []]
    if args.time:
        params.append(("time", args.time))
    return params


def _cli_words(message: str) -> str:
    """The server names its own parameter (``time=``); at the terminal the fix is the ``--time`` option."""
    return message.replace("with time= (", "with --time (")


def run(args: argparse.Namespace, client: ApiClient | None = None) -> int:
    try:
        # Checked once, before anything is sent: a typo in --time is one message, not one per file.
        if args.time:
            parse_time_ns(args.time, "--time")
    except StackyardError as exc:
        print(f"stackyard: {exc.message}", file=sys.stderr)
        return 2
    params = _params(args)
    api = client or ApiClient.from_args(args.server)
    failures = 0
    try:
        for name in args.files:
            try:
                data = Path(name).read_bytes()
            except OSError as exc:
                print(f"{name}: cannot read: {exc.strerror}", file=sys.stderr)
                failures += 1
                continue
            try:
                response = api.request(
                    "POST",
                    "/api/v1/ingest",
                    params=params,
                    content=data,
                    headers={"Idempotency-Key": idempotency_key(data, params)},
                    retry=True,
                )
            except ServerUnreachable as exc:
                print(f"stackyard: {exc}", file=sys.stderr)
                return exc.exit_code
            except ApiRefused as exc:
                print(f"{name}: {_cli_words(exc.line)}", file=sys.stderr)
                failures += 1
                continue
            except ApiError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                failures += 1
                continue
            body = response.json()
            totals = ", ".join(f"{k}={v}" for k, v in body["totals"].items())
            verb = "already stored as profile" if body.get("replayed") else "stored profile"
            print(f"{name}: {verb} {body['id']} ({body['type']}, {body['samples']} samples, {body['time']}; {totals})")
    finally:
        if client is None:
            api.close()
    return 1 if failures else 0
