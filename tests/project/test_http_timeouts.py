"""No test reaches a server without naming how long it will wait.

httpx gives up on a response after 5 seconds unless told otherwise. On a 2-core machine running
pytest-xdist workers, Chromium, Go builds and PostgreSQL at once, a live server in a test's own
process can take longer than that to answer, so a bare ``httpx.get`` is a timed assertion in
disguise: a CI run failed that way (``test_pages_are_served_at_their_paths``). ``urllib``'s
``urlopen`` has the opposite default, no timeout at all, so a server that stops answering hangs
the test until CI's own limit. Every module-level httpx call, every ``httpx.Client`` and
``httpx.AsyncClient``, and every ``urlopen`` in the tests names its timeout, as ``LiveServer.get``
does (30 s); a deliberately short one (polling for readiness) says so by naming it too.
FastAPI's ``TestClient`` is left alone: it calls the app in-process, never through a socket.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
#: httpx's module-level request functions, and its clients (whose requests take the client's timeout).
HTTPX = {"get", "post", "head", "put", "patch", "delete", "request", "stream", "Client", "AsyncClient"}
#: ``urlopen(url, data=None, timeout=...)``: the timeout may be the third positional argument.
URLOPEN_TIMEOUT_POSITION = 2


def _callee(call: ast.Call) -> tuple[str, str] | None:
    """``("httpx", "get")`` for ``httpx.get(...)``; ``("urllib", "urlopen")`` for ``urlopen(...)`` however imported."""
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "httpx":
        return "httpx", func.attr
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return ("urllib", name) if name == "urlopen" else None


def _names_timeout(call: ast.Call, positional: int | None) -> bool:
    if any(keyword.arg in ("timeout", None) for keyword in call.keywords):  # None: **kwargs, which may hold it
        return True
    return positional is not None and len(call.args) > positional


def _bare_calls(path: Path, root: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        callee = _callee(node)
        if callee is None or (callee[0] == "httpx" and callee[1] not in HTTPX):
            continue
        positional = URLOPEN_TIMEOUT_POSITION if callee[0] == "urllib" else None
        if not _names_timeout(node, positional):
            found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_every_http_call_in_the_tests_names_its_timeout() -> None:
    bare = [where for path in sorted(TESTS.rglob("*.py")) for where in _bare_calls(path, TESTS.parent)]
    assert bare == [], "HTTP calls or clients without a timeout (give timeout=30): " + ", ".join(bare)


def test_the_check_finds_bare_calls_and_clients(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import httpx\n"
        "import urllib.request\n"
        "from urllib.request import urlopen\n"
        'httpx.get("http://127.0.0.1:1/")\n'  # 4: bare
        'httpx.get("http://x/", timeout=30)\n'
        "httpx.Client(base_url='http://x/')\n"  # 6: bare
        "httpx.AsyncClient(timeout=30)\n"
        'urllib.request.urlopen("http://x/")\n'  # 8: bare
        'urllib.request.urlopen("http://x/", None, 30)\n'
        'urlopen("http://x/")\n'  # 10: bare
        'urlopen("http://x/", timeout=10)\n'
        "httpx.Headers({})\n"  # not a request
    )
    assert _bare_calls(sample, tmp_path) == ["sample.py:4", "sample.py:6", "sample.py:8", "sample.py:10"]
