"""PTB persistence in PostgreSQL: conversation states and ``user_data`` survive a restart.

Rows live in ``bot_persistence`` (SQL in :mod:`services.repos.bot_persistence`), one JSON value
per ``(kind, key)``:

* ``conv:<handler name>`` / ``[chat_id,user_id]`` (the conversation key as a JSON array) → state
* ``user`` / ``<user_id>`` → that user's ``user_data``
* ``chat`` / ``<chat_id>`` → ``chat_data``; ``bot`` / ``bot`` → ``bot_data`` (both off by default:
  the bot's ``bot_data`` holds live objects such as the database pool)

Only plain JSON is stored (str, int, float, bool, None, lists, dicts with str keys), so what
comes back has the types that went in. A value that is not plain JSON is skipped with a warning
naming its key, never its content. Writes are upserts, so two instances can share the table.

PTB loads the data in ``Application.initialize()``, before ``post_init`` opens the pool, so the
persistence opens the pool itself on first use when it is not open yet; ``prepare`` (for
example the migrations) is awaited once before that first use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from telegram.ext import BasePersistence, PersistenceInput

from services.db import Database
from services.repos import bot_persistence as repo

logger = logging.getLogger(__name__)

ConversationKey = tuple[int | str, ...]
CallbackData = tuple[list[tuple[str, float, dict[str, Any]]], dict[str, str]]

USER_KIND = "user"
CHAT_KIND = "chat"
BOT_KIND = "bot"
BOT_KEY = "bot"
CONVERSATION_PREFIX = "conv:"

#: What the bot stores unless told otherwise: user_data and conversations only.
DEFAULT_STORE = PersistenceInput(
    bot_data=False, chat_data=False, user_data=True, callback_data=False
)

# At most this many persistence writes at once, so a busy flush leaves the pool to handlers.
_WRITERS = 2


def is_plain_json(value: object) -> bool:
    """Whether ``value`` survives a trip through ``jsonb`` with its types unchanged."""
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, str):
        return "\x00" not in value  # jsonb cannot hold NUL
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_plain_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain_json(v) for k, v in value.items())
    return False


_UNKNOWN = "\x00unknown"


def _fingerprint(data: Any) -> str:
    """A stable text form of a JSON value, to tell an unchanged value from a changed one."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def conversation_kind(name: str) -> str:
    return f"{CONVERSATION_PREFIX}{name}"


def encode_key(key: ConversationKey) -> str:
    """A conversation key as a compact JSON array, e.g. ``(42, 7)`` → ``"[42,7]"``."""
    return json.dumps(list(key), separators=(",", ":"))


def decode_key(text: str) -> ConversationKey:
    return tuple(json.loads(text))


class PostgresPersistence(BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """Conversations, ``user_data`` and optionally ``chat_data``/``bot_data`` in PostgreSQL.

    ``db`` may still be closed when PTB first calls the persistence: it is opened on first use.
    ``prepare`` is awaited once before that (e.g. ``lambda: migrate(dsn)``), because PTB loads
    persistence before ``post_init`` runs. Conversation states are written by PTB every
    ``update_interval`` seconds and once more at shutdown; callback data is not supported.
    """

    __slots__ = (
        "_conversation_max_age",
        "_db",
        "_prepare",
        "_ready",
        "_ready_lock",
        "_warned",
        "_writers",
        "_written",
    )

    def __init__(
        self,
        db: Database,
        *,
        update_interval: float = 5,
        store_data: PersistenceInput | None = None,
        prepare: Callable[[], Awaitable[object]] | None = None,
        conversation_max_age: float | None = None,
    ) -> None:
        store = store_data or DEFAULT_STORE
        if store.callback_data:
            raise ValueError("callback_data cannot be stored as plain JSON")
        super().__init__(store_data=store, update_interval=update_interval)
        self._db = db
        self._prepare = prepare
        self._conversation_max_age = conversation_max_age
        # What was last written (or loaded) per (kind, key): None for "no row".
        self._written: dict[tuple[str, str], str | None] = {}
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._writers = asyncio.Semaphore(_WRITERS)
        self._warned: set[tuple[str, str]] = set()

    async def _database(self) -> Database:
        """The database, prepared and with its pool open (done once)."""
        if not self._ready:
            async with self._ready_lock:
                if not self._ready:
                    if self._prepare is not None:
                        await self._prepare()
                    # Only a pool that was never opened: open() on a busy open pool may wait,
                    # and a pool that was closed cannot be reopened (PoolClosed says so).
                    if self._db.pool.closed:
                        await self._db.open()
                    self._ready = True
        return self._db

    async def _load(self, kind: str) -> dict[str, Any]:
        db = await self._database()
        async with db.privileged(read_only=True) as uow:
            found = await repo.load_kind(uow, kind)
        for key, data in found.items():
            self._written[(kind, key)] = _fingerprint(data)
        return found

    async def _store(self, kind: str, key: str, data: Any) -> None:
        """Upsert ``data``, or delete the row when ``data`` is None or an empty dict.

        PTB hands over every user it saw since the last flush; a value equal to what this
        process last wrote (or loaded) is not written again.
        """
        empty = data is None or data == {}
        fingerprint = None if empty else _fingerprint(data)
        if self._written.get((kind, key), _UNKNOWN) == fingerprint:
            return
        db = await self._database()
        async with self._writers, db.privileged() as uow:
            if empty:
                await repo.delete(uow, kind, key)
            else:
                await repo.upsert(uow, kind, key, data)
            await uow.commit()
        self._written[(kind, key)] = fingerprint

    def _warn_once(self, what: str, key: object) -> None:
        """Log a skipped value once per ``what`` and key: the key only, never the value."""
        marker = (what, repr(key))
        if marker not in self._warned:
            self._warned.add(marker)
            logger.warning("not persisting %s key %r: not plain JSON", what, key)

    def _plain_part(self, what: str, data: dict[Any, Any]) -> dict[str, Any]:
        """The entries of ``data`` that can be stored; the others are skipped with a warning."""
        kept: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(key, str) and is_plain_json(value):
                kept[key] = value
            else:
                self._warn_once(what, key)
        return kept

    # Loading (called by Application.initialize)

    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        return {int(key): data for key, data in (await self._load(USER_KIND)).items()}

    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        return {int(key): data for key, data in (await self._load(CHAT_KIND)).items()}

    async def get_bot_data(self) -> dict[Any, Any]:
        stored: dict[Any, Any] = (await self._load(BOT_KIND)).get(BOT_KEY, {})
        return stored

    async def get_callback_data(self) -> CallbackData | None:
        return None

    async def get_conversations(self, name: str) -> dict[ConversationKey, object]:
        """Conversations in progress; with ``conversation_max_age``, only those written within
        it: a conversation that timed out while the bot was down does not come back (PTB's
        timeout jobs are not persisted)."""
        db = await self._database()
        async with db.privileged(read_only=True) as uow:
            stored = await repo.load_kind(uow, conversation_kind(name), self._conversation_max_age)
        for key, state in stored.items():
            self._written[(conversation_kind(name), key)] = _fingerprint(state)
        return {decode_key(key): state for key, state in stored.items()}

    # Writing (called by Application.update_persistence, periodically and at shutdown)

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        """Store the state; ``None`` (conversation over) deletes the row. A state that is not
        plain JSON is not stored and the older one is deleted, so a restart starts afresh."""
        if new_state is not None and not is_plain_json(new_state):
            self._warn_once("conversation state", name)
            new_state = None
        await self._store(conversation_kind(name), encode_key(key), new_state)

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        await self._store(USER_KIND, str(user_id), self._plain_part("user_data", data))

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        await self._store(CHAT_KIND, str(chat_id), self._plain_part("chat_data", data))

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        await self._store(BOT_KIND, BOT_KEY, self._plain_part("bot_data", data))

    async def update_callback_data(self, data: CallbackData) -> None:
        """Not supported (refused in ``__init__``), so never called."""

    async def drop_user_data(self, user_id: int) -> None:
        await self._store(USER_KIND, str(user_id), None)

    async def drop_chat_data(self, chat_id: int) -> None:
        await self._store(CHAT_KIND, str(chat_id), None)

    # Refreshing: data is loaded once at start; another instance's later writes are not pulled
    # in before each update (the bot keeps nothing there that two instances both change).

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        """No-op: ``user_data`` is read once, in ``initialize()``."""

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        """No-op: ``chat_data`` is read once, in ``initialize()``."""

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        """No-op: ``bot_data`` is read once, in ``initialize()``."""

    async def flush(self) -> None:
        """Nothing to do: every ``update_*`` call has written its row before returning. Safe at
        shutdown; the pool is not closed here (``post_shutdown`` owns it)."""
