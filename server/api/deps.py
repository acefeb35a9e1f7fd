"""Dependencies shared by routers, as ``Annotated`` aliases so handler signatures read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.auth.tokens import Principal, Scope
from server.settings import Settings
from server.store.repository import Store


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def reveals_credentials(request: Request) -> bool:
    """Whether this caller sees passwords written into URLs: those who may use them, else they are redacted.

    A collector (``ingest``) scrapes with them and an ``admin`` wrote them; a
    ``read`` token (a dashboard viewer, a script) sees ``http://user:xxxxx@host/``.
    Without access control every caller may do everything, so nothing is hidden.
    """
    if not request.app.state.tokens:
        return True
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal is not None and principal.allows(Scope.INGEST)


StoreDep = Annotated[Store, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
