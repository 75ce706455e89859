"""The dashboard (the Mini App, ``bot/webapp/``) from the chat: the menu button and the
"Open dashboard" button under /status and /nba, when ``WEBAPP_URL`` is set."""

from __future__ import annotations

import logging

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonWebApp,
    Update,
    WebAppInfo,
)
from telegram.error import TelegramError

from handlers.common import Context, deps

logger = logging.getLogger(__name__)

DASHBOARD_LABEL = "📊 Open dashboard"
MENU_LABEL = "Dashboard"


def with_dashboard(
    context: Context, markup: InlineKeyboardMarkup | None
) -> InlineKeyboardMarkup | None:
    """``markup`` with an "Open dashboard" row at the end (no dashboard: as it is)."""
    url = deps(context).webapp_url
    if url is None:
        return markup
    rows = list(markup.inline_keyboard) if markup is not None else []
    rows.append((InlineKeyboardButton(DASHBOARD_LABEL, web_app=WebAppInfo(url)),))
    return InlineKeyboardMarkup(rows)


async def offer_menu_button(update: Update, context: Context) -> None:
    """Make the chat's menu button open the dashboard (for a linked user; no dashboard:
    nothing). A refusal is logged: the chat works without it."""
    url = deps(context).webapp_url
    chat = update.effective_chat
    if url is None or chat is None:
        return
    try:
        await context.bot.set_chat_menu_button(
            chat_id=chat.id, menu_button=MenuButtonWebApp(MENU_LABEL, WebAppInfo(url))
        )
    except TelegramError as exc:
        logger.warning("menu button not set: %s", exc)
