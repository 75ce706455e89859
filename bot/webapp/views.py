"""The dashboard's JSON: pure functions from the services' views to plain dicts.

Numbers the services keep as ``Decimal`` go out as JSON numbers (the page only shows them),
instants as ISO 8601 in UTC, ids as strings. docs/webapp.md documents every field.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from services import rules
from services.models import FocusSession
from services.stats import StatsView
from services.status import HistoryView, StatusView

JSON = dict[str, Any]


def _num(value: Decimal | int) -> float | int:
    return value if isinstance(value, int) else float(value)


def _at(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def item(entry: rules.RankedItem) -> JSON:
    return {
        "id": str(entry.item.id),
        "title": entry.item.title,
        "gap": entry.item.gap,
        "score": _num(entry.score),
        "explanation": entry.explanation,
        "current": entry.is_current,
        "locked": entry.item.is_locked,
        "chosen": entry.item.is_manually_selected,
        "stale_days": _num(entry.stale_days),
    }


def _focus(session: FocusSession | None) -> JSON | None:
    if session is None:
        return None
    return {
        "arm": session.arm_type,
        "title": session.title,
        "started_at": _at(session.started_at),
        "paused": session.paused_at is not None,
        "planned_minutes": session.planned_minutes,
    }


def state(
    first_name: str,
    status: StatusView,
    stats: StatsView,
    history: HistoryView,
) -> JSON:
    """Everything the dashboard shows, from one read of each view."""
    theaters = []
    for t in status.theaters:
        arm = t.theater.arm_type
        theaters.append(
            {
                "arm": arm,
                "status": t.status,
                "blocked_reason": t.theater.blocked_reason,
                "progress": _num(t.theater.total_progress),
                "energy_planned": t.energy_share,
                "minutes_7d": t.minutes_7d,
                "energy_logged": _num(t.minute_share),
                "last_activity": _at(t.theater.last_activity),
                "items": [item(entry) for entry in t.ranked],
            }
        )
    overload = status.overload
    return {
        "user": {"first_name": first_name},
        "timezone": status.settings.timezone,
        "now": _at(status.now),
        "theaters": theaters,
        "combined_progress": _num(status.combined_progress),
        "overload": {
            "risk": _num(overload.risk),
            "load": _num(overload.load),
            "minutes_7d": overload.minutes,
            "hours_7d": _num(overload.hours_logged),
            "capacity_hours": overload.capacity_hours,
            "threshold": status.settings.overload_threshold,
            "trend": status.trend,
            "inputs": overload.describe(),
        },
        "chart": {
            "days": [
                {
                    "day": day.day.isoformat(),
                    "minutes": dict(day.minutes),
                    "risk": _num(day.risk),
                    "today": day.is_today,
                }
                for day in stats.days
            ],
            "threshold": stats.overload_threshold,
        },
        "history": [
            {
                "kind": entry.kind,
                "arm": entry.arm,
                "at": _at(entry.timestamp),
                "text": entry.text,
                "detail": entry.detail,
                "minutes": entry.minutes,
            }
            for entry in history.entries
        ],
        "focus": _focus(status.focus),
    }
