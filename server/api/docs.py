"""``/docs`` (Swagger UI), with its scripts served by Stackyard itself.

FastAPI's own page loads Swagger UI from a CDN, so on a machine without
internet access (or behind a strict proxy) ``/docs`` stays blank. The
``fastapi-offline`` package ships the same distribution files; they are served
from ``/docs/assets/``, and the page is FastAPI's own HTML pointed there.
There is no ``/redoc``: ReDoc's bundle fetches its logo from a CDN, and one
offline page with the whole API (and ``/openapi.json``) is enough.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"
FAVICON = "/favicon.svg"


def install(app: FastAPI) -> None:
    """Mount the assets and add the page; ``app`` must be made with ``docs_url=None, redoc_url=None``."""
    router = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @router.get("/docs")
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} API",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{FAVICON}",
            # No validator badge: it is an image from swagger.io.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    @router.get(redirect_url)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
