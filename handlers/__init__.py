"""Telegram handlers. ``register_handlers`` adds them all to an Application, in order."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application


def register_handlers(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add every handler module's handlers, most specific first, fallbacks last."""
    from handlers import basic, errors, nba, tracking

    basic.register_gate(app)
    basic.register(app)
    nba.register(app)
    tracking.register(app)
    basic.register_fallbacks(app)
    app.add_error_handler(errors.on_error)
