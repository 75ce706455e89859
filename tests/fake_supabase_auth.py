"""A small fake of Supabase Auth (GoTrue) for the email one-time-code flow.

It serves ``POST /auth/v1/otp``, ``POST /auth/v1/verify`` and ``POST /auth/v1/logout`` on
127.0.0.1 (a free port, a background thread) and answers the way GoTrue does, including its
error bodies: with the request header ``X-Supabase-Api-Version: 2024-01-01`` (supabase-py sends
it) an error is ``{"code": "<error code>", "message": ...}`` and the header is echoed back, which
is what makes supabase_auth raise ``AuthApiError`` with ``.code``; without it, the legacy
``{"code": <status>, "error_code": ..., "msg": ...}``. A request without an ``apikey`` header is
refused as the API gateway does.

Sources for the shapes: supabase/auth ``internal/api/errors.go`` (HandleResponseError,
HTTPErrorResponse20240101), ``internal/api/otp.go`` (422 ``otp_disabled`` "Signups not allowed
for otp" when ``create_user`` is false and the address is unknown), ``verify.go`` (403
``otp_expired`` "Token has expired or is invalid"), and the 429 rate-limit codes.

Usage::

    with FakeSupabaseAuth({"ann@example.com": user_id}) as fake:
        ... fake.url ...  # as SUPABASE_URL
        fake.last_code("ann@example.com")
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION = "2024-01-01"
OTP_TTL_SECONDS = 3600
SESSION_SECONDS = 3600


@dataclass
class Recorded:
    """One request the fake received (the body is parsed JSON, or None)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class _Code:
    code: str
    sent_at: float


@dataclass
class _State:
    users: dict[str, uuid.UUID]
    codes: dict[str, _Code] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # access token -> email
    revoked: list[str] = field(default_factory=list)  # emails whose session was revoked
    requests: list[Recorded] = field(default_factory=list)
    rate_limited: bool = False  # the email rate limits (only a known address reaches them)
    request_rate_limited: bool = False  # the per-IP request limit (every request)
    unavailable: bool = False
    min_interval: float = 0.0  # GoTrue's per-address interval (60 s on Supabase)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _now_iso(moment: float | None = None) -> str:
    return datetime.fromtimestamp(moment or time.time(), UTC).isoformat().replace("+00:00", "Z")


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(user_id: uuid.UUID, email: str, expires_at: int) -> str:
    """A JWT-shaped access token (unsigned: nothing here checks signatures)."""
    header = _b64({"alg": "HS256", "typ": "JWT"})
    payload = _b64(
        {
            "sub": str(user_id),
            "email": email,
            "aud": "authenticated",
            "role": "authenticated",
            "exp": expires_at,
            "iat": expires_at - SESSION_SECONDS,
            "session_id": str(uuid.uuid4()),
        }
    )
    return f"{header}.{payload}.{secrets.token_urlsafe(32)}"


def _user_json(user_id: uuid.UUID, email: str, now: float) -> dict[str, Any]:
    stamp = _now_iso(now)
    identity_id = str(uuid.uuid4())
    return {
        "id": str(user_id),
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "email_confirmed_at": stamp,
        "phone": "",
        "confirmation_sent_at": stamp,
        "confirmed_at": stamp,
        "recovery_sent_at": stamp,
        "last_sign_in_at": stamp,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"email": email, "email_verified": True, "sub": str(user_id)},
        "identities": [
            {
                "identity_id": identity_id,
                "id": str(user_id),
                "user_id": str(user_id),
                "identity_data": {"email": email, "email_verified": True, "sub": str(user_id)},
                "provider": "email",
                "last_sign_in_at": stamp,
                "created_at": stamp,
                "updated_at": stamp,
                "email": email,
            }
        ],
        "created_at": stamp,
        "updated_at": stamp,
        "is_anonymous": False,
    }


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_POST(self) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with state.lock:
            state.requests.append(
                Recorded(
                    "POST",
                    split.path,
                    parse_qs(split.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
            )
        if not self.headers.get("apikey"):
            # Kong's answer (no GoTrue error code).
            self._send(
                401,
                {
                    "message": "No API key found in request",
                    "hint": "No `apikey` request header or url param was found.",
                },
            )
            return
        if state.unavailable:
            self._send(503, {"message": "upstream connect error or disconnect/reset"})
            return
        routes = {
            "/auth/v1/otp": self._otp,
            "/auth/v1/verify": self._verify,
            "/auth/v1/logout": self._logout,
        }
        route = routes.get(split.path)
        try:
            if route is None:
                raise _ApiError(404, "not_found", "Not Found")
            status, payload = route(body if isinstance(body, dict) else {}, split.query)
        except _ApiError as exc:
            self._error(exc)
            return
        self._send(status, payload)

    # --- endpoints ---------------------------------------------------------------------------

    def _otp(self, body: dict[str, Any], query: str) -> tuple[int, Any]:
        state = self.server.state
        email = str(body.get("email") or "").strip().lower()
        if not email:
            raise _ApiError(400, "validation_failed", "One of email or phone must be set")
        if "@" not in email or "." not in email.rpartition("@")[2]:
            raise _ApiError(
                400, "validation_failed", "Unable to validate email address: invalid format"
            )
        if state.request_rate_limited:
            raise _ApiError(429, "over_request_rate_limit", "Request rate limit reached")
        with state.lock:
            known = email in state.users
            if not known and not body.get("create_user", True):
                raise _ApiError(422, "otp_disabled", "Signups not allowed for otp")
            if state.rate_limited:
                raise _ApiError(429, "over_email_send_rate_limit", "email rate limit exceeded")
            if not known:
                raise _ApiError(500, "unexpected_failure", "the fake never creates users")
            previous = state.codes.get(email)
            now = time.time()
            if previous and now - previous.sent_at < state.min_interval:
                wait = int(state.min_interval - (now - previous.sent_at)) + 1
                raise _ApiError(
                    429,
                    "over_email_send_rate_limit",
                    f"For security purposes, you can only request this after {wait} seconds.",
                )
            state.codes[email] = _Code(f"{secrets.randbelow(10**6):06d}", now)
        return 200, {}

    def _verify(self, body: dict[str, Any], query: str) -> tuple[int, Any]:
        state = self.server.state
        if not body.get("token"):
            raise _ApiError(400, "validation_failed", "Verify requires a token or a token hash")
        if body.get("type") not in ("email", "magiclink", "signup"):
            raise _ApiError(400, "validation_failed", "Verify requires a verification type")
        if state.rate_limited or state.request_rate_limited:
            raise _ApiError(429, "over_request_rate_limit", "Request rate limit reached")
        email = str(body.get("email") or "").strip().lower()
        token = str(body["token"]).replace("-", "")
        now = time.time()
        with state.lock:
            sent = state.codes.get(email)
            user_id = state.users.get(email)
            if (
                user_id is None
                or sent is None
                or not secrets.compare_digest(sent.code, token)
                or now - sent.sent_at > OTP_TTL_SECONDS
            ):
                raise _ApiError(403, "otp_expired", "Token has expired or is invalid")
            del state.codes[email]  # one use
            expires_at = int(now) + SESSION_SECONDS
            access = _jwt(user_id, email, expires_at)
            state.sessions[access] = email
        return 200, {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": SESSION_SECONDS,
            "expires_at": expires_at,
            "refresh_token": secrets.token_urlsafe(9),
            "user": _user_json(user_id, email, now),
        }

    def _logout(self, body: dict[str, Any], query: str) -> tuple[int, Any]:
        state = self.server.state
        auth = self.headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ").strip()
        with state.lock:
            email = state.sessions.pop(token, None)
            if email is None:
                raise _ApiError(401, "bad_jwt", "invalid JWT: unable to parse or verify signature")
            state.revoked.append(email)
        return 204, None

    # --- responses ---------------------------------------------------------------------------

    def _error(self, exc: _ApiError) -> None:
        if self.headers.get(API_VERSION_HEADER) == API_VERSION:
            self._send(exc.status, {"code": exc.code, "message": exc.message}, versioned=True)
        else:
            self._send(
                exc.status, {"code": exc.status, "error_code": exc.code, "msg": exc.message}
            )

    def _send(self, status: int, payload: Any, *, versioned: bool = False) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if versioned or self.headers.get(API_VERSION_HEADER) == API_VERSION:
            self.send_header(API_VERSION_HEADER, API_VERSION)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class FakeSupabaseAuth:
    """The fake server; start with ``with`` (or :meth:`start`/:meth:`stop`)."""

    def __init__(self, users: dict[str, uuid.UUID] | None = None) -> None:
        self._state = _State(users={k.lower(): v for k, v in (users or {}).items()})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._server = _Server(self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-supabase-auth", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The project URL (what SUPABASE_URL holds); the API lives under /auth/v1."""
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- test controls --------------------------------------------------------------------------

    def add_user(self, email: str, user_id: uuid.UUID) -> None:
        with self._state.lock:
            self._state.users[email.lower()] = user_id

    def last_code(self, email: str) -> str:
        """The code the fake "emailed" to ``email`` most recently (KeyError if none)."""
        with self._state.lock:
            return self._state.codes[email.lower()].code

    def expire_code(self, email: str) -> None:
        """Make the pending code for ``email`` older than its one-hour lifetime."""
        with self._state.lock:
            self._state.codes[email.lower()].sent_at -= OTP_TTL_SECONDS + 1

    @property
    def rate_limited(self) -> bool:
        return self._state.rate_limited

    @rate_limited.setter
    def rate_limited(self, value: bool) -> None:
        self._state.rate_limited = value

    @property
    def request_rate_limited(self) -> bool:
        return self._state.request_rate_limited

    @request_rate_limited.setter
    def request_rate_limited(self, value: bool) -> None:
        self._state.request_rate_limited = value

    @property
    def unavailable(self) -> bool:
        return self._state.unavailable

    @unavailable.setter
    def unavailable(self, value: bool) -> None:
        self._state.unavailable = value

    @property
    def min_interval(self) -> float:
        return self._state.min_interval

    @min_interval.setter
    def min_interval(self, seconds: float) -> None:
        self._state.min_interval = seconds

    def requests(self, path: str | None = None) -> list[Recorded]:
        """Requests received, optionally only those to ``path`` (e.g. "/auth/v1/verify")."""
        with self._state.lock:
            return [r for r in self._state.requests if path is None or r.path == path]

    @property
    def open_sessions(self) -> int:
        """Sessions issued by a verify and not revoked by a logout."""
        with self._state.lock:
            return len(self._state.sessions)

    @property
    def revoked(self) -> list[str]:
        with self._state.lock:
            return list(self._state.revoked)


def wrong(fake: FakeSupabaseAuth, email: str) -> str:
    """A code that is not the one ``fake`` sent to ``email`` last."""
    return "000000" if fake.last_code(email) != "000000" else "111111"
