"""The dashboard (a Telegram Mini App): its page and its JSON API, as tornado routes.

The routes run on the bot's own event loop, next to the webhook endpoint in webhook mode
(``bot/webhook.py``) or on their own server on ``WEBAPP_PORT`` with long polling
(:func:`serve`). docs/webapp.md documents them.

Who is asking: every API call carries ``Authorization: tma <initData>``, checked as Telegram
specifies (:mod:`bot.webapp.initdata`, with this bot's token). The Telegram user it names is
then treated like a chat update from that user: the allow-list (``ALLOWED_TELEGRAM_USER_IDS``)
first, then the principal ``TelegramUser(id)`` that every service resolves to its Aelpher
account under row-level security, in the same units of work as the chat. Writes call the same
service functions as the chat's buttons; those the outbox may keep (a log, a reflection, a new
NBA) go through ``services/sync.py: perform`` as typed commands. No cookies, no sessions:
nothing is remembered between requests.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from typing import Any, TypeVar
from uuid import UUID

import tornado.httpserver
import tornado.web
from telegram.ext import Application

from bot.webapp import initdata, views
from handlers.deps import Deps, get_deps
from services import nba, rules, stats, status, sync, validation
from services.commands import Command
from services.db import CommitUnknown, DatabaseBusy, DatabaseUnavailable, TelegramUser
from services.errors import Conflict, DomainError, Implausible, NotFound, NotLinked
from services.models import Arm, ExecutionLog, parse_arm
from services.nba import AddItem
from services.tracking import LogTime, Reflect

logger = logging.getLogger(__name__)

App = Application[Any, Any, Any, Any, Any, Any]
R = TypeVar("R")

#: How many logs and reflections the dashboard lists.
HISTORY = 10
#: The biggest request body the API reads (a bigger one: 413 ``too_large``).
MAX_BODY_BYTES = 16 * 1024
#: The biggest body the dashboard's own server accepts at all (as the webhook's): above
#: MAX_BODY_BYTES and up to this, the API answers 413 in JSON; above it the connection is
#: refused before a handler runs.
SERVER_MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")

_STATIC = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "telegram-web-app.js": ("telegram-web-app.js", "text/javascript; charset=utf-8"),
}
#: The page loads only its own files and calls only its own API.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'"
)


def static_file(name: str) -> bytes:
    """One of the page's files, as shipped in the package."""
    return (resources.files("bot.webapp") / "static" / name).read_bytes()


class ApiError(tornado.web.HTTPError):
    """A refusal: the status, a sentence for the person, and a code for the page."""

    def __init__(self, status: HTTPStatus, message: str, code: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.code = code


def unauthorized(reason: str) -> ApiError:
    return ApiError(
        HTTPStatus.UNAUTHORIZED,
        f"Open the dashboard from the bot in Telegram ({reason}).",
        "unauthorized",
    )


def launch_user(header: str | None, bot_token: str, now: float) -> initdata.LaunchUser:
    """The Telegram user of an ``Authorization: tma <initData>`` header; 401 otherwise."""
    if not header:
        raise unauthorized("no launch data")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "tma" or not raw.strip():
        raise unauthorized("malformed Authorization header")
    try:
        return initdata.validate(raw.strip(), bot_token, now=now)
    except initdata.InvalidInitData as exc:
        raise unauthorized(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Caller:
    telegram_user_id: int
    first_name: str

    @property
    def who(self) -> TelegramUser:
        return TelegramUser(self.telegram_user_id)


class _Static(tornado.web.RequestHandler):
    def initialize(self, files: dict[str, tuple[bytes, str]]) -> None:
        self.files = files

    def get(self, name: str) -> None:
        found = self.files.get(name)
        if found is None:
            raise tornado.web.HTTPError(HTTPStatus.NOT_FOUND)
        body, kind = found
        self.set_header("Content-Type", kind)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        if name == "":
            self.set_header("Content-Security-Policy", _CSP)
            self.set_header("Cache-Control", "no-cache")
        else:
            self.set_header("Cache-Control", "public, max-age=300")
        self.write(body)


class _Api(tornado.web.RequestHandler):
    """Authentication, JSON in and out, and domain errors as HTTP statuses."""

    def initialize(self, app: App) -> None:
        self.app = app
        self.caller: Caller | None = None

    @property
    def deps(self) -> Deps:
        return get_deps(self.app.bot_data)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def prepare(self) -> None:
        d = self.deps
        user = launch_user(
            self.request.headers.get("Authorization"), self.app.bot.token, d.clock().timestamp()
        )
        if d.allowed_user_ids and user.id not in d.allowed_user_ids:
            raise ApiError(
                HTTPStatus.FORBIDDEN,
                "Sorry, this Aelpher bot is private. Ask its owner to let you in.",
                "not_allowed",
            )
        self.caller = Caller(user.id, user.first_name)

    @property
    def me(self) -> Caller:
        assert self.caller is not None  # prepare() set it or refused
        return self.caller

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        info = kwargs.get("exc_info")
        if info and isinstance(info[1], Exception):
            refusal = _as_api_error(info[1])
            if isinstance(refusal, ApiError):
                kwargs["exc_info"] = (type(refusal), refusal, info[2])
                status_code = refusal.status
        super().send_error(status_code, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        info = kwargs.get("exc_info")
        error = info[1] if info else None
        if isinstance(error, ApiError):
            body = {"error": error.message, "code": error.code}
        elif isinstance(error, tornado.web.HTTPError):
            body = {"error": error.log_message or HTTPStatus(status_code).phrase, "code": "http"}
        else:
            body = {"error": "Something went wrong on the bot's side.", "code": "internal"}
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, tornado.web.HTTPError | DomainError | DatabaseUnavailable):
            logger.debug("dashboard request refused: %s", value)
        else:
            logger.error("dashboard request failed", exc_info=(typ, value, tb))

    # --- requests ------------------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        if len(self.request.body) > MAX_BODY_BYTES:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request too large.", "too_large")
        try:
            value = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            value = None
        if not isinstance(value, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "The body must be a JSON object.", "bad_body")
        return value

    def request_key(self) -> str:
        """The write's dedupe key, from the client's ``X-Request-Id`` (the same id twice:
        one write)."""
        rid = self.request.headers.get("X-Request-Id", "")
        if not _REQUEST_ID.fullmatch(rid):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "Every change needs an X-Request-Id header (8-64 characters of A-Z a-z 0-9 _ -).",
                "request_id",
            )
        return f"app:{self.me.telegram_user_id}:{rid}"

    async def state(self) -> dict[str, Any]:
        d, who = self.deps, self.me.who
        at = d.clock()
        seen = await status.status_view(d.db, who, at)  # NotLinked first, before the rest
        days = await stats.stats_view(d.db, who, at)
        history = await status.history(d.db, who, None, HISTORY)
        return views.state(self.me.first_name, seen, days, history)

    async def answer(self, message: str, status_code: HTTPStatus = HTTPStatus.OK) -> None:
        """A change's reply: what happened, and everything the page shows as it now is."""
        self.set_status(status_code)
        self.finish(json.dumps({"message": message, "state": await self.state()}))

    async def perform(self, command: Command[R]) -> R | None:
        """Run a command the outbox may keep; None when it was kept (the reply is sent)."""
        d = self.deps
        result = await sync.perform(
            d.db, d.outbox, self.me.who, self.me.telegram_user_id, command, d.clock()
        )
        if isinstance(result, sync.Queued):
            self.set_status(HTTPStatus.ACCEPTED)
            self.finish(
                json.dumps(
                    {
                        "queued": True,
                        "message": (
                            f"The database can't be reached right now: your {result.description}"
                            " is saved on the bot's server and will sync when it is back."
                        ),
                    }
                )
            )
            return None
        return result


def _as_api_error(e: Exception) -> Exception:
    """Domain errors as the API's refusals."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, NotLinked):
        return ApiError(
            HTTPStatus.FORBIDDEN,
            "Your Telegram account isn't linked to Aelpher yet: open the bot and send /start"
            " (or /link to connect an existing account).",
            "not_linked",
        )
    if isinstance(e, NotFound):
        return ApiError(HTTPStatus.NOT_FOUND, e.user_message, "not_found")
    if isinstance(e, Implausible):
        return ApiError(HTTPStatus.CONFLICT, e.user_message, "confirm")
    if isinstance(e, Conflict):
        return ApiError(HTTPStatus.CONFLICT, e.user_message, "conflict")
    if isinstance(e, DomainError):
        return ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, e.user_message, "invalid")
    if isinstance(e, DatabaseBusy):
        return ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE, "Busy right now: nothing was changed.", "busy"
        )
    if isinstance(e, CommitUnknown):
        return ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "The database was lost while saving: it may or may not be saved.",
            "uncertain",
        )
    if isinstance(e, DatabaseUnavailable):
        return ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "The database can't be reached right now: nothing was changed.",
            "unavailable",
        )
    return e


def _repeat_of(log: ExecutionLog | None, arm: str, action: str, minutes: int | None) -> None:
    """A repeated ``X-Request-Id`` answers with the change first made under it: refuse it
    (nothing written) when that change was another one, rather than report this one done."""
    if log is None or (log.arm_type, log.action, log.duration) != (arm, action, minutes):
        raise ApiError(
            HTTPStatus.CONFLICT,
            "This X-Request-Id was already used for another change: nothing was changed.",
            "request_id_reused",
        )


def _uuid(text: str) -> UUID:
    try:
        return UUID(hex=text)
    except ValueError:
        raise ApiError(HTTPStatus.NOT_FOUND, "That item no longer exists.", "not_found") from None


def _int(body: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY, f"{name} must be a whole number.", "invalid"
        )
    return value


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"{name} must be text.", "invalid")
    return value


def _arm(value: object) -> Arm:
    return parse_arm(value if isinstance(value, str) else "")


def _confirmed(body: dict[str, Any]) -> bool:
    return body.get("confirmed") is True


class StateHandler(_Api):
    """``GET /app/api/state``: everything the page shows."""

    async def get(self) -> None:
        self.finish(json.dumps(await self.state()))


class ItemsHandler(_Api):
    """``POST /app/api/items``: a new NBA (the command ``AddItem``, as /add)."""

    async def post(self) -> None:
        body = self.body()
        self.request_key()
        add = AddItem(
            arm=_arm(body.get("arm")), gap=_int(body, "gap") or 0, title=_text(body, "title") or ""
        )
        result = await self.perform(add)
        if result is not None:
            await self.answer(f"Added “{result.item.title}” to {result.item.arm_type}.")


class ItemHandler(_Api):
    """``PATCH /app/api/items/<id>``: change an open NBA's gap (and/or title)."""

    async def patch(self, item_id: str) -> None:
        body = self.body()
        self.request_key()
        d = self.deps
        result = await nba.edit_item(
            d.db, self.me.who, _uuid(item_id), d.clock(),
            title=_text(body, "title", required=False), gap=_int(body, "gap", required=False),
        )  # fmt: skip
        await self.answer(f"“{result.item.title}”: gap {result.item.gap}.")


class ItemActionHandler(_Api):
    """``POST /app/api/items/<id>/<lock|unlock|choose|done|progress>``."""

    async def post(self, item_id: str, action: str) -> None:
        body = self.body()
        key = self.request_key()
        d, who, at, uid = self.deps, self.me.who, self.deps.clock(), _uuid(item_id)
        if action == "lock":
            result = await nba.lock(d.db, who, uid, at)
            message = f"Locked “{result.item.title}”."
        elif action == "unlock":
            result = await nba.unlock(d.db, who, uid, at)
            message = f"Unlocked “{result.item.title}”."
        elif action == "choose":
            result = await nba.select(d.db, who, uid, at)
            message = f"Working on “{result.item.title}”."
        elif action == "done":
            spent = _int(body, "minutes", required=False)
            result = await nba.done(
                d.db, who, uid, at, minutes=spent, dedupe_key=key, confirmed=_confirmed(body)
            )
            if result.duplicate:
                done_action = rules.done_action(result.item.title)
                _repeat_of(result.log, result.item.arm_type, done_action, spent)
            message = f"Done: “{result.item.title}”."
        else:  # progress (the route allows no other)
            minutes = _int(body, "minutes") or 0
            result = await nba.progress(
                d.db, who, uid, minutes, at, dedupe_key=key, confirmed=_confirmed(body)
            )
            if result.duplicate:
                _repeat_of(result.log, result.item.arm_type, result.item.title, minutes)
            message = f"Logged {minutes} min on “{result.item.title}”."
        await self.answer(message)


class AutoHandler(_Api):
    """``POST /app/api/theaters/<arm>/auto``: back to automatic ranking."""

    async def post(self, arm: str) -> None:
        self.body()
        self.request_key()
        d, theater = self.deps, _arm(arm)
        await nba.auto(d.db, self.me.who, theater, d.clock())
        await self.answer(f"{theater}: back to automatic ranking.")


class LogsHandler(_Api):
    """``POST /app/api/logs``: log time (the command ``LogTime``, as /log)."""

    async def post(self) -> None:
        body = self.body()
        log = LogTime(
            arm=_arm(body.get("arm")),
            action=_text(body, "action") or "",
            minutes=_int(body, "minutes"),
            dedupe_key=self.request_key(),
            confirmed=_confirmed(body),
        )
        result = await self.perform(log)
        if result is not None and result.duplicate:
            _repeat_of(result.log, log.arm, validation.clean_action(log.action), log.minutes)
        if result is not None:
            await self.answer(f"Logged {result.log.duration} min in {result.log.arm_type}.")


class ReflectionsHandler(_Api):
    """``POST /app/api/reflections``: a reflection (the command ``Reflect``, as /reflect)."""

    async def post(self) -> None:
        body = self.body()
        self.request_key()
        reflect = Reflect(
            arm=_arm(body.get("arm")),
            evidence=_text(body, "evidence") or "",
            context=_text(body, "context", required=False) or None,
        )
        result = await self.perform(reflect)
        if result is not None:
            await self.answer(f"Reflection saved in {result.arm_type}.")


Route = tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]


def routes(app: App, prefix: str = "/app/") -> list[Route]:
    """The page and the API under ``prefix``, for a tornado Application."""
    files = {name: (static_file(file), kind) for name, (file, kind) in _STATIC.items()}
    api = {"app": app}
    uid = r"([0-9a-fA-F-]{32,36})"
    return [
        (prefix + "api/state", StateHandler, api),
        (prefix + "api/items", ItemsHandler, api),
        (prefix + f"api/items/{uid}", ItemHandler, api),
        (prefix + f"api/items/{uid}/(lock|unlock|choose|done|progress)", ItemActionHandler, api),
        (prefix + r"api/theaters/((?i:ibm|cs))/auto", AutoHandler, api),
        (prefix + "api/logs", LogsHandler, api),
        (prefix + "api/reflections", ReflectionsHandler, api),
        (prefix + r"api/.*", _NotFound, api),
        (prefix + f"({'|'.join(map(re.escape, _STATIC))})", _Static, {"files": files}),
        # "/app" → "/app/" (relative, so it holds behind a proxy that adds a path prefix)
        (prefix.rstrip("/"), tornado.web.RedirectHandler, {"url": "app/", "permanent": False}),
    ]


class _NotFound(_Api):
    """Any other API path: 404 in JSON (after the same authentication)."""

    def prepare(self) -> None:
        super().prepare()
        raise ApiError(HTTPStatus.NOT_FOUND, "No such API route.", "no_route")


def log_request(handler: tornado.web.RequestHandler) -> None:
    """tornado's access log, quieter: refusals (4xx: scanners, expired launch data) at DEBUG,
    errors at WARNING; the path only, never a query string."""
    status_code = handler.get_status()
    level = logging.WARNING if status_code >= 500 else logging.DEBUG
    request = handler.request
    logging.getLogger("tornado.access").log(
        level, "%d %s %s %.1f ms", status_code, request.method, request.path,
        1000 * request.request_time(),
    )  # fmt: skip


#: tornado's settings for a server that serves the dashboard: compressed answers (gzip, when
#: the browser asks for it), the quieter access log.
SETTINGS: dict[str, Any] = {"compress_response": True, "log_function": log_request}


def serve(app: App, port: int, listen: str = "") -> tornado.httpserver.HTTPServer:
    """The dashboard on a server of its own (long polling, the console), on the running loop;
    ``listen``: an address or host name ("localhost": its IPv4 and IPv6 addresses), or ""
    for every interface."""
    web = tornado.web.Application(routes(app), **SETTINGS)
    server = tornado.httpserver.HTTPServer(web, xheaders=True, max_body_size=SERVER_MAX_BODY_BYTES)
    server.listen(port, address=listen)
    return server
