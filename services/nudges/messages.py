"""What a nudge says: the data each kind of message carries from the scan to the sender, and
what the sender raises.

:func:`services.nudges.scan.run_scan` takes a ``send`` callable (``handlers/nudges.py`` renders
and sends) that raises :class:`SendFailed` or :class:`Blocked`; nothing here imports ``telegram``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from services import rules
from services.models import Arm, TheaterStatus

__all__ = [
    "Blocked",
    "BriefNudge",
    "IdleNudge",
    "NbaLine",
    "Nudge",
    "OverloadNudge",
    "ReviewNudge",
    "Send",
    "SendFailed",
    "TheaterBrief",
    "TheaterReview",
]


# --- what send raises -----------------------------------------------------------------------


class SendFailed(Exception):
    """The message did not go out. ``permanent``: retrying cannot help (a bad request)."""

    def __init__(
        self, permanent: bool, reason: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(reason or ("permanent failure" if permanent else "passing failure"))
        self.permanent = permanent
        self.retry_after = retry_after


class Blocked(Exception):
    """The user blocked the bot (Telegram 403)."""


# --- what the messages need -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NbaLine:
    """A theater's current Next Best Action, as a nudge shows it."""

    item_id: UUID
    title: str
    explanation: str


@dataclass(frozen=True, slots=True)
class IdleNudge:
    """A theater has been idle: how long, and what to do next."""

    kind: ClassVar[str] = "idle"
    nudge_id: UUID
    user_id: UUID
    arm: Arm
    days_idle: Decimal
    last_activity: datetime
    timezone: str
    current: NbaLine | None


@dataclass(frozen=True, slots=True)
class OverloadNudge:
    """The overload risk is at or over the user's threshold."""

    kind: ClassVar[str] = "overload"
    nudge_id: UUID
    user_id: UUID
    overload: rules.Overload
    threshold: int


@dataclass(frozen=True, slots=True)
class TheaterBrief:
    arm: Arm
    status: TheaterStatus
    progress: Decimal
    energy: int
    current: NbaLine | None
    blocked_reason: str | None


@dataclass(frozen=True, slots=True)
class BriefNudge:
    """The daily brief: both theaters, their current NBAs, the overload risk."""

    kind: ClassVar[str] = "brief"
    nudge_id: UUID
    user_id: UUID
    local_date: date
    theaters: tuple[TheaterBrief, ...]
    overload: rules.Overload
    combined_progress: Decimal


@dataclass(frozen=True, slots=True)
class TheaterReview:
    arm: Arm
    minutes: int
    minute_share: Decimal
    energy_share: int
    done: int
    done_titles: tuple[str, ...]
    reflections: int
    evidence: tuple[str, ...]

    @property
    def drift(self) -> Decimal:
        """Points of logged share over (+) or under (−) the planned energy share."""
        return self.minute_share - self.energy_share


@dataclass(frozen=True, slots=True)
class ReviewNudge:
    """The weekly review of the last 7 days.

    ``drifted`` is the theater whose share of the logged minutes exceeded its planned energy
    share the most (None with nothing logged or no drift of a point or more); the review offers
    to shift 10 points of energy to it, so the plan follows where the time went.
    ``energy_ibm`` is the ibm share when the review was made (the button checks it).
    """

    kind: ClassVar[str] = "review"
    nudge_id: UUID
    user_id: UUID
    week: str
    theaters: tuple[TheaterReview, ...]
    total_minutes: int
    drifted: Arm | None
    drift_points: Decimal
    energy_ibm: int
    overload: rules.Overload

    @property
    def can_shift(self) -> bool:
        if self.drifted is None:
            return False
        return self.energy_ibm < 100 if self.drifted == "ibm" else self.energy_ibm > 0


Nudge = IdleNudge | OverloadNudge | BriefNudge | ReviewNudge
Send = Callable[[int, Nudge], Awaitable[None]]
