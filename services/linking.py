"""Supabase-mode linking: an emailed one-time code proves the Telegram user owns an account.

The bot asks Supabase Auth (GoTrue) to email a code to the address of an *existing* Aelpher
user (``should_create_user`` off), then checks the code the user types back. A right code
yields the ``auth.users`` id and nothing else: the session GoTrue returns is revoked at once and
never stored.

Client choice: each flow uses a fresh bare :class:`supabase_auth.AsyncGoTrueClient` at
``<project>/auth/v1`` (headers ``apiKey`` and ``Authorization: Bearer <anon key>``) rather than
``supabase.acreate_client``. The full client also builds PostgREST, storage, functions and
realtime clients we never use, and its ``_listen_to_auth_events`` switches the whole client's
``Authorization`` header to whoever verified last; the bare client has neither, and lets us hand
it our own ``httpx.AsyncClient`` with a timeout that we close when the flow ends.
``persist_session=False`` and ``auto_refresh_token=False`` keep the session in memory only and
start no refresh timer.

Privacy: the email is never logged at INFO or above, the code never at all.

The tries limiter is a pure function over a JSON-safe list of epoch seconds, which the bot keeps
in the Telegram user's persisted ``user_data``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from uuid import UUID

import httpx
from pydantic import ValidationError
from supabase_auth import AsyncGoTrueClient
from supabase_auth.errors import AuthApiError, AuthError
from supabase_auth.types import SignInWithEmailAndPasswordlessCredentials, VerifyEmailOtpParams

from services import validation
from services.errors import DomainError

__all__ = [
    "MAX_TRIES",
    "WINDOW_SECONDS",
    "AuthUnavailable",
    "CodeRejected",
    "InvalidCode",
    "InvalidEmail",
    "RateLimited",
    "TooManyTries",
    "UnknownEmail",
    "check_tries",
    "clean_code",
    "clean_email",
    "recent_tries",
    "send_code",
    "tries_left",
    "verify_code",
]

logger = logging.getLogger(__name__)

#: verification tries allowed per Telegram user within WINDOW_SECONDS (SPEC §4 Linking)
MAX_TRIES = 5
WINDOW_SECONDS = 600.0
#: seconds one request to Supabase Auth may take before the bot gives up
HTTP_TIMEOUT = 10.0

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\".]+$")
_EMAIL_MAX = 254
# GoTrue's email codes are 6 digits by default; projects may configure up to 10.
_CODE = re.compile(r"^\d{6,10}$")

_UNKNOWN_EMAIL_CODES = frozenset({"otp_disabled", "user_not_found", "signup_disabled"})
_BAD_EMAIL_CODES = frozenset({"validation_failed", "email_address_invalid"})
_RATE_LIMIT_CODES = frozenset(
    {"over_email_send_rate_limit", "over_request_rate_limit", "over_sms_send_rate_limit"}
)
_REJECTED_CODE_CODES = frozenset({"otp_expired", "user_not_found", "validation_failed"})


class InvalidEmail(DomainError):
    """Text that is not shaped like an email address."""

    def __init__(self) -> None:
        super().__init__("That doesn't look like an email address: send it like you@example.com.")


class UnknownEmail(DomainError):
    """Supabase Auth knows no user with that email (and the bot never creates one)."""

    def __init__(self) -> None:
        super().__init__("No Aelpher account uses that email.")


class InvalidCode(DomainError):
    """Text that is not shaped like a one-time code (not counted as a try)."""

    def __init__(self) -> None:
        super().__init__(
            "That doesn't look like the code: send the 6-digit number from the email, or /cancel."
        )


class CodeRejected(DomainError):
    """Supabase Auth refused the code: wrong, already used, or expired."""

    def __init__(self) -> None:
        super().__init__("That code is wrong or has expired.")


class TooManyTries(DomainError):
    """The Telegram user spent their verification tries in the window."""

    def __init__(self) -> None:
        super().__init__("Too many wrong codes. Start again with /link in 10 minutes.")


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


def recent_tries(attempts: Iterable[float], now: float) -> list[float]:
    """The tries still inside the window ending at ``now`` (older ones are forgotten)."""
    return [t for t in attempts if now - WINDOW_SECONDS < t <= now]


def tries_left(attempts: list[float], now: float) -> int:
    """How many more codes may be checked now: MAX_TRIES minus the tries in the window."""
    return max(0, MAX_TRIES - len(recent_tries(attempts, now)))


def check_tries(attempts: list[float], now: float) -> None:
    """Raise :class:`TooManyTries` when no try is left."""
    if tries_left(attempts, now) == 0:
        raise TooManyTries()


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


def _send_error(exc: AuthError) -> DomainError:
    """Map a failed ``sign_in_with_otp`` to what the user needs to hear."""
    if isinstance(exc, AuthApiError):
        if _is_rate_limit(exc):
            logger.info("supabase auth refused a code: rate limited (code=%s)", exc.code)
            return RateLimited()
        if exc.code in _UNKNOWN_EMAIL_CODES or (
            exc.status in (400, 422) and "signups not allowed" in exc.message.lower()
        ):
            return UnknownEmail()
        if exc.code in _BAD_EMAIL_CODES:
            return InvalidEmail()
        if exc.code == "email_address_not_authorized":
            logger.error("supabase auth may not email this address: configure custom SMTP")
            return AuthUnavailable(
                "I couldn't send the code: the mail server refuses that address."
                " Ask the bot's owner to set up email delivery."
            )
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
    """Ask Supabase Auth to email a one-time code to an existing user (never creates one)."""
    address = clean_email(email)
    credentials: SignInWithEmailAndPasswordlessCredentials = {
        "email": address,
        "options": {"should_create_user": False},
    }
    async with _auth_client(supabase_url, anon_key) as client:
        try:
            await client.sign_in_with_otp(credentials)
        except AuthError as exc:
            raise _send_error(exc) from None
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
