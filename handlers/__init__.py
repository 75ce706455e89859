"""Telegram handlers. ``register_handlers`` adds them all to an Application, in order."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application


def register_handlers(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add every handler module's handlers, most specific first."""
    from handlers import basic

    basic.register(app)
