"""Dependencies shared by routers, as ``Annotated`` aliases so handler signatures read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.settings import Settings
from server.store.repository import Store


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
