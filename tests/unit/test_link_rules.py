"""Linking's pure rules: the tries limiter's keys and waits, and what an email address and a
code may look like (the service against a fake Supabase Auth:
tests/integration/test_linking_service.py; /link end to end: tests/e2e/test_linking.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services import linking


def test_counter_keys_and_waits() -> None:
    assert linking.subjects(42) == ["tg:42"]
    tg, email = linking.subjects(42, "ann@example.com")
    assert tg == "tg:42"
    assert email.startswith("email:") and "ann" not in email  # the address is not stored
    assert linking.subjects(7, "ann@example.com")[1] == email  # one key per address
    assert linking.subjects(42, "bob@example.com")[1] != email
    moment = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert linking.wait_minutes(moment + timedelta(seconds=599), moment) == 10
    assert linking.wait_minutes(moment + timedelta(seconds=61), moment) == 2
    assert linking.wait_minutes(moment, moment) == 1


def test_clean_email_and_code() -> None:
    assert linking.clean_email("  Ann@Example.COM ") == "ann@example.com"
    assert linking.clean_email("<ann@example.com>") == "ann@example.com"
    for bad in ("", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@b@c.de"):
        with pytest.raises(linking.InvalidEmail):
            linking.clean_email(bad)
    assert linking.clean_code(" 123 456 ") == "123456"
    assert linking.clean_code("123-456") == "123456"
    for bad in ("12345", "abcdef", "12345a", ""):
        with pytest.raises(linking.InvalidCode):
            linking.clean_code(bad)
