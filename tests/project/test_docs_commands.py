"""Every ``curl`` and ``stackyard`` command in the README's and docs' ``sh`` blocks works when pasted as written.

They run as a person runs them after ``make run``: in a shell, from a folder that looks
like the repository's (every top-level entry linked, so ``tests/data/...`` resolves and
``curl -o`` writes beside them), with ``.venv/bin`` on the ``PATH``, against a real
``stackyard serve`` process holding the demo's captures stored a moment ago. The only
change made to a command is the server's port (the docs say 4180; the test's server
listens on a free one); curl also gets ``--fail-with-body`` so a 4xx fails the test
instead of printing an error and exiting 0. A line of a synopsis (``text`` blocks, with
placeholders) is not a command and is not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.pgserver import free_port
from tests.support.procs import stackyard, status, wait_for
from tests.support.tools import DATA, ROOT, go_binary

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOCUMENTED_PORT = "127.0.0.1:4180"


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def documented_commands() -> list[Command]:
    """The ``curl`` and ``stackyard`` lines of every ``sh`` block (``$ `` prompts taken off, ``\\`` lines joined)."""
    found: list[Command] = []
    for document in DOCUMENTS:
        text = document.read_text()
        for block in BLOCK.finditer(text):
            first_line = text.count("\n", 0, block.start(1)) + 1
            lines = block.group(1).replace("\\\n", " ").splitlines()
            for offset, line in enumerate(lines):
                command = line.strip().removeprefix("$ ")
                if command.split(" ", 1)[0] in ("curl", "stackyard"):
                    found.append(Command(f"{document.relative_to(ROOT)}:{first_line + offset}", command))
    return found


COMMANDS = documented_commands()


@dataclass
class Workplace:
    url: str
    folder: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def workplace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workplace]:
    go_binary()  # `go tool pprof` is part of a README line: skips (or fails under STACKYARD_STRICT) without Go
    home = tmp_path_factory.mktemp("docs-server")
    folder = tmp_path_factory.mktemp("docs-checkout")
    for entry in ROOT.iterdir():
        if entry.name not in (".git", "data") and not entry.name.endswith(".pb.gz"):
            (folder / entry.name).symlink_to(entry)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = f"sqlite:///{home / 'stackyard.db'}"
    with stackyard(["serve", "--port", str(port)], {"STACKYARD_DATABASE_URL": database}, cwd=home) as process:
        wait_for(lambda: status(f"{url}/readyz") == 200, 60, "the server", process)
        for name in ("cpu.pb.gz", "heap.pb.gz", "goroutine.pb.gz"):  # the demo's captures, stored now
            params = {"service": "demo", "label": "env=dev", "time": "now"}
            stored = httpx.post(f"{url}/api/v1/ingest", params=params, content=(DATA / name).read_bytes(), timeout=30)
            assert stored.status_code == 201, stored.text
        base = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")}
        venv_bin = str(Path(sys.executable).parent)
        go_bin = str(Path(go_binary()).parent)
        env = {
            **base,
            "PATH": os.pathsep.join([venv_bin, go_bin, base.get("PATH", "")]),
            "STACKYARD_URL": url,  # as if the server were on the default address
            "STACKYARD_DATABASE_URL": database,  # for `stackyard check`, which opens the database
            "STACKYARD_LOG_LEVEL": "WARNING",
        }
        yield Workplace(url, folder, env)


def test_the_docs_have_commands_to_check() -> None:
    names = {c.where.split(":")[0] for c in COMMANDS}
    assert "README.md" in names and any(n.startswith("docs/") for n in names)
    assert any(c.text.startswith("curl ") and "{service=" in c.text for c in COMMANDS)
    assert any(c.text.startswith("stackyard targets add") for c in COMMANDS)


def test_without_g_curl_reads_the_selector_as_a_glob(workplace: Workplace) -> None:
    """Why ``-g``: curl expands ``{service="demo"}`` as a one-item glob and sends ``service="demo"`` alone."""
    bare = f"curl --fail-with-body -sS '{workplace.url}/api/v1/top?type=cpu&query={{service=\"demo\"}}&from=now-15m'"
    result = subprocess.run(["bash", "-c", bare], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 22 and "expected '{'" in result.stdout


@pytest.mark.timeout(300)
def test_every_documented_command_works_as_written(workplace: Workplace) -> None:
    failures = []
    for command in COMMANDS:
        line = command.text.replace(DOCUMENTED_PORT, workplace.url.removeprefix("http://"))
        line = re.sub(r"(^|&& )curl ", r"\1curl --fail-with-body -sS ", line)
        result = subprocess.run(
            ["bash", "-c", line],
            cwd=workplace.folder,
            env=workplace.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0 or "Traceback" in result.stderr or not result.stdout.strip():
            failures.append(f"{command}\n  exit {result.returncode}: {result.stderr.strip() or result.stdout.strip()}")
    assert not failures, "\n".join(failures)
    # What the README's first lines promise, checked on what they printed: the demo's functions.
    top = next(c for c in COMMANDS if c.text.startswith("curl ") and "/api/v1/top" in c.text)
    line = top.text.replace(DOCUMENTED_PORT, workplace.url.removeprefix("http://"))
    printed = subprocess.run(
        ["bash", "-c", line], cwd=workplace.folder, env=workplace.env, capture_output=True, text=True, check=True
    ).stdout
    assert '"main.' in printed and '"profiles":1' in printed.replace(" ", "")
    assert shlex.split(line)[1] == "-g"
