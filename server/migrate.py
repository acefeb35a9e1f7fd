"""Run Alembic migrations programmatically: the only way the schema is created or changed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def _project_root() -> Path:
    """The checkout (editable install), else the working directory (the container image copies them to /app)."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "migrations").is_dir() else Path.cwd()


ROOT = _project_root()


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
