"""Unit tests: no database, no network, so that the level runs in seconds.

A unit test that asks for a fixture of the levels above (a database, the Bot API emulator, the
running bot, the fake Supabase Auth) stops the collection, naming the fixture; one that opens
a connection of its own (a socket, a PostgreSQL connection) fails when it tries. Such a test
belongs in tests/integration or tests/e2e (see CONTRIBUTING.md).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest

HERE = Path(__file__).parent

#: The fixtures of tests/conftest.py that need PostgreSQL or a server.
OUTSIDE = frozenset(
    {
        "server_dsn",
        "database_dsn",
        "empty_database",
        "server",
        "database",
        "db",
        "alice",
        "bob",
        "emulator",
        "bot",
        "supabase_bot",
        "fake",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not item.path.is_relative_to(HERE):
            continue
        used = sorted(OUTSIDE.intersection(getattr(item, "fixturenames", ())))
        if used:
            raise pytest.UsageError(
                f"{item.nodeid} is a unit test but uses {', '.join(used)}: move it to"
                " tests/integration or tests/e2e"
            )


@pytest.fixture(autouse=True)
def no_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse what a unit test must not do, with a message saying so."""

    def refuse(what: str) -> Any:
        def refused(*args: object, **kwargs: object) -> NoReturn:
            raise AssertionError(f"a unit test opens no {what}: move it to tests/integration")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("network connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("network connection"))
    monkeypatch.setattr(psycopg, "connect", refuse("database connection"))
    monkeypatch.setattr(psycopg.Connection, "connect", refuse("database connection"))
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", refuse("database connection"))
    yield
