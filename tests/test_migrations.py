"""The schema comes only from Alembic migrations, and the models agree with it on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from server.migrate import upgrade
from server.store.models import Base


def test_migrations_match_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
            assert differences == [], differences
            tables = set(inspect(conn).get_table_names())
        assert {"series", "functions", "stack_nodes", "profiles", "profile_blobs", "alembic_version"} <= tables
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
