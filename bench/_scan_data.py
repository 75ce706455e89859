"""The population of ``bench/scan.py``: N users in a steady state, a given share of them due.

Rows are made chunk by chunk (a few thousand users at a time, one transaction each) as lines of
PostgreSQL's COPY text format, so memory stays bounded whatever N is. The nudge-scan hints are
left to the migration's triggers where the triggers give the steady-state value (a theater's
``idle_check_at`` = last activity + the user's idle threshold; ``overload_check_at`` = epoch
when the risk is at or over the threshold); where a scan would since have moved a hint (an idle
episode that has had its nudges, a brief's next instant, an overload nudged a few hours ago,
a snooze) the chunk also lists a **fix-up**, applied by ``UPDATE ... FROM`` a temporary table
in the same transaction — the same statements the scan itself uses to move hints.

Every user has: an ``auth.users`` row, an active ``telegram_links`` row, ``user_settings``
(a mix of time zones, thresholds, quiet hours; some with a daily brief or a weekly review),
``global_metrics``, two theaters, five NBA items per theater (one current, some done), a few
``execution_logs`` over the last two weeks, and the ledger rows (``nudges``) its past implies.

Users who are **not due** are in one of these states (shares of the not-due users):

* 70%+: both theaters active or warm (last activity within the idle threshold);
* 12%: one theater idle for 6-30 days whose episode had all 3 idle nudges (hint null);
* 6%: one theater idle whose episode had 1 or 2 nudges, the last < 24 h ago (hint = +24 h);
* 3%: one theater blocked, idle for long (excluded by the partial index);
* 2%: one theater idle but snoozed for a few more hours (hint = the snooze's end);
* independently: 3% over their overload threshold and nudged for it < 24 h ago, 20% with a
  daily brief (sent today or yesterday; hint = the next one), 10% with a weekly review.

**Due** users (exactly ``round(N × due_fraction)``, spread evenly over the ids) have one due
nudge each, by turns (j = their rank among the due users): j mod 5 in {0, 1}: a theater idle
past the user's threshold, not nudged yet in this episode; 2: overload risk at or over the
threshold, never nudged (hint epoch, from the trigger); 3: a daily brief whose time passed
0-5 h ago; 4: a weekly review whose time passed 1-48 h ago. Idle and overload ones live in a
time zone that is outside its quiet hours at ``now`` (else the nudge would be deferred, not
due).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache

from services.nudges import localtime, planning
from services.rules import theater_status

ARMS = ("ibm", "cs")
TELEGRAM_BASE = 7_000_000_000

#: (zone, weight): where the users live.
ZONES: tuple[tuple[str, int], ...] = (
    ("UTC", 6),
    ("Europe/London", 10),
    ("Europe/Berlin", 14),
    ("Europe/Moscow", 6),
    ("America/New_York", 12),
    ("America/Chicago", 6),
    ("America/Los_Angeles", 8),
    ("America/Sao_Paulo", 6),
    ("Asia/Kolkata", 10),
    ("Asia/Shanghai", 6),
    ("Asia/Tokyo", 5),
    ("Australia/Sydney", 4),
    ("Africa/Lagos", 3),
    ("Pacific/Auckland", 2),
)
DEFAULT_QUIET = (time(22), time(8))
QUIETS: tuple[tuple[tuple[time, time] | None, int], ...] = (
    (DEFAULT_QUIET, 85),
    ((time(23), time(7)), 10),
    (None, 5),
)
IDLE_HOURS: tuple[tuple[int, int], ...] = ((72, 80), (48, 10), (96, 7), (24, 3))
THRESHOLDS: tuple[tuple[int, int], ...] = ((80, 85), (70, 8), (90, 7))
CAPACITIES: tuple[tuple[int, int], ...] = ((40, 70), (20, 10), (30, 10), (60, 10))
BRIEF_TIMES = (time(7), time(7, 30), time(8), time(8, 30), time(9), time(18), time(21))
REVIEWS = ((6, time(18)), (0, time(9)), (4, time(17)), (5, time(10)))
TITLES = (
    "Read SICP chapter 3",
    "Write the design doc",
    "Refactor the parser",
    "Review the quarterly plan",
    "Prepare the demo",
    "Practice interview questions",
    "Fix the flaky test",
    "Outline the talk",
    "Study linear algebra",
    "Draft the proposal",
)
ACTIONS = ("Worked on the current NBA", "Focused session", "Deep work", "Reading", "Practice")

KEEP = object()  # a fix-up value meaning: leave what the trigger set
NULL = "\\N"  # COPY text format's null


def _weighted(pairs: tuple[tuple[object, int], ...]) -> tuple[list[object], list[int]]:
    return [p[0] for p in pairs], list(itertools.accumulate(p[1] for p in pairs))


def ts(moment: datetime | None) -> str:
    """A timestamptz in COPY text format (``\\N`` for None)."""
    return NULL if moment is None else moment.isoformat()


def tm(value: time | None) -> str:
    return NULL if value is None else value.isoformat()


def nz(value: object) -> str:
    return NULL if value is None else str(value)


def idle_key_prefix(arm: str, last_activity: datetime) -> str:
    """The scan's ``key_prefix`` of an idle episode (see ``IDLE_CANDIDATES``)."""
    utc = last_activity.astimezone(UTC)
    return f"idle:{arm}:{utc.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}:"


@dataclass
class Chunk:
    """The COPY lines of one chunk of users, per table, and the hint fix-ups."""

    users: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    theaters: list[str] = field(default_factory=list)
    nba: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    nudges: list[str] = field(default_factory=list)
    #: (user_id, arm, idle_check_at or None)
    fix_idle: list[str] = field(default_factory=list)
    #: (user_id, overload_check_at)
    fix_overload: list[str] = field(default_factory=list)
    #: (user_id, brief_check_at, review_check_at) — a value each, or KEEP as ``\N`` + flag
    fix_schedule: list[str] = field(default_factory=list)

    def rows(self) -> int:
        return (
            len(self.users) + len(self.links) + len(self.settings) + len(self.metrics)
            + len(self.theaters) + len(self.nba) + len(self.logs) + len(self.nudges)
        )  # fmt: skip


#: Columns of each COPY, in the order the lines give them.
COLUMNS = {
    "auth.users": "id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at,"
    " updated_at",
    "telegram_links": "telegram_user_id, user_id, chat_id, active, linked_at",
    "user_settings": "user_id, timezone, quiet_start, quiet_end, brief_time, review_day,"
    " review_time, idle_after_hours, overload_threshold, weekly_capacity_hours",
    "global_metrics": "user_id, combined_progress, energy_allocation_ibm, energy_allocation_cs,"
    " overload_risk, last_sync_time, last_computed",
    "theaters": "user_id, arm_type, status, total_progress, energy_allocation, last_activity,"
    " created_at, updated_at, snoozed_until, blocked_reason",
    "nba_items": "user_id, arm_type, title, description, stale_days, gap,"
    " has_early_progress_bonus, is_manually_selected, is_locked, is_current, created_at,"
    " last_updated, completed_at",
    "execution_logs": "user_id, arm_type, action, details, duration, timestamp",
    "nudges": "user_id, kind, arm_type, dedupe_key, status, attempts, claimed_at, sent_at,"
    " risk, next_attempt_at, episode_at",
}


class Population:
    """Decides every user's state; :meth:`chunk` makes the rows of users [start, stop)."""

    def __init__(self, users: int, due_fraction: float, now: datetime, seed: int = 1) -> None:
        if not 0 <= due_fraction <= 1:
            raise ValueError("due fraction must be within [0, 1]")
        self.n = users
        self.due_n = round(users * due_fraction)
        self.now = now
        self.seed = seed
        #: what was made, by kind ("due:idle", "state:exhausted", "rows:nba_items", ...)
        self.counts: Counter[str] = Counter()
        self._zones = _weighted(ZONES)
        self._quiets = _weighted(QUIETS)
        self._idle_hours = _weighted(IDLE_HOURS)
        self._thresholds = _weighted(THRESHOLDS)
        self._capacities = _weighted(CAPACITIES)
        # Zones outside the default quiet hours at ``now``: where due idle/overload users live.
        self.awake_zones = [
            z for z, _ in ZONES if not localtime.in_quiet(now, localtime.zone(z), *DEFAULT_QUIET)
        ]
        if not self.awake_zones:
            raise ValueError(f"every zone is in quiet hours at {now}: pick another --now")

    # --- who is due ---------------------------------------------------------------------

    def due_rank(self, i: int) -> int | None:
        """The user's rank among the due users (None: not due). Exactly ``due_n`` users of
        [0, n) have one, spread evenly."""
        if self.due_n == 0:
            return None
        lo, hi = (i * self.due_n) // self.n, ((i + 1) * self.due_n) // self.n
        return lo if hi != lo else None

    @staticmethod
    def due_kind(rank: int) -> str:
        return ("idle", "idle", "overload", "brief", "review")[rank % 5]

    def expected_due(self) -> Counter[str]:
        """Due nudges by kind (computed from the ranks alone)."""
        found: Counter[str] = Counter()
        for rank in range(self.due_n):
            found[self.due_kind(rank)] += 1
        return found

    # --- schedules (few distinct inputs: cached) ----------------------------------------------

    @lru_cache(maxsize=4096)  # noqa: B019 - one Population per run
    def _next_brief(self, zone: str, at: time) -> datetime:
        return localtime.next_daily(self.now, at, localtime.zone(zone))

    @lru_cache(maxsize=4096)  # noqa: B019
    def _latest_brief(self, zone: str, at: time) -> tuple[str, datetime]:
        found = localtime.latest_daily(self.now, at, localtime.zone(zone))
        assert found is not None
        return found[0].isoformat(), found[1]

    @lru_cache(maxsize=4096)  # noqa: B019
    def _next_review(self, zone: str, day: int, at: time) -> datetime:
        return localtime.next_weekly(self.now, day, at, localtime.zone(zone))

    @lru_cache(maxsize=4096)  # noqa: B019
    def _latest_review(self, zone: str, day: int, at: time) -> tuple[str, datetime]:
        found = localtime.latest_weekly(self.now, day, at, localtime.zone(zone))
        assert found is not None
        return localtime.iso_week(found[0]), found[1]

    # --- one chunk ----------------------------------------------------------------------------

    def chunk(self, start: int, stop: int) -> Chunk:
        rng = random.Random(self.seed * 1_000_003 + start)
        out = Chunk()
        for i in range(start, stop):
            self._user(i, rng, out)
        self.counts["rows:all"] += out.rows()
        return out

    def _pick(self, rng: random.Random, table: tuple[list[object], list[int]]) -> object:
        return rng.choices(table[0], cum_weights=table[1])[0]

    def _user(self, i: int, rng: random.Random, out: Chunk) -> None:
        now = self.now
        c = self.counts
        uid = str(_uuid(rng))
        rank = self.due_rank(i)
        due = None if rank is None else self.due_kind(rank)
        if due is not None:
            c[f"due:{due}"] += 1

        # --- settings
        idle_h: int = self._pick(rng, self._idle_hours)  # type: ignore[assignment]
        threshold: int = self._pick(rng, self._thresholds)  # type: ignore[assignment]
        capacity: int = self._pick(rng, self._capacities)  # type: ignore[assignment]
        if due in ("idle", "overload"):
            zone = rng.choice(self.awake_zones)
            quiet: tuple[time, time] | None = DEFAULT_QUIET
        else:
            zone = self._pick(rng, self._zones)  # type: ignore[assignment]
            quiet = self._pick(rng, self._quiets)  # type: ignore[assignment]
        brief_time: time | None = None
        review: tuple[int, time] | None = None
        brief_hint: object = KEEP
        review_hint: object = KEEP
        tz = localtime.zone(zone)
        if due == "brief":
            local = now.astimezone(tz) - timedelta(minutes=rng.randint(1, 300))
            brief_time = time(local.hour, local.minute)
            _, instant = self._latest_brief(zone, brief_time)
            assert now - instant < planning.BRIEF_GRACE
            brief_hint = instant  # the instant the previous scan scheduled
        elif rng.random() < 0.20:
            brief_time = rng.choice(BRIEF_TIMES)
            day, instant = self._latest_brief(zone, brief_time)
            brief_hint = self._next_brief(zone, brief_time)
            out.nudges.append(
                f"{uid}\tbrief\t\\N\tbrief:{day}\tsent\t1\t{ts(instant)}"
                f"\t{ts(instant + timedelta(seconds=2))}\t\\N\t\\N\t{ts(instant)}"
            )
            c["state:brief"] += 1
        if due == "review":
            local = now.astimezone(tz) - timedelta(minutes=rng.randint(60, 48 * 60))
            review = (local.weekday(), time(local.hour, local.minute))
            _, instant = self._latest_review(zone, *review)
            assert now - instant < planning.REVIEW_GRACE
            review_hint = instant
        elif rng.random() < 0.10:
            review = rng.choice(REVIEWS)
            review_hint = self._next_review(zone, *review)
            c["state:review"] += 1
        if brief_hint is not KEEP or review_hint is not KEEP:
            out.fix_schedule.append(
                f"{uid}\t{NULL if brief_hint is KEEP else ts(brief_hint)}"  # type: ignore[arg-type]
                f"\t{'f' if brief_hint is KEEP else 't'}"
                f"\t{NULL if review_hint is KEEP else ts(review_hint)}"  # type: ignore[arg-type]
                f"\t{'f' if review_hint is KEEP else 't'}"
            )
        qs, qe = quiet if quiet is not None else (None, None)
        out.settings.append(
            f"{uid}\t{zone}\t{tm(qs)}\t{tm(qe)}\t{tm(brief_time)}"
            f"\t{nz(review[0] if review else None)}\t{tm(review[1] if review else None)}"
            f"\t{idle_h}\t{threshold}\t{capacity}"
        )

        # --- account and link
        created = now - timedelta(days=rng.randint(20, 400), seconds=rng.randint(0, 86_399))
        tg = TELEGRAM_BASE + i
        out.users.append(
            f"{uid}\tauthenticated\tauthenticated\t\\N"
            '\t{"provider": "telegram"}'
            f'\t{{"telegram_user_id": {tg}, "first_name": "U{i}"}}'
            f"\t{ts(created)}\t{ts(created)}"
        )
        out.links.append(f"{tg}\t{uid}\t{tg}\tt\t{ts(created)}")

        # --- the theaters' states
        if due is None:
            r = rng.random()
            state = (
                "exhausted" if r < 0.12
                else "episode" if r < 0.18
                else "blocked" if r < 0.21
                else "snoozed" if r < 0.23
                else "active"
            )  # fmt: skip
        else:
            state = "due_idle" if due == "idle" else "active"
        c[f"state:{state}"] += 1
        odd_arm = rng.choice(ARMS)
        energy_ibm = rng.choice((30, 40, 50, 50, 50, 60, 70))
        progress = {arm: round(rng.uniform(0, 90), 2) for arm in ARMS}
        minutes_7d = 0
        for arm in ARMS:
            h = idle_h
            hint: object = KEEP
            snoozed: datetime | None = None
            blocked_reason: str | None = None
            blocked = False
            if arm == odd_arm and state == "exhausted":
                la = now - timedelta(hours=h + 48 + rng.uniform(2, 24 * 25))
                for n in (1, 2, 3):
                    sent = la + timedelta(hours=h + 24 * (n - 1), seconds=rng.randint(5, 600))
                    out.nudges.append(
                        f"{uid}\tidle\t{arm}\t{idle_key_prefix(arm, la)}{n}\tsent\t1"
                        f"\t{ts(sent)}\t{ts(sent + timedelta(seconds=1))}\t\\N\t\\N\t{ts(la)}"
                    )
                hint = None
            elif arm == odd_arm and state == "episode":
                sent_n = rng.randint(1, 2)
                la = now - timedelta(hours=h + 24 * (sent_n - 1) + rng.uniform(1, 23))
                last = la
                for n in range(1, sent_n + 1):
                    last = la + timedelta(hours=h + 24 * (n - 1), seconds=rng.randint(5, 300))
                    out.nudges.append(
                        f"{uid}\tidle\t{arm}\t{idle_key_prefix(arm, la)}{n}\tsent\t1"
                        f"\t{ts(last)}\t{ts(last + timedelta(seconds=1))}\t\\N\t\\N\t{ts(la)}"
                    )
                hint = last + planning.IDLE_REPEAT
                assert hint > now
            elif arm == odd_arm and state == "blocked":
                la = now - timedelta(hours=h + rng.uniform(24, 24 * 40))
                blocked, blocked_reason = True, "waiting on someone else"
            elif arm == odd_arm and state == "snoozed":
                la = now - timedelta(hours=h + rng.uniform(1, 24 * 5))
                snoozed = now + timedelta(hours=rng.uniform(1, 23))
                hint = snoozed  # what the scan set: due_from = the snooze's end
            elif arm == odd_arm and state == "due_idle":
                la = now - timedelta(hours=h + rng.uniform(0.1, 47))  # trigger: la + h <= now
            else:
                la = now - timedelta(hours=rng.uniform(0.1, h - 0.5))  # active or warm
            la = la.replace(microsecond=0)
            if hint is not KEEP:
                out.fix_idle.append(f"{uid}\t{arm}\t{ts(hint)}")  # type: ignore[arg-type]
            status = theater_status(la, now, h, blocked=blocked)
            energy = energy_ibm if arm == "ibm" else 100 - energy_ibm
            out.theaters.append(
                f"{uid}\t{arm}\t{status}\t{progress[arm]}\t{energy}\t{ts(la)}"
                f"\t{ts(created)}\t{ts(la)}\t{ts(snoozed)}\t{nz(blocked_reason)}"
            )
            # five NBA items: two done, three open (one of them current)
            titles = rng.sample(TITLES, 5)
            for k, title in enumerate(titles):
                made = created + timedelta(days=rng.uniform(0, 10))
                done = la - timedelta(days=rng.uniform(0, 10)) if k < 2 else None
                if done is not None and done < made:
                    done = made + timedelta(hours=1)
                updated = done or la
                stale = max(0.0, round((now - updated).total_seconds() / 86_400, 1))
                stale = min(stale, 9999.9)
                out.nba.append(
                    f"{uid}\t{arm}\t{title}\t{'Notes for ' + title if k == 2 else NULL}"
                    f"\t{stale}\t{rng.randint(0, 5)}\t{'t' if k == 3 else 'f'}\tf\tf"
                    f"\t{'t' if k == 2 else 'f'}\t{ts(made)}\t{ts(updated)}\t{ts(done)}"
                )
            # a few logs over the last two weeks, the latest at the last activity
            if now - la < timedelta(days=14):
                for k in range(rng.randint(1, 4)):
                    at = la if k == 0 else la - timedelta(hours=rng.uniform(1, 24 * 13))
                    minutes = rng.choice((15, 25, 25, 30, 45, 50, 60, 90))
                    if now - at <= timedelta(days=7):
                        minutes_7d += minutes
                    out.logs.append(
                        f"{uid}\t{arm}\t{rng.choice(ACTIONS)}\t\\N\t{minutes}\t{ts(at)}"
                    )
                    c["rows:execution_logs"] += 1
            c["rows:theaters"] += 1
            c["rows:nba_items"] += 5

        # --- metrics and overload
        if due == "overload":
            risk = round(rng.uniform(threshold, 100), 2)  # trigger: hint epoch
        elif rng.random() < 0.03:
            risk = round(rng.uniform(threshold, 100), 2)
            sent = now - timedelta(hours=rng.uniform(1, 23))
            out.nudges.append(
                f"{uid}\toverload\t\\N\toverload:after:none\tsent\t1\t{ts(sent)}"
                f"\t{ts(sent + timedelta(seconds=1))}\t{risk}\t\\N\t\\N"
            )
            out.fix_overload.append(f"{uid}\t{ts(sent + planning.OVERLOAD_REPEAT)}")
            c["state:overload_nudged"] += 1
        else:
            risk = min(round(100 * minutes_7d / (capacity * 60), 2), threshold - 1)
        combined = round((progress["ibm"] + progress["cs"]) / 2, 2)
        out.metrics.append(
            f"{uid}\t{combined}\t{energy_ibm}\t{100 - energy_ibm}\t{risk}\t{ts(now)}\t{ts(now)}"
        )


def _uuid(rng: random.Random) -> object:
    """A version-4 UUID from ``rng`` (reproducible for a seed)."""
    from uuid import UUID

    return UUID(int=rng.getrandbits(128), version=4)


def batched_text(lines: list[str], size: int = 1 << 20) -> Iterator[str]:
    """The lines as COPY text in pieces of about ``size`` characters."""
    piece: list[str] = []
    length = 0
    for line in lines:
        piece.append(line)
        length += len(line) + 1
        if length >= size:
            yield "\n".join(piece) + "\n"
            piece, length = [], 0
    if piece:
        yield "\n".join(piece) + "\n"
