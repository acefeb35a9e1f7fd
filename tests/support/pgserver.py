"""A throwaway PostgreSQL server for the test session, started from the installed binaries.

PostgreSQL refuses to run as root, and CI runs as root: then the data directory
is owned by the ``postgres`` system user and every command runs through
``runuser``. The server listens on 127.0.0.1 on a free port, with trust auth,
and is stopped (and its directory removed) when the session ends.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="stackyard-pg-"))
        self.datadir = self.root / "data"
        self.log = self.root / "server.log"
        self.user: str | None = None
        self._version: int | None = None
        self.options = ""  # more ``-c name=value`` settings for ``postgres``
        if os.geteuid() == 0:
            self.user = "postgres"
            try:
                entry = pwd.getpwnam(self.user)
            except KeyError:
                raise RuntimeError(
                    "running as root, but there is no 'postgres' system user to run PostgreSQL"
                ) from None
            os.chmod(self.root, 0o755)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.resume()

    def pause(self, mode: str = "fast") -> None:
        """``pg_ctl stop`` the running server, keeping its data: an outage the tests can end with :meth:`resume`.

        "fast" disconnects every client (what a restart looks like to them);
        "immediate" is a crash of the server.
        """
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop")

    def resume(self) -> None:
        """``pg_ctl start`` on the same port and data directory; returns once it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        options += self.options
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not start; see {self.log}")

    def running(self) -> bool:
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "status"]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=False, capture_output=True, timeout=30).returncode == 0

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (which nobody may be connected to).

        A copy is made file by file (``STRATEGY FILE_COPY``): PostgreSQL 15's default writes
        every block of the template through the WAL, a third slower for these small databases.
        """
        import psycopg

        statement = f'CREATE DATABASE "{name}"'
        if template:
            statement += f' TEMPLATE "{template}"' + (" STRATEGY FILE_COPY" if self.version() >= 15 else "")
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a test's database, ending any connection it left open (its files go now, not all at the end)."""
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            force = " WITH (FORCE)" if self.version() >= 13 else ""
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')

    def version(self) -> int:
        """The server's major version, from ``PG_VERSION`` in its data directory."""
        if self._version is None:
            self._version = int((self.datadir / "PG_VERSION").read_text().strip().split(".")[0])
        return self._version


class StandbyServer(PostgresServer):
    """A hot standby of ``primary``: a ``pg_basebackup -R`` copy that streams the primary's WAL and replays it.

    ``-R`` writes ``standby.signal`` and the connection to the primary, so the
    copy starts as a read-only standby; ``-X stream`` takes the WAL written
    during the copy along. ``hot_standby_feedback`` keeps the primary from
    vacuuming rows a query on the standby still reads.
    """

    def __init__(self, bindir: Path, primary: PostgresServer) -> None:
        super().__init__(bindir)
        self.primary = primary
        self.options = " -c hot_standby=on -c hot_standby_feedback=on"

    def start(self) -> None:
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres"),
            *("-D", str(self.datadir), "-R", "-X", "stream", "--no-sync", "-c", "fast"),
        )
        self.resume()

    def create_database(self, name: str, template: str | None = None) -> str:
        raise RuntimeError("a standby is read-only: create databases on its primary")

    def sql(self, statement: str) -> object:
        """One statement on the standby (``pg_wal_replay_pause()``, ...), its first value."""
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            row = conn.execute(statement).fetchone()
        return row[0] if row else None

    def wait_replayed(self, timeout_s: float = 60.0) -> None:
        """Return once the standby has replayed everything the primary had flushed when this was called."""
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.primary.port}/postgres") as conn:
            row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        assert row is not None
        target = row[0]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"the standby did not replay up to {target} in {timeout_s}s; see {self.log}")
