"""The dashboard's launch-data check (Telegram's published test vector, forgeries, age) and
its settings. The API through the running bot: ``tests/e2e/test_webapp_api.py``."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import quote, urlencode

import pytest

from bot.settings import SettingsError, load_settings
from bot.webapp.api import ApiError, launch_user
from bot.webapp.initdata import MAX_AGE_SECONDS, InvalidInitData, sign, validate

# The launch data of the test vector published with Telegram's Mini App libraries
# (init-data-golang validate_test.go, @telegram-apps/init-data-node's documentation), signed
# with a fake token outside the project's code, by OpenSSL:
#   secret=$(printf %s "$VECTOR_TOKEN" | openssl dgst -sha256 -mac HMAC -macopt key:WebAppData)
#   printf %s "$data_check_string" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$secret
# (the same two commands give the published hash from the published token).
VECTOR_TOKEN = "123456789:FAKE-vector-token-not-from-telegram"
VECTOR = (
    "query_id=AAHdF6IQAAAAAN0XohDhrOrc"
    "&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22%2C%22last_name%22"
    "%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22"
    "%2C%22is_premium%22%3Atrue%7D"
    "&auth_date=1662771648"
    "&hash=b884b2cbcb4401ce7d4ad152a1ee788ae5f54947677f2c17932b355aa838f0aa"
)
VECTOR_AT = 1662771648
TOKEN = "123456:test-token-of-this-bot"


def test_telegrams_test_vector_is_accepted() -> None:
    user = validate(VECTOR, VECTOR_TOKEN, now=VECTOR_AT + 60)
    assert (user.id, user.first_name, user.auth_date) == (279058397, "Vladislav", VECTOR_AT)


def test_the_vector_with_any_change_is_refused() -> None:
    for forged in (
        VECTOR.replace("279058397", "279058398"),  # another user under the same hash
        VECTOR.replace("auth_date=1662771648", "auth_date=1662771649"),
        VECTOR.replace("hash=b884", "hash=b885"),
        VECTOR.replace("&hash=", "&hash=0"),
        VECTOR.rsplit("&hash=", 1)[0],  # no hash
        VECTOR + "&extra=1",  # a field the signature does not cover
    ):
        with pytest.raises(InvalidInitData):
            validate(forged, VECTOR_TOKEN, now=VECTOR_AT + 60)
    with pytest.raises(InvalidInitData, match="signature"):
        validate(VECTOR, VECTOR_TOKEN[:-1] + "X", now=VECTOR_AT)


def test_age_and_clock_skew() -> None:
    assert validate(VECTOR, VECTOR_TOKEN, now=VECTOR_AT + MAX_AGE_SECONDS).id == 279058397
    with pytest.raises(InvalidInitData, match="expired"):
        validate(VECTOR, VECTOR_TOKEN, now=VECTOR_AT + MAX_AGE_SECONDS + 1)
    assert validate(VECTOR, VECTOR_TOKEN, now=VECTOR_AT - 30).id == 279058397
    with pytest.raises(InvalidInitData, match="future"):
        validate(VECTOR, VECTOR_TOKEN, now=VECTOR_AT - 3600)


def _signed(fields: dict[str, str], token: str, *, leave_out: tuple[str, ...] = ()) -> str:
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in leave_out)
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest})


def test_signature_is_one_of_the_signed_fields() -> None:
    fields = {
        "auth_date": "1000",
        "user": json.dumps({"id": 42, "first_name": "Ann"}),
        "signature": "abc_-DEF",
    }
    assert validate(_signed(fields, TOKEN), TOKEN, now=1000).id == 42
    with pytest.raises(InvalidInitData):
        validate(_signed(fields, TOKEN, leave_out=("signature",)), TOKEN, now=1000)


def test_duplicate_and_malformed_fields_are_refused() -> None:
    good = sign(TOKEN, 42, "Ann", 1000)
    assert validate(good, TOKEN, now=1000).id == 42
    with pytest.raises(InvalidInitData, match="twice"):
        validate(good + "&auth_date=1000", TOKEN, now=1000)
    with pytest.raises(InvalidInitData, match="malformed"):
        validate("auth_date", TOKEN, now=1000)
    for user in ("not json", json.dumps({"id": "42"}), json.dumps({"id": True}), "[]"):
        fields = {"auth_date": "1000", "user": user}
        with pytest.raises(InvalidInitData):
            validate(_signed(fields, TOKEN), TOKEN, now=1000)


def test_values_are_checked_as_received() -> None:
    # an escaped slash, as Telegram sends photo URLs: re-serialising the JSON would lose it
    user = '{"id":42,"first_name":"Ann","photo_url":"https:\\/\\/t.me\\/i\\/u.svg"}'
    raw = _signed({"auth_date": "1000", "user": user}, TOKEN)
    assert quote("\\/", safe="") in raw
    assert validate(raw, TOKEN, now=1000).id == 42


def test_the_authorization_header() -> None:
    good = sign(TOKEN, 42, "Ann", 1000)
    assert launch_user(f"tma {good}", TOKEN, 1000).id == 42
    assert launch_user(f"TMA {good}", TOKEN, 1000).id == 42
    for header in (None, "", "tma", f"Bearer {good}", good, f"tma {good}x"):
        with pytest.raises(ApiError) as info:
            launch_user(header, TOKEN, 1000)
        assert info.value.status == 401


def test_webapp_url_must_be_https_or_local() -> None:
    def url(value: str) -> str | None:
        return load_settings(_env_file=None, webapp_url=value).webapp_url

    assert url("https://bot.example.com/app/") == "https://bot.example.com/app/"
    assert url("https://bot.example.com/app") == "https://bot.example.com/app/"
    assert url("http://127.0.0.1:8080/app/") == "http://127.0.0.1:8080/app/"
    assert url("http://localhost:8080/app/") == "http://localhost:8080/app/"
    assert url("") is None
    for bad in (
        "http://bot.example.com/app/",
        "ftp://bot.example.com/app/",
        "https://bot.example.com/dashboard/",
        "https:///app/",
        "https://bot.example.com/app/?x=1",
    ):
        with pytest.raises(SettingsError) as info:
            url(bad)
        (problem,) = info.value.problems
        assert problem.startswith("WEBAPP_URL:")
