"""What handlers need from the composition root, reached through ``context.bot_data``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.db import Database
from services.outbox import Outbox


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    """The database, the settings that change behaviour, and the clock (replaceable in tests)."""

    db: Database
    allowed_user_ids: frozenset[int] = frozenset()
    supabase_url: str | None = None
    supabase_anon_key: str | None = None
    clock: Callable[[], datetime] = field(default=utc_now)
    outbox: Outbox | None = None
    #: the dashboard's public URL (``WEBAPP_URL``); None: no dashboard
    webapp_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


DEPS_KEY = "aelpher.deps"


def get_deps(bot_data: dict[Any, Any]) -> Deps:
    deps = bot_data[DEPS_KEY]
    assert isinstance(deps, Deps)
    return deps
