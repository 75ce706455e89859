"""Linking's service against a fake Supabase Auth over HTTP (tests/fake_supabase_auth.py):
codes sent and verified, errors and rate limits told apart and never revealing an address,
nothing secret logged (/link end to end: tests/e2e/test_linking.py)."""

from __future__ import annotations

import logging
import uuid

import pytest

from services import linking
from tests.fake_supabase_auth import FakeSupabaseAuth, wrong

ANON = "anon-test-key"


async def test_right_code_returns_the_user_id_and_keeps_no_session(
    fake: FakeSupabaseAuth,
) -> None:
    user_id = uuid.uuid4()
    fake.add_user("ann@example.com", user_id)
    await linking.send_code(fake.url, ANON, "Ann@Example.com")
    (otp,) = fake.requests("/auth/v1/otp")
    assert otp.body["email"] == "ann@example.com"
    assert otp.body["create_user"] is False
    code = fake.last_code("ann@example.com")

    assert await linking.verify_code(fake.url, ANON, "ann@example.com", code) == user_id
    assert fake.open_sessions == 0  # the session GoTrue opened was revoked at once
    assert fake.revoked == ["ann@example.com"]
    assert all(r.headers.get("apikey") == ANON for r in fake.requests())


async def test_wrong_expired_or_reused_code_is_rejected(fake: FakeSupabaseAuth) -> None:
    fake.add_user("ann@example.com", uuid.uuid4())
    await linking.send_code(fake.url, ANON, "ann@example.com")
    code = fake.last_code("ann@example.com")
    with pytest.raises(linking.CodeRejected) as caught:
        await linking.verify_code(
            fake.url, ANON, "ann@example.com", wrong(fake, "ann@example.com")
        )
    assert caught.value.user_message == "That code is wrong or has expired."

    fake.expire_code("ann@example.com")
    with pytest.raises(linking.CodeRejected):
        await linking.verify_code(fake.url, ANON, "ann@example.com", code)

    await linking.send_code(fake.url, ANON, "ann@example.com")
    fresh = fake.last_code("ann@example.com")
    await linking.verify_code(fake.url, ANON, "ann@example.com", fresh)
    with pytest.raises(linking.CodeRejected):
        await linking.verify_code(fake.url, ANON, "ann@example.com", fresh)


async def test_unknown_email_is_not_revealed(fake: FakeSupabaseAuth) -> None:
    await linking.send_code(fake.url, ANON, "nobody@example.com")  # as if a code went out
    (otp,) = fake.requests("/auth/v1/otp")
    assert otp.body["create_user"] is False  # GoTrue refused: no such account
    with pytest.raises(linking.CodeRejected):  # and any code is simply wrong
        await linking.verify_code(fake.url, ANON, "nobody@example.com", "123456")


async def test_malformed_email_is_refused_before_any_request(fake: FakeSupabaseAuth) -> None:
    with pytest.raises(linking.InvalidEmail):
        await linking.send_code(fake.url, ANON, "not-an-email")
    assert fake.requests() == []


@pytest.mark.parametrize("how", ["switch", "per-address interval"])
async def test_email_rate_limits_are_not_revealed(fake: FakeSupabaseAuth, how: str) -> None:
    """GoTrue's email limits only stop a known address: answering "wait" would tell that the
    address has an account, so the service answers as if the code went out."""
    fake.add_user("ann@example.com", uuid.uuid4())
    if how == "switch":
        fake.rate_limited = True
    else:
        fake.min_interval = 60
        await linking.send_code(fake.url, ANON, "ann@example.com")
    await linking.send_code(fake.url, ANON, "ann@example.com")
    assert len(fake.requests("/auth/v1/otp")) == (1 if how == "switch" else 2)


async def test_request_rate_limit_gets_a_friendly_error(fake: FakeSupabaseAuth) -> None:
    fake.request_rate_limited = True  # per client, whatever the address
    with pytest.raises(linking.RateLimited) as caught:
        await linking.send_code(fake.url, ANON, "nobody@example.com")
    assert caught.value.user_message == "Too many codes requested; wait a minute and try again."


async def test_unreachable_or_failing_auth_is_unavailable(fake: FakeSupabaseAuth) -> None:
    fake.add_user("ann@example.com", uuid.uuid4())
    fake.unavailable = True
    with pytest.raises(linking.AuthUnavailable):
        await linking.send_code(fake.url, ANON, "ann@example.com")
    with pytest.raises(linking.AuthUnavailable):
        await linking.verify_code(fake.url, ANON, "ann@example.com", "123456")
    closed = fake.url
    fake.stop()
    with pytest.raises(linking.AuthUnavailable):
        await linking.send_code(closed, ANON, "ann@example.com")


async def test_missing_api_key_is_refused_by_the_fake(fake: FakeSupabaseAuth) -> None:
    fake.add_user("ann@example.com", uuid.uuid4())
    with pytest.raises(linking.AuthUnavailable):
        await linking.send_code(fake.url, "", "ann@example.com")


async def test_the_code_is_never_logged_nor_the_email_at_info(
    fake: FakeSupabaseAuth, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_user("secret.person@example.com", uuid.uuid4())
    caplog.set_level(logging.DEBUG)
    await linking.send_code(fake.url, ANON, "secret.person@example.com")
    code = fake.last_code("secret.person@example.com")
    with pytest.raises(linking.CodeRejected):
        await linking.verify_code(
            fake.url, ANON, "secret.person@example.com", wrong(fake, "secret.person@example.com")
        )
    await linking.verify_code(fake.url, ANON, "secret.person@example.com", code)
    fake.rate_limited = True
    await linking.send_code(fake.url, ANON, "secret.person@example.com")
    assert "email rate limit" in caplog.text  # the operator hears of it
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage()
        assert code not in text
        if record.levelno >= logging.INFO:
            assert "secret.person" not in text
