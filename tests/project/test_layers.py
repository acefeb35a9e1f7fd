"""The layers hold: the import contracts of pyproject.toml pass, and what they cannot say is checked here.

``lint-imports`` (import-linter) checks the contracts on the static import
graph: ``server.pprof`` is pure, the store never imports the layers above it,
the collector loads no store, API, ingest module or SQL, routers never import
other routers. Two things it cannot see are checked here: that every router
module is in the independence contract (a new router must not slip past it),
and that a real ``stackyard collect`` process, wired as the command wires it,
has loaded no SQLAlchemy, store or API module (imports made at run time
included).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from tests.support.tools import ROOT

API = ROOT / "server" / "api"


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _contract(kind: str, name_starts: str) -> dict[str, Any]:
    (found,) = [c for c in _contracts() if c["type"] == kind and c["name"].startswith(name_starts)]
    return found


def _defines_router(path: Path) -> bool:
    """Whether the module builds an ``APIRouter`` (at its top level, or in a function such as ``router_for``)."""
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "APIRouter"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
    )


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), "import-linter is a dev dependency: make install"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    kept = result.stdout.count(" KEPT")
    assert kept == len(_contracts()) >= 8, result.stdout


def test_every_router_is_in_the_independence_contract() -> None:
    routers = sorted(f"server.api.{p.stem}" for p in API.glob("*.py") if _defines_router(p))
    assert "server.api.query" in routers and "server.api.ingest" in routers  # the scan finds routers
    independent = _contract("independence", "routers never import other routers")
    assert sorted(independent["modules"]) == routers
    # The shared modules a router may import define no router themselves.
    for shared in ("deps", "errors", "body"):
        assert not _defines_router(API / f"{shared}.py")
    pyroscope = _contract("forbidden", "Pyroscope's routes")
    assert sorted(pyroscope["forbidden_modules"]) == routers


COLLECT_PROCESS = """
import json, sys
from collector.httpapp import metrics_app
from collector.manager import Shard
from server.settings import Settings
from stackyard.cli import build_parser
from stackyard.collecting import build_collector

args = build_parser().parse_args(["collect", "--push-url", "http://127.0.0.1:1", "--config", sys.argv[1]])
settings = Settings()
manager, registry = build_collector(settings, args.push_url, Shard.parse(args.shard), args.config)
metrics_app(registry, settings)
print(json.dumps(sorted(sys.modules)))
"""


def test_a_collect_process_loads_no_database_code(tmp_path: Path) -> None:
    config = tmp_path / "stackyard.yaml"
    config.write_text(
        "scrape_configs:\n"
        "  - job_name: demo\n"
        "    static_configs:\n"
        "      - targets: ['127.0.0.1:6060']\n"
        "rules:\n"
        "  - name: ManyGoroutines\n"
        "    query: '{service=\"demo\"}'\n"
        "    type: goroutine\n"
        "    expr: value > 10000\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", COLLECT_PROCESS, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert {"collector.manager", "server.config.load", "server.alerts.rules"} <= loaded  # the wiring really ran
    leaked = sorted(
        m for m in loaded if m.split(".")[0] == "sqlalchemy" or m.startswith(("server.store", "server.api", "alembic"))
    )
    assert leaked == []
