"""Telegram handlers. ``register_handlers`` adds them all to an Application, in order."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application, CallbackQueryHandler


def register_handlers(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add every handler module's handlers, most specific first, fallbacks last."""
    from handlers import (
        basic,
        capture,  # noqa: F401  (registers the quick-capture flow)
        conversation,
        data,
        errors,
        focus,
        link,
        nba,
        nudges,
        onboarding,
        settings,
        stats,
        tracking,
    )

    basic.register_gate(app)
    link.register(app)
    nba.register(app)
    focus.register(app)
    tracking.register(app)
    data.register(app)
    stats.register(app)
    nudges.register(app)  # nudge buttons, and my_chat_member (blocked / unblocked)
    settings.register(app)
    onboarding.register(app)  # the "onboard" flow; /start is basic's
    conversation.register(app)  # question buttons, typed answers and quick capture
    basic.register(app)
    basic.register_fallbacks(app)
    app.add_handler(CallbackQueryHandler(errors.unknown_button))
    app.add_error_handler(errors.on_error)
