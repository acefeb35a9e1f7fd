"""No test reaches a server with httpx's default timeout.

httpx gives up on a response after 5 seconds unless told otherwise. On a 2-core machine running
pytest-xdist workers, Chromium, Go builds and PostgreSQL at once, a live server in a test's own
process can take longer than that to answer, so a bare ``httpx.get`` is a timed assertion in
disguise: a CI run failed that way (``test_pages_are_served_at_their_paths``). Every module-level
httpx call in the tests names its timeout, as ``LiveServer.get`` does (30 s); a deliberately short one
(polling for readiness) says so by naming it too.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CALLS = {"get", "post", "head", "put", "patch", "delete", "request", "stream"}


def _bare_calls(path: Path, root: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "httpx"
            and node.func.attr in CALLS
            and not any(keyword.arg in ("timeout", None) for keyword in node.keywords)  # None: **kwargs
        ):
            found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_every_httpx_call_in_the_tests_names_its_timeout() -> None:
    bare = [where for path in sorted(TESTS.rglob("*.py")) for where in _bare_calls(path, TESTS.parent)]
    assert bare == [], "httpx calls with the 5 s default timeout (give timeout=30): " + ", ".join(bare)


def test_the_check_finds_a_bare_call(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('import httpx\n\nhttpx.get("http://127.0.0.1:1/")\nhttpx.get("http://x/", timeout=30)\n')
    assert _bare_calls(sample, tmp_path) == ["sample.py:3"]
