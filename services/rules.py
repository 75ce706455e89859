"""Pure domain rules of SPEC §3: ranking, theater status, progress, energy, overload.

Everything here is deterministic and does no I/O: the current time is passed in as ``now``
(an aware ``datetime``; mixing aware and naive values raises ``TypeError``). Scores, stale
days, progress and risk are ``Decimal`` because they map to NUMERIC columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from uuid import UUID

from services.models import ARMS, Arm, NbaItem, TheaterStatus
from services.validation import ACTION_MAX, check_energy

__all__ = [
    "ACTIVE_WINDOW",
    "STALE_CAP_DAYS",
    "STALE_DAYS_MAX",
    "UNDO_WINDOW",
    "Overload",
    "RankedItem",
    "ScoreExplanation",
    "choose_current",
    "combined_progress",
    "done_action",
    "energy_split",
    "explain_score",
    "format_number",
    "minute_shares",
    "overload",
    "progress_bar",
    "rank",
    "risk_trend",
    "score",
    "stale_days",
    "theater_status",
    "undo_allowed",
]

ACTIVE_WINDOW = timedelta(hours=24)
UNDO_WINDOW = timedelta(hours=24)
STALE_CAP_DAYS = Decimal(15)
#: Largest value ``nba_items.stale_days NUMERIC(5,1)`` can hold.
STALE_DAYS_MAX = Decimal("9999.9")

_TENTH = Decimal("0.1")
_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)
_EARLY_BONUS = Decimal(15)
_DAY_US = 86_400_000_000
_HOUR_US = 3_600_000_000


def format_number(value: Decimal | int) -> str:
    """Format a number without exponent or trailing zeros: 12.0 -> "12", 12.50 -> "12.5"."""
    if isinstance(value, int):
        return str(value)
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


# --- NBA ranking --------------------------------------------------------------------------


def stale_days(last_updated: datetime, now: datetime) -> Decimal:
    """Days since ``last_updated``, one decimal (ROUND_HALF_UP), never negative.

    Clamped to 9999.9, the largest value the ``stale_days NUMERIC(5,1)`` column holds.
    """
    micros = _micros(now - last_updated)
    if micros <= 0:
        return Decimal("0.0")
    days = (Decimal(micros) / _DAY_US).quantize(_TENTH, rounding=ROUND_HALF_UP)
    return min(days, STALE_DAYS_MAX)


def score(gap: int, stale_days: Decimal, early_bonus: bool) -> Decimal:
    """10 × gap + 2 × min(stale_days, 15) + (15 if early_bonus): 0–95 for gap 0–5.

    Negative stale days count as 0. Raises ``ValueError`` for a gap outside 0–5.
    """
    if not 0 <= gap <= 5:
        raise ValueError(f"gap must be 0-5, got {gap}")
    stale = min(max(stale_days, Decimal(0)), STALE_CAP_DAYS)
    return Decimal(10 * gap) + 2 * stale + (_EARLY_BONUS if early_bonus else Decimal(0))


@dataclass(frozen=True, slots=True)
class ScoreExplanation:
    """The parts of a score, renderable as "gap 4 (+40) · stale 6.0 d (+12) · … = 67"."""

    gap: int
    stale_days: Decimal
    early_bonus: bool

    @classmethod
    def of(cls, item: NbaItem, now: datetime | None = None) -> ScoreExplanation:
        """Parts of ``item``'s score: stale from ``now`` if given, else the stored value."""
        stale = item.stale_days if now is None else stale_days(item.last_updated, now)
        return cls(item.gap, stale, item.has_early_progress_bonus)

    @property
    def shown_stale_days(self) -> Decimal:
        """Stale days as displayed and counted: one decimal, never negative."""
        return max(self.stale_days, Decimal(0)).quantize(_TENTH, rounding=ROUND_HALF_UP)

    @property
    def stale_capped(self) -> bool:
        """True when stale days exceed the 15-day cap."""
        return self.shown_stale_days > STALE_CAP_DAYS

    @property
    def total(self) -> Decimal:
        """The score."""
        return score(self.gap, self.shown_stale_days, self.early_bonus)

    def text(self) -> str:
        """Render e.g. "gap 4 (+40) · stale 6.0 d (+12) · early progress (+15) = 67"."""
        stale = self.shown_stale_days
        stale_points = 2 * min(stale, STALE_CAP_DAYS)
        cap = f", capped at {format_number(STALE_CAP_DAYS)} d" if self.stale_capped else ""
        parts = [
            f"gap {self.gap} (+{10 * self.gap})",
            f"stale {stale} d (+{format_number(stale_points)}{cap})",
        ]
        if self.early_bonus:
            parts.append(f"early progress (+{format_number(_EARLY_BONUS)})")
        return " · ".join(parts) + f" = {format_number(self.total)}"

    def __str__(self) -> str:
        return self.text()


def explain_score(what: NbaItem | ScoreExplanation, now: datetime | None = None) -> str:
    """Explain a score; for an item, stale days come from ``now`` if given, else stored.

    Stale days are shown with one decimal and counted as shown, so the sum always adds up.
    """
    parts = what if isinstance(what, ScoreExplanation) else ScoreExplanation.of(what, now)
    return parts.text()


@dataclass(frozen=True, slots=True)
class RankedItem:
    """An open NBA item with its fresh score, for candidate lists."""

    item: NbaItem
    stale_days: Decimal
    score: Decimal
    explanation: str
    is_current: bool


def _open_items(items: Sequence[NbaItem]) -> list[NbaItem]:
    owners = {(item.user_id, item.arm_type) for item in items}
    if len(owners) > 1:
        raise ValueError("ranking needs the items of one user's one theater")
    return [item for item in items if item.completed_at is None]


def _order_key(item: NbaItem, now: datetime) -> tuple[Decimal, datetime, UUID]:
    """Sort key: highest score, then earliest created_at, then smallest id.

    UUIDs compare by their 128-bit value, which is the same order as their canonical
    lower-case string, their big-endian bytes and Postgres's ``ORDER BY id``.
    """
    fresh = score(item.gap, stale_days(item.last_updated, now), item.has_early_progress_bonus)
    return (-fresh, item.created_at, item.id)


def choose_current(items: Sequence[NbaItem], now: datetime) -> UUID | None:
    """The id of the theater's current item among its open (not completed) items.

    1. a locked item; 2. else a manually selected item; 3. else the highest score (stale
    days computed from ``now``), ties to the earliest ``created_at``, then the smallest id;
    4. no open items: None. Should the data hold several locked (or manually selected)
    items, which the database forbids, the best of them by rule 3 wins. ``items`` must all
    belong to one user's one theater (``ValueError`` otherwise).
    """
    candidates = _open_items(items)
    if not candidates:
        return None
    locked = [item for item in candidates if item.is_locked]
    manual = [item for item in candidates if item.is_manually_selected]
    pool = locked or manual or candidates
    return min(pool, key=lambda item: _order_key(item, now)).id


def rank(items: Sequence[NbaItem], now: datetime) -> list[RankedItem]:
    """Open items with fresh score and explanation: the current one first, then by score."""
    current = choose_current(items, now)
    ordered = sorted(_open_items(items), key=lambda item: _order_key(item, now))
    ranked: list[RankedItem] = []
    for item in ordered:
        parts = ScoreExplanation.of(item, now)
        ranked.append(
            RankedItem(
                item=item,
                stale_days=parts.shown_stale_days,
                score=parts.total,
                explanation=parts.text(),
                is_current=item.id == current,
            )
        )
    ranked.sort(key=lambda entry: not entry.is_current)  # stable: keeps score order
    return ranked


def done_action(title: str) -> str:
    """The log action for a completed item, "Done: <title>", cut to the 200-character limit."""
    action = f"Done: {title.strip()}"
    if len(action) > ACTION_MAX:
        action = action[: ACTION_MAX - 1] + "…"
    return action


def undo_allowed(logged_at: datetime, now: datetime) -> bool:
    """True if a log written at ``logged_at`` is under 24 hours old (so /undo may remove it)."""
    return now - logged_at < UNDO_WINDOW


# --- theaters -----------------------------------------------------------------------------


def theater_status(
    last_activity: datetime,
    now: datetime,
    idle_after_hours: int = 72,
    blocked: bool = False,
) -> TheaterStatus:
    """'blocked' if blocked; else by hours h since last activity: 'active' if h < 24,
    'warm' if h < idle_after_hours, else 'idle'.

    The rules apply in that order, so the 24-hour active window always wins: with
    ``idle_after_hours`` ≤ 24 there is no warm state and a theater turns idle at 24 h.
    Activity in the future (clock skew) counts as active.
    """
    if blocked:
        return "blocked"
    since = now - last_activity
    if since < ACTIVE_WINDOW:
        return "active"
    if since < timedelta(hours=idle_after_hours):
        return "warm"
    return "idle"


def combined_progress(ibm: Decimal, cs: Decimal) -> Decimal:
    """Mean of the two theaters' progress, 2 decimals (ROUND_HALF_UP)."""
    return ((ibm + cs) / 2).quantize(_CENT, rounding=ROUND_HALF_UP)


def energy_split(ibm_share: int) -> tuple[int, int]:
    """(ibm, cs) = (N, 100 − N); raises ``OutOfRange`` unless 0 ≤ N ≤ 100."""
    ibm = check_energy(ibm_share)
    return ibm, 100 - ibm


# --- overload -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overload:
    """Overload risk from the trailing 7 days' minutes against the weekly capacity."""

    minutes: int
    capacity_hours: int
    load: Decimal
    risk: Decimal
    hours_logged: Decimal

    def describe(self) -> str:
        """E.g. "31.5 h of your 40 h weekly capacity in the last 7 days"."""
        return (
            f"{self.hours_logged} h of your {self.capacity_hours} h weekly capacity"
            " in the last 7 days"
        )


def overload(minutes_7d: int, capacity_hours: int) -> Overload:
    """load = minutes / (capacity_hours × 60); risk = min(100, 100 × load), 2 decimals.

    ``hours_logged`` has one decimal. Raises ``ValueError`` for negative minutes or a
    capacity below 1 hour.
    """
    if minutes_7d < 0:
        raise ValueError(f"minutes must not be negative, got {minutes_7d}")
    if capacity_hours < 1:
        raise ValueError(f"capacity must be at least 1 hour, got {capacity_hours}")
    load = Decimal(minutes_7d) / Decimal(capacity_hours * 60)
    risk = min(_HUNDRED, _HUNDRED * load).quantize(_CENT, rounding=ROUND_HALF_UP)
    hours = (Decimal(minutes_7d) / 60).quantize(_TENTH, rounding=ROUND_HALF_UP)
    return Overload(minutes_7d, capacity_hours, load, risk, hours)


def minute_shares(minutes_by_arm: Mapping[Arm, int]) -> dict[Arm, Decimal]:
    """Each theater's percentage of the minutes logged, one decimal.

    A missing theater counts as 0 minutes. With no minutes at all both shares are 0.0 (the
    caller can tell "nothing logged" from the total). The ibm share is rounded
    (ROUND_HALF_UP) and cs gets 100.0 minus it, so the shares always sum to 100.0.
    Raises ``ValueError`` for negative minutes.
    """
    minutes = {arm: minutes_by_arm.get(arm, 0) for arm in ARMS}
    if any(value < 0 for value in minutes.values()):
        raise ValueError("minutes must not be negative")
    total = sum(minutes.values())
    if total == 0:
        return {arm: Decimal("0.0") for arm in ARMS}
    ibm = (_HUNDRED * minutes["ibm"] / total).quantize(_TENTH, rounding=ROUND_HALF_UP)
    return {"ibm": ibm, "cs": (_HUNDRED - ibm).quantize(_TENTH)}


def risk_trend(current: Decimal, day_ago: Decimal | None) -> str:
    """Change of the risk over 24 h: "↑ 12.5 points in 24 h", "↓ 3 points in 24 h",
    "unchanged in 24 h" or "no data 24 h ago"."""
    if day_ago is None:
        return "no data 24 h ago"
    change = current - day_ago
    if change == 0:
        return "unchanged in 24 h"
    arrow = "↑" if change > 0 else "↓"
    size = abs(change)
    unit = "point" if size == 1 else "points"
    return f"{arrow} {format_number(size)} {unit} in 24 h"


def progress_bar(pct: Decimal, width: int = 10) -> str:
    """E.g. "▓▓▓▓░░░░░░ 40%": ``width`` cells, rounded half up, label as given.

    Any progress above 0 shows at least one filled cell and anything below 100 leaves at
    least one empty cell, so a bar is full or empty only at exactly 100 or 0.
    """
    if width < 2:
        raise ValueError(f"width must be at least 2, got {width}")
    clamped = min(max(pct, Decimal(0)), _HUNDRED)
    filled = int((clamped * width / _HUNDRED).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if clamped > 0:
        filled = max(filled, 1)
    if clamped < _HUNDRED:
        filled = min(filled, width - 1)
    return "▓" * filled + "░" * (width - filled) + f" {format_number(pct)}%"
