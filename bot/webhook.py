"""Webhook mode: the HTTP endpoint Telegram posts updates to.

Telegram sends every update to ``WEBHOOK_URL`` with the secret the bot registered in the
``X-Telegram-Bot-Api-Secret-Token`` header. The endpoint compares it in constant time
(:func:`hmac.compare_digest`, so the time of a refusal says nothing about how much of a
guess was right), refuses anything else with 403 before reading the body, and hands each
accepted update to the application's update queue, as PTB's own webhook server does.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import tornado.httpserver
import tornado.web
from telegram import Update
from telegram.ext import Application

from bot.webapp import api as webapp
from handlers.deps import get_deps

logger = logging.getLogger(__name__)

#: Telegram's updates are small; anything bigger is not from Telegram.
MAX_BODY_BYTES = 1024 * 1024
PATH = "/telegram"


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where Telegram reaches this instance, and the secret it must present."""

    url: str
    secret: str
    port: int
    listen: str = "0.0.0.0"


def secret_matches(presented: str | None, secret: str) -> bool:
    """Whether the header carries the secret, compared in constant time."""
    return hmac.compare_digest((presented or "").encode(), secret.encode())


class _UpdateHandler(tornado.web.RequestHandler):
    def initialize(self, app: Application[Any, Any, Any, Any, Any, Any], secret: str) -> None:
        self.app = app
        self.secret = secret

    async def post(self) -> None:
        if not secret_matches(
            self.request.headers.get("X-Telegram-Bot-Api-Secret-Token"), self.secret
        ):
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        if self.request.headers.get("Content-Type", "").split(";")[0] != "application/json":
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        try:
            update = Update.de_json(json.loads(self.request.body), self.app.bot)
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("webhook: malformed update refused (%s)", type(exc).__name__)
            raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST) from None
        await self.app.update_queue.put(update)
        self.set_status(HTTPStatus.OK)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Refusals are expected traffic (scanners, wrong secrets): one quiet line, no trace.
        logger.debug("webhook request refused: %s", value)


def serve(
    app: Application[Any, Any, Any, Any, Any, Any], hook: Webhook
) -> tornado.httpserver.HTTPServer:
    """Listen for Telegram's requests (on the running event loop), and serve the dashboard
    on the same port when ``WEBAPP_URL`` is set."""
    rules: list[Any] = [(PATH, _UpdateHandler, {"app": app, "secret": hook.secret})]
    if get_deps(app.bot_data).webapp_url is not None:
        rules += webapp.routes(app)
    web = tornado.web.Application(rules, **webapp.SETTINGS)
    server = tornado.httpserver.HTTPServer(web, xheaders=True, max_body_size=MAX_BODY_BYTES)
    server.listen(hook.port, address=hook.listen)
    return server
