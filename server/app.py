"""``create_app(settings)``: the FastAPI application, built from a settings object, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from server import __version__
from server.api import errors, health, ingest, labels, query
from server.migrate import ROOT
from server.settings import Settings
from server.store.repository import Store

WEB_DIR = ROOT / "web"


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """Build the app; pass ``store`` to share one (and its caches) with an in-process collector or test."""
    owned = store is None
    the_store = store if store is not None else Store.from_url(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            the_store.close()

    app = FastAPI(title="Stackyard", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = the_store
    errors.install(app)
    for module in (health, ingest, query, labels):
        app.include_router(module.router)
    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
