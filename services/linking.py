"""Supabase-mode linking: an emailed one-time code proves the Telegram user owns an account.

The bot asks Supabase Auth (GoTrue) to email a code to the address of an *existing* Aelpher
user (``should_create_user`` off), then checks the code the user types back. A right code
yields the ``auth.users`` id and nothing else: the session GoTrue returns is revoked at once and
never stored.

Nothing the bot answers tells whether an address has an account: an unknown address, and
GoTrue's refusals that only a known address can get (its per-address email rate limit, a mail
server refusing the address), get the same reply as a code sent; a code typed for an unknown
address is simply wrong.

Limits (:func:`request_code`, :func:`check_code`), kept in PostgreSQL (``link_attempts``), so
they hold across restarts and instances:

* code requests: :data:`MAX_REQUESTS` per :data:`REQUESTS_WINDOW`, per Telegram user and per
  email address (whether or not the address has an account);
* wrong codes: :data:`MAX_TRIES` per :data:`TRIES_WINDOW`, per email address across all
  Telegram users (so many Telegram accounts cannot share out the guessing of one address's
  code), and per Telegram user.

Client choice: each flow uses a fresh bare :class:`supabase_auth.AsyncGoTrueClient` at
``<project>/auth/v1`` (headers ``apiKey`` and ``Authorization: Bearer <anon key>``) rather than
``supabase.acreate_client``. The full client also builds PostgREST, storage, functions and
realtime clients we never use, and its ``_listen_to_auth_events`` switches the whole client's
``Authorization`` header to whoever verified last; the bare client has neither, and lets us hand
it our own ``httpx.AsyncClient`` with a timeout that we close when the flow ends.
``persist_session=False`` and ``auto_refresh_token=False`` keep the session in memory only and
start no refresh timer.

Privacy: the email is never logged at INFO or above, the code never at all, and the counters
store a SHA-256 of the address, not the address.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import httpx
from pydantic import ValidationError
from supabase_auth import AsyncGoTrueClient
from supabase_auth.errors import AuthApiError, AuthError
from supabase_auth.types import SignInWithEmailAndPasswordlessCredentials, VerifyEmailOtpParams

from services import validation
from services.db import Database
from services.errors import DomainError
from services.repos import link_attempts

__all__ = [
    "MAX_REQUESTS",
    "MAX_TRIES",
    "REQUESTS_WINDOW",
    "TRIES_WINDOW",
    "AuthUnavailable",
    "CodeRejected",
    "InvalidCode",
    "InvalidEmail",
    "RateLimited",
    "TooManyCodeRequests",
    "TooManyTries",
    "check_code",
    "check_tries",
    "clean_code",
    "clean_email",
    "request_code",
    "send_code",
    "verify_code",
]

logger = logging.getLogger(__name__)

#: wrong codes allowed per email address (and per Telegram user) within TRIES_WINDOW
MAX_TRIES = 5
TRIES_WINDOW = timedelta(minutes=10)
#: codes that may be requested per Telegram user and per email address within REQUESTS_WINDOW
MAX_REQUESTS = 3
REQUESTS_WINDOW = timedelta(hours=1)
#: seconds one request to Supabase Auth may take before the bot gives up
HTTP_TIMEOUT = 10.0

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\".]+$")
_EMAIL_MAX = 254
# GoTrue's email codes are 6 digits by default; projects may configure up to 10.
_CODE = re.compile(r"^\d{6,10}$")

_UNKNOWN_EMAIL_CODES = frozenset({"otp_disabled", "user_not_found", "signup_disabled"})
# GoTrue limits emails per address and per project; only a known address reaches these.
_EMAIL_SEND_LIMIT_CODES = frozenset({"over_email_send_rate_limit"})
_BAD_EMAIL_CODES = frozenset({"validation_failed", "email_address_invalid"})
_RATE_LIMIT_CODES = frozenset(
    {"over_email_send_rate_limit", "over_request_rate_limit", "over_sms_send_rate_limit"}
)
_REJECTED_CODE_CODES = frozenset({"otp_expired", "user_not_found", "validation_failed"})


class InvalidEmail(DomainError):
    """Text that is not shaped like an email address."""

    def __init__(self) -> None:
        super().__init__("That doesn't look like an email address: send it like you@example.com.")


class InvalidCode(DomainError):
    """Text that is not shaped like a one-time code (not counted as a try)."""

    def __init__(self) -> None:
        super().__init__(
            "That doesn't look like the code: send the 6-digit number from the email, or /cancel."
        )


class CodeRejected(DomainError):
    """Supabase Auth refused the code: wrong, already used, or expired (or no such account).

    ``left``: tries left for this address and Telegram user; ``wait_minutes``: when none is
    left, how long until the next one."""

    def __init__(self, left: int = 0, wait_minutes: int = 0) -> None:
        super().__init__("That code is wrong or has expired.")
        self.left = left
        self.wait_minutes = wait_minutes


def _minutes(n: int) -> str:
    return f"{n} minute{'' if n == 1 else 's'}"


class TooManyTries(DomainError):
    """The email address or the Telegram user spent the wrong-code tries of the window."""

    def __init__(self, wait_minutes: int = 10) -> None:
        super().__init__(
            f"Too many wrong codes. Start again with /link in {_minutes(wait_minutes)}."
        )
        self.wait_minutes = wait_minutes


class TooManyCodeRequests(DomainError):
    """The Telegram user or the email address asked for MAX_REQUESTS codes this hour."""

    def __init__(self, wait_minutes: int) -> None:
        super().__init__(
            f"That's too many codes: at most {MAX_REQUESTS} an hour for each chat and each"
            f" email address. You can ask for a new one in {_minutes(wait_minutes)}."
        )
        self.wait_minutes = wait_minutes


class RateLimited(DomainError):
    """Supabase Auth's own rate limits (per address, per project, per IP)."""

    def __init__(
        self, message: str = "Too many codes requested; wait a minute and try again."
    ) -> None:
        super().__init__(message)


class AuthUnavailable(DomainError):
    """Supabase Auth could not be reached or answered something unexpected."""

    def __init__(
        self,
        message: str = (
            "I can't reach the sign-in service right now, so nothing was changed."
            " Please try again in a minute."
        ),
    ) -> None:
        super().__init__(message)


# --- pure rules -----------------------------------------------------------------------------


def clean_email(text: str) -> str:
    """The address as Supabase Auth stores it (trimmed, lower case), or :class:`InvalidEmail`."""
    text = validation.check_text(text, "email")
    email = text.strip().removeprefix("mailto:").strip("<>").strip().lower()
    if len(email) > _EMAIL_MAX or not _EMAIL.match(email):
        raise InvalidEmail()
    return email


def clean_code(text: str) -> str:
    """The digits of a typed code ("123 456" and "123-456" are fine), or :class:`InvalidCode`."""
    code = re.sub(r"[\s-]", "", validation.check_text(text, "code"))
    if not _CODE.match(code):
        raise InvalidCode()
    return code


def subjects(telegram_user_id: int, email: str | None = None) -> list[str]:
    """The counters' keys: the Telegram user, and the address (hashed) when known."""
    keys = [f"tg:{telegram_user_id}"]
    if email is not None:
        keys.append("email:" + hashlib.sha256(email.encode()).hexdigest())
    return keys


def wait_minutes(until: datetime, now: datetime) -> int:
    """Whole minutes from ``now`` until ``until``, rounded up (at least 1)."""
    return max(1, math.ceil((until - now).total_seconds() / 60))


# --- the limits (PostgreSQL, privileged) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Taken:
    """Attempts recorded: their rows, how many are left (for the fullest subject), and when
    one frees up if none is."""

    ids: tuple[int, ...]
    left: int
    free_at: datetime | None


async def _take(
    db: Database,
    kind: link_attempts.Kind,
    keys: Sequence[str],
    limit: int,
    window: timedelta,
    now: datetime,
) -> _Taken | datetime:
    """Record one attempt for every key, or, if a key has used its limit, record nothing and
    return when it may try again."""
    async with db.privileged() as uow:
        await link_attempts.lock(uow)
        await link_attempts.purge(uow, now)
        live = await link_attempts.counts(uow, kind, keys, now)
        full = [c.first_expiry or now for c in live.values() if c.n >= limit]
        if full:
            await uow.commit()  # the purge
            return max(full)
        ids = await link_attempts.add(uow, kind, keys, now, now + window)
        await uow.commit()
    after = {k: (live[k].n + 1, live[k].first_expiry) if k in live else (1, None) for k in keys}
    left = limit - max(n for n, _ in after.values())
    free = [first or now + window for n, first in after.values() if n >= limit]
    return _Taken(tuple(ids), left, max(free) if free else None)


async def _give_back(db: Database, taken: _Taken) -> None:
    async with db.privileged() as uow:
        await link_attempts.remove(uow, taken.ids)
        await uow.commit()


async def check_tries(
    db: Database, telegram_user_id: int, email: str | None, now: datetime
) -> None:
    """Raise :class:`TooManyTries` when the Telegram user (or the address) has no try left."""
    keys = subjects(telegram_user_id, email)
    async with db.privileged(read_only=True) as uow:
        live = await link_attempts.counts(uow, "wrong_code", keys, now)
    full = [c.first_expiry or now for c in live.values() if c.n >= MAX_TRIES]
    if full:
        raise TooManyTries(wait_minutes(max(full), now))


async def request_code(
    db: Database,
    supabase_url: str,
    anon_key: str,
    telegram_user_id: int,
    text: str,
    now: datetime,
) -> str:
    """Email a code to the typed address, within the limits; return the address.

    Returns alike whether or not the address has an account (see the module docstring).
    Raises :class:`InvalidEmail`, :class:`TooManyTries` (guessing is blocked for this address
    or user, so no code is sent), :class:`TooManyCodeRequests`, :class:`RateLimited` or
    :class:`AuthUnavailable`; the last two do not count as a request.
    """
    email = clean_email(text)
    keys = subjects(telegram_user_id, email)
    await check_tries(db, telegram_user_id, email, now)
    taken = await _take(db, "code_request", keys, MAX_REQUESTS, REQUESTS_WINDOW, now)
    if isinstance(taken, datetime):
        raise TooManyCodeRequests(wait_minutes(taken, now))
    try:
        await send_code(supabase_url, anon_key, email)
    except (RateLimited, AuthUnavailable):
        await _give_back(db, taken)
        raise
    return email


async def check_code(
    db: Database,
    supabase_url: str,
    anon_key: str,
    telegram_user_id: int,
    email: str,
    text: str,
    now: datetime,
) -> UUID:
    """Check a typed code for ``email``; return the ``auth.users`` id it proves.

    Every code Supabase Auth checks takes a try from the address's and the Telegram user's
    budgets before it is sent there; a right code gives it back. Raises :class:`InvalidCode`
    (not a try), :class:`TooManyTries`, :class:`CodeRejected` (with the tries left),
    :class:`RateLimited` or :class:`AuthUnavailable` (neither a try).
    """
    token = clean_code(text)
    keys = subjects(telegram_user_id, email)
    taken = await _take(db, "wrong_code", keys, MAX_TRIES, TRIES_WINDOW, now)
    if isinstance(taken, datetime):
        raise TooManyTries(wait_minutes(taken, now))
    try:
        user_id = await verify_code(supabase_url, anon_key, email, token)
    except CodeRejected:
        wait = wait_minutes(taken.free_at, now) if taken.free_at else 0
        raise CodeRejected(taken.left, wait) from None
    except Exception:
        await _give_back(db, taken)
        raise
    await _give_back(db, taken)
    return user_id


# --- Supabase Auth --------------------------------------------------------------------------


@asynccontextmanager
async def _auth_client(supabase_url: str, anon_key: str) -> AsyncIterator[AsyncGoTrueClient]:
    """A fresh GoTrue client for one flow, closed (with its HTTP client) afterwards."""
    http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=True)
    client = AsyncGoTrueClient(
        url=f"{supabase_url.rstrip('/')}/auth/v1",
        headers={"apiKey": anon_key, "Authorization": f"Bearer {anon_key}"},
        auto_refresh_token=False,
        persist_session=False,
        http_client=http,
    )
    try:
        yield client
    finally:
        await http.aclose()


def _describe(exc: BaseException) -> str:
    """Status and error code only: GoTrue's messages may quote the email."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__} status={status} code={code}"


def _unavailable(exc: BaseException, what: str) -> AuthUnavailable:
    logger.warning("supabase auth %s failed: %s", what, _describe(exc))
    return AuthUnavailable()


def _is_rate_limit(exc: AuthApiError) -> bool:
    return exc.status == 429 or exc.code in _RATE_LIMIT_CODES


def _send_error(exc: AuthError) -> DomainError | None:
    """Map a failed ``sign_in_with_otp`` to what the user needs to hear.

    None: answer as if the code was sent, because the only other answer would tell that the
    address has an account (or has none)."""
    if isinstance(exc, AuthApiError):
        if exc.code in _EMAIL_SEND_LIMIT_CODES:
            logger.warning("supabase auth sent no code: email rate limit (code=%s)", exc.code)
            return None
        if _is_rate_limit(exc):
            logger.info("supabase auth refused a code: rate limited (code=%s)", exc.code)
            return RateLimited()
        if exc.code in _UNKNOWN_EMAIL_CODES or (
            exc.status in (400, 422) and "signups not allowed" in exc.message.lower()
        ):
            logger.info("supabase auth sent no code: no such account")
            return None
        if exc.code in _BAD_EMAIL_CODES:
            return InvalidEmail()
        if exc.code == "email_address_not_authorized":
            logger.error("supabase auth may not email this address: configure custom SMTP")
            return None
    return _unavailable(exc, "otp")


def _verify_error(exc: AuthError) -> DomainError:
    """Map a failed ``verify_otp`` to what the user needs to hear."""
    if isinstance(exc, AuthApiError):
        if _is_rate_limit(exc):
            return RateLimited("Too many tries right now; wait a minute and try again.")
        if exc.code in _REJECTED_CODE_CODES or exc.status in (400, 401, 403, 404, 422):
            return CodeRejected()
    return _unavailable(exc, "verify")


async def send_code(supabase_url: str, anon_key: str, email: str) -> None:
    """Ask Supabase Auth to email a one-time code to an existing user (never creates one).

    Returns normally also when no code went out because the address has no account or only a
    known address's limits stopped it (see :func:`_send_error`)."""
    address = clean_email(email)
    credentials: SignInWithEmailAndPasswordlessCredentials = {
        "email": address,
        "options": {"should_create_user": False},
    }
    async with _auth_client(supabase_url, anon_key) as client:
        try:
            await client.sign_in_with_otp(credentials)
        except AuthError as exc:
            error = _send_error(exc)
            if error is not None:
                raise error from None
            return
        except (httpx.HTTPError, ValidationError, ValueError) as exc:
            raise _unavailable(exc, "otp") from None
    logger.info("link code sent")
    logger.debug("link code sent to a %s address", address.rpartition("@")[2])


async def verify_code(supabase_url: str, anon_key: str, email: str, code: str) -> UUID:
    """Check the code; return the ``auth.users`` id it proves. No token outlives this call."""
    address = clean_email(email)
    token = clean_code(code)
    params: VerifyEmailOtpParams = {"email": address, "token": token, "type": "email"}
    async with _auth_client(supabase_url, anon_key) as client:
        try:
            response = await client.verify_otp(params)
        except AuthError as exc:
            raise _verify_error(exc) from None
        except (httpx.HTTPError, ValidationError, ValueError) as exc:
            raise _unavailable(exc, "verify") from None
        if response.user is None:
            logger.warning("supabase auth verify returned no user")
            raise AuthUnavailable()
        try:
            user_id = UUID(response.user.id)
        except ValueError:
            logger.warning("supabase auth verify returned a user id that is not a UUID")
            raise AuthUnavailable() from None
        if response.session is not None:
            await _revoke(client)
    logger.info("link code accepted")
    return user_id


async def _revoke(client: AsyncGoTrueClient) -> None:
    """Best effort: end the session GoTrue just opened (only this one) and forget it."""
    try:
        await client.sign_out({"scope": "local"})
    except Exception as exc:  # the link stands; the session expires on its own
        logger.warning("could not revoke the verification session: %s", _describe(exc))
