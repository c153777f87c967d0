"""The throwaway PostgreSQL server the catalog tests use: it must say clearly when it cannot run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import postgres_server
from tests.postgres_server import PostgresServer, PostgresUnavailable


def test_missing_binaries_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres_server, "find_bindir", lambda: None)
    with pytest.raises(PostgresUnavailable, match="apt-get install postgresql"):
        PostgresServer()


def test_a_server_that_exits_at_start_is_reported(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("initdb", "postgres"):
        tool = bindir / name
        tool.write_text("#!/bin/sh\necho 'FATAL: broken on purpose' >&2\nexit 1\n")
        tool.chmod(0o755)
    server = PostgresServer(bindir)
    try:
        with pytest.raises(PostgresUnavailable, match=r"initdb failed \(1\): .+"):
            server.start(timeout=5)
    finally:
        server.stop()


def test_each_database_is_fresh_and_dropped(postgres_server: Any) -> None:
    import sqlalchemy as sa

    first, second = postgres_server.create_database(), postgres_server.create_database()
    assert first != second
    engine = sa.create_engine(first)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() == first.rsplit("/")[-1]
    engine.dispose()
    for url in (first, second):
        postgres_server.drop_database(url)
    engine = sa.create_engine(postgres_server.url("postgres"))
    with engine.connect() as conn:
        names = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    engine.dispose()
    assert not {first.rsplit("/")[-1], second.rsplit("/")[-1]} & names
