"""Dashboard pages at clean paths: ``GET /diff`` serves ``web/diff.html``.

The static mount serves ``/`` (``index.html``) and the scripts and styles; a
page is any ``web/<name>.html`` whose name is one lowercase word, so a branch
that adds ``web/leaks.html`` gets ``/leaks`` without touching the server. The
routes are made from the files present when the app is built (pages ship with
the release), which keeps unknown paths falling through to the static mount.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

PAGE_NAME = re.compile(r"[a-z]+")


def page_names(web_dir: Path) -> list[str]:
    """The pages of ``web_dir``: its ``<word>.html`` files, except ``index`` (that is ``/``)."""
    if not web_dir.is_dir():
        return []
    return sorted(
        p.stem for p in web_dir.glob("*.html") if PAGE_NAME.fullmatch(p.stem) and p.stem != "index" and p.is_file()
    )


def _serve(path: Path) -> Callable[[], FileResponse]:
    def page() -> FileResponse:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    return page


def router_for(web_dir: Path) -> APIRouter:
    """One ``GET /<name>`` route per page file of ``web_dir``."""
    router = APIRouter(include_in_schema=False)
    for name in page_names(web_dir):
        router.add_api_route(f"/{name}", _serve(web_dir / f"{name}.html"), methods=["GET"], name=f"page-{name}")
    return router
