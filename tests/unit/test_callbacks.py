"""The callback-data codec (handlers/callbacks.py): what encode and question make, decode and
decode_question read back, the handlers' patterns, and what none of them accepts: the 64-byte
limit, reserved characters, areas and verbs that are not whole words, data this bot did not
make."""

from __future__ import annotations

import re
from collections.abc import Callable
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.callbacks import (
    MAX_BYTES,
    QUESTION,
    BadCallback,
    Callback,
    decode,
    decode_question,
    encode,
    pattern,
    question,
)

ITEM = UUID("0123abcd-4567-89ef-0123-456789abcdef")

#: An area or a verb: lower-case words joined by hyphens.
word = st.lists(st.text("abcxyz", min_size=1, max_size=6), min_size=1, max_size=3).map("-".join)
#: An argument: letters, digits and ``_ . + -`` (no ``:``, which separates parts).
arg = st.text(st.sampled_from("abcXYZ019_.+-"), max_size=20)
#: A question's token, as services/questions.py makes it (secrets.token_urlsafe(6)).
token = st.text(st.sampled_from("abcXYZ019_-"), min_size=8, max_size=8)


def test_parts_are_joined_with_colons_and_ids_travel_as_32_hex_characters() -> None:
    assert encode("nba", "lock", "cs", ITEM) == "nba:lock:cs:0123abcd456789ef0123456789abcdef"
    assert encode("log", "minutes", ITEM, 25) == "log:minutes:0123abcd456789ef0123456789abcdef:25"
    assert encode("nudge", "snooze-overload") == "nudge:snooze-overload"


def test_decode_reads_area_verb_and_typed_arguments() -> None:
    press = decode("nba:gap:ibm:0123abcd456789ef0123456789abcdef:3")
    assert press == Callback("nba", "gap", ("ibm", "0123abcd456789ef0123456789abcdef", "3"))
    assert press.arm(0) == "ibm"
    assert press.uuid(1) == ITEM
    assert press.number(2, 0, 5) == 3
    assert press.text(2) == "3"


@given(word, word, st.lists(arg, max_size=4))
def test_what_encode_makes_decode_reads_back(area: str, verb: str, args: list[str]) -> None:
    if area == QUESTION:
        return
    try:
        data = encode(area, verb, *args)
    except ValueError:  # too long: encode refuses, so no such button exists
        assert len(":".join([area, verb, *args]).encode()) > MAX_BYTES
        return
    press = decode(data)
    assert (press.area, press.verb, press.args) == (area, verb, tuple(args))


@given(st.uuids(), st.integers(-(10**9), 10**9))
def test_ids_and_numbers_round_trip(item: UUID, number: int) -> None:
    press = decode(encode("nba", "log", item, number))
    assert press.uuid(0) == item
    assert press.number(1) == number


@pytest.mark.parametrize(
    "verb", ["Lock", "lock_item", "lock2", "", "-lock", "lock-", "lock--item", "lock item"]
)
def test_areas_and_verbs_are_whole_words(verb: str) -> None:
    with pytest.raises(ValueError):
        encode("nba", verb)
    with pytest.raises(ValueError):
        encode(verb, "lock")
    with pytest.raises(ValueError):
        question("Ab-_9xYz", verb)


def test_a_questions_buttons_are_made_by_question_only() -> None:
    with pytest.raises(ValueError, match=r"made by question\(\)"):
        encode(QUESTION, "minutes", 25)


@given(token, word, st.uuids(), st.integers(0, 999))
def test_a_question_button_reads_back_as_its_token_and_press(
    tok: str, verb: str, item: UUID, minutes: int
) -> None:
    try:
        data = question(tok, verb, item, minutes)
    except ValueError:
        assert len(f"q:{tok}:{verb}:{item.hex}:{minutes}".encode()) > MAX_BYTES
        return
    got, press = decode_question(data)
    assert got == tok
    assert press == Callback(QUESTION, verb, (item.hex, str(minutes)))
    assert press.uuid(0) == item and press.number(1) == minutes


def test_a_question_button_fits_with_an_item_id_and_a_number() -> None:
    """``q:<8-character token>:<verb>:<args>``: an id and minutes leave room for a verb of
    up to 17 characters."""
    data = question("Ab-_9xYz", "minutes", ITEM, 90)
    assert len(data) == 54
    with pytest.raises(ValueError, match="over 64 bytes"):
        question("Ab-_9xYz", "a" * 18, ITEM, 90)
    assert len(question("Ab-_9xYz", "a" * 17, ITEM, 90)) == MAX_BYTES


@pytest.mark.parametrize("data", ["nba:lock:cs", "q:Ab-_9xYz", "q", "", None, "q:t:x:ü"])
def test_decode_question_refuses_other_data(data: str | None) -> None:
    with pytest.raises(BadCallback):
        decode_question(data)


def test_exactly_64_bytes_is_accepted_and_65_refused() -> None:
    fits = encode("a", "b" * 62)
    assert len(fits.encode()) == MAX_BYTES == 64
    assert decode(fits).verb == "b" * 62
    with pytest.raises(ValueError, match="over 64 bytes"):
        encode("a", "b" * 63)
    with pytest.raises(BadCallback, match="oversized"):
        decode("a:" + "b" * 63)


@pytest.mark.parametrize("bad", ["cs:ibm", "a b", "naïve", "x/y", "é", "1\n2"])
def test_encode_refuses_reserved_characters(bad: str) -> None:
    with pytest.raises(ValueError, match="reserved character"):
        encode("a", "b", bad)


def test_a_trailing_newline_is_refused_too() -> None:
    with pytest.raises(ValueError, match="reserved character"):
        encode("log", "minutes", "5\n")
    with pytest.raises(BadCallback):
        decode("log:minutes:5\n")


def test_an_empty_argument_is_kept() -> None:
    assert encode("a", "b", "") == "a:b:"
    assert decode("a:b:").args == ("",)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "n",  # no verb
        "nba:lock:cs:<script>",
        "nba:lock:cs:id with spaces",
        "q:token:verb:ü",
        "a:" + "b" * 63,  # 65 bytes
        "a:" + "é" * 32,  # 66 bytes in 34 characters: the limit is in bytes
    ],
)
def test_decode_refuses_data_this_bot_did_not_make(data: str | None) -> None:
    with pytest.raises(BadCallback):
        decode(data)


@pytest.mark.parametrize(
    ("press", "read"),
    [
        (Callback("nba", "lock", ("cs", "not-a-uuid")), lambda c: c.uuid(1)),
        (Callback("nba", "lock", ("cs",)), lambda c: c.uuid(1)),  # missing
        (Callback("nba", "lock", ("cs", "0123")), lambda c: c.uuid(1)),  # too short
        (Callback("log", "minutes", ("x", "abc")), lambda c: c.number(1)),
        (Callback("log", "minutes", ("x", "91")), lambda c: c.number(1, 0, 90)),  # above
        (Callback("log", "minutes", ("x", "-1")), lambda c: c.number(1, 0, 90)),  # below
        (Callback("log", "minutes", ("x",)), lambda c: c.number(1)),  # missing
        (Callback("nba", "view", ("CS",)), lambda c: c.arm(0)),  # theaters are lower case
        (Callback("nba", "view", ("math",)), lambda c: c.arm(0)),
        (Callback("nba", "view", ()), lambda c: c.arm(0)),  # missing
        (Callback("nba", "view", ()), lambda c: c.text(0)),  # missing
    ],
)
def test_accessors_raise_bad_callback_never_index_or_value_errors(
    press: Callback, read: Callable[[Callback], object]
) -> None:
    with pytest.raises(BadCallback):
        read(press)


def test_number_bounds_are_inclusive() -> None:
    press = Callback("log", "minutes", ("0", "90"))
    assert press.number(0, 0, 90) == 0 and press.number(1, 0, 90) == 90


def test_pattern_matches_one_area_or_some_of_its_verbs() -> None:
    nba = re.compile(pattern("nba"))
    assert nba.match("nba:lock:cs") and nba.match("nba:view:ibm")
    assert not nba.match("nbax:lock:cs") and not nba.match("q:nba:lock") and not nba.match("nba")
    some = re.compile(pattern("nba", "lock", "unlock"))
    assert (
        some.match("nba:lock:cs:0123") and some.match("nba:unlock:cs") and some.match("nba:lock")
    )
    assert not some.match("nba:locker:cs") and not some.match("nba:done:cs")
    dotted = re.compile(pattern("a.b"))  # the area is matched literally
    assert dotted.match("a.b:x") and not dotted.match("axb:x")


@pytest.mark.parametrize(
    "spelling",
    [
        "0123456789ABCDEF0123456789ABCDEF",  # upper case
        "01234567-89ab-cdef-0123-456789abcdef",  # dashes
        "0123456789abcdef0123456789abcde",  # 31 digits
    ],
)
def test_an_id_in_another_spelling_is_refused(spelling: str) -> None:
    with pytest.raises(BadCallback):
        decode(f"focus:stop:{spelling}").uuid(0)
    assert decode("focus:stop:0123456789abcdef0123456789abcdef").uuid(0).hex == (
        "0123456789abcdef0123456789abcdef"
    )


def test_a_press_with_extra_parts_is_refused_where_the_arity_is_fixed() -> None:
    one = "focus:stop:0123456789abcdef0123456789abcdef"
    assert decode(one).arity(1).args == ("0123456789abcdef0123456789abcdef",)
    with pytest.raises(BadCallback):
        decode(one + ":x").arity(1)
