"""Write commands as the outbox keeps them: name and fields as JSON, read back into the same
command, and the format of versions before typed commands ({"op": …, "args": …}) still read.

No database: replaying them on PostgreSQL is in tests/e2e/test_outage.py and
tests/e2e/test_outbox_hardening.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from services import sync
from services.commands import Command
from services.focus import ExtendFocus, PauseFocus, StartFocus, StopFocus
from services.nba import AddItem
from services.outbox import OutboxEntry
from services.tracking import Block, LogTime, Reflect, SetEnergy, SetProgress, Unblock

SESSION = UUID("5a1d3c40-0000-4000-8000-000000000001")

#: One command of every kind the outbox keeps; the payload the handlers of the version
#: before typed commands stored for it; what its author is told it was.
EXAMPLES: list[tuple[Command[object], dict[str, object], str]] = [
    (
        LogTime(arm="cs", minutes=45, action="read ch. 3", dedupe_key="msg:1:2"),
        {"op": "log_time", "args": {"arm": "cs", "minutes": 45, "action": "read ch. 3",
                                    "dedupe_key": "msg:1:2", "confirmed": False}},
        "log “read ch. 3” in cs",
    ),
    (
        LogTime(arm="ibm", minutes=None, action="a note", confirmed=True),
        {"op": "log_time", "args": {"arm": "ibm", "minutes": None, "action": "a note",
                                    "confirmed": True}},
        "log “a note” in ibm",
    ),
    (
        Reflect(arm="ibm", evidence="PR #12 merged"),
        {"op": "reflect", "args": {"arm": "ibm", "evidence": "PR #12 merged"}},
        "reflection “PR #12 merged” in ibm",
    ),
    (
        AddItem(arm="cs", gap=4, title="Chapter 3"),
        {"op": "add_item", "args": {"arm": "cs", "gap": 4, "title": "Chapter 3"}},
        "new NBA “Chapter 3” in cs",
    ),
    (
        SetProgress(arm="cs", value=Decimal("62.5")),
        {"op": "set_progress", "args": {"arm": "cs", "value": "62.5"}},
        "cs progress 62.5%",
    ),
    (
        SetEnergy(ibm_share=70),
        {"op": "set_energy", "args": {"ibm_share": 70}},
        "energy split ibm 70%",
    ),
    (
        Block(arm="ibm", reason="travelling"),
        {"op": "block", "args": {"arm": "ibm", "reason": "travelling"}},
        "blocking ibm",
    ),
    (
        Block(arm="cs"),
        {"op": "block", "args": {"arm": "cs", "reason": None}},
        "blocking cs",
    ),
    (
        Unblock(arm="ibm"),
        {"op": "unblock", "args": {"arm": "ibm"}},
        "unblocking ibm",
    ),
    # focus sessions came after typed commands: no entry was ever kept in the old format,
    # which reads the same fields all the same
    (
        StartFocus(arm="cs", item_id=SESSION, planned_minutes=25),
        {"op": "start_focus", "args": {"arm": "cs", "item_id": str(SESSION),
                                       "planned_minutes": 25}},
        "focus session in cs",
    ),
    (
        PauseFocus(session_id=SESSION, resume=True),
        {"op": "pause_focus", "args": {"session_id": str(SESSION), "resume": True}},
        "resume of the focus session",
    ),
    (
        StopFocus(session_id=SESSION, done=True),
        {"op": "stop_focus", "args": {"session_id": str(SESSION), "done": True}},
        "end of the focus session",
    ),
    (
        ExtendFocus(session_id=SESSION),
        {"op": "extend_focus", "args": {"session_id": str(SESSION)}},
        "10 more minutes of the focus session",
    ),
]  # fmt: skip


def entry(payload: dict[str, object]) -> OutboxEntry:
    return OutboxEntry(uuid4(), 1, 1, "INSERT", "t", payload, datetime.now(UTC), 0, False)


def test_the_outbox_keeps_the_same_kinds_under_the_same_names() -> None:
    assert sorted(sync.KEPT) == [
        "add_item", "block", "extend_focus", "log_time", "pause_focus", "reflect",
        "set_energy", "set_progress", "start_focus", "stop_focus", "unblock",
    ]  # fmt: skip
    assert {type(command) for command, _, _ in EXAMPLES} == set(sync.KEPT.values())
    for name, kind in sync.KEPT.items():
        assert kind.name == name
        assert kind.operation in ("INSERT", "UPDATE") and kind.table_name


@pytest.mark.parametrize(("command", "old", "told"), EXAMPLES)
def test_a_kept_command_reads_back_as_itself(
    command: Command[object], old: dict[str, object], told: str
) -> None:
    stored = json.loads(json.dumps(sync.payload(command)))  # as the outbox file holds it
    assert stored["command"] == command.name
    assert set(stored) == {"command", "fields"}
    assert sync.command_of(stored) == command
    assert command.describe() == told
    assert sync.describe(entry(stored)) == told


@pytest.mark.parametrize(("command", "old", "told"), EXAMPLES)
def test_the_format_before_typed_commands_reads_as_the_same_command(
    command: Command[object], old: dict[str, object], told: str
) -> None:
    read = sync.command_of(old)
    # that format had no ids of new rows: the command chooses one as it is read
    chosen = {f: getattr(command, f) for f in ("item_id", "reflection_id") if hasattr(read, f)}
    assert replace(read, **chosen) == command
    assert sync.describe(entry(old)) == told


def test_fields_a_command_does_not_have_are_ignored() -> None:
    old = {"op": "unblock", "args": {"arm": "cs", "reason": "left over"}}
    assert sync.command_of(old) == Unblock(arm="cs")


@pytest.mark.parametrize(
    ("stored", "reason", "fields"),
    [
        ({"op": "explode"}, sync.UNKNOWN, ""),
        ({"command": "explode", "fields": {}}, sync.UNKNOWN, ""),
        ({"op": 7, "args": {}}, sync.UNKNOWN, ""),
        ({}, sync.UNKNOWN, ""),
        ({"op": "log_time", "args": 7}, sync.UNREADABLE, ""),
        ({"command": "log_time", "fields": ["cs", 5, "read"]}, sync.UNREADABLE, ""),
        ({"command": "log_time", "fields": {"arm": "cs", "minutes": 5}}, sync.UNREADABLE,
         "action"),
        ({"op": "log_time", "args": {"arm": "mars", "minutes": "lots", "action": "secret"}},
         sync.UNREADABLE, "arm, minutes"),
        ({"op": "set_progress", "args": {"arm": "cs", "value": "forty"}}, sync.UNREADABLE,
         "value"),
    ],
)  # fmt: skip
def test_a_payload_that_is_no_command_says_why(
    stored: dict[str, object], reason: str, fields: str
) -> None:
    with pytest.raises(sync.Unreadable) as raised:
        sync.command_of(stored)
    assert raised.value.reason == reason
    assert raised.value.fields == fields  # names only: what the user typed stays out of logs
    assert sync.describe(entry(stored)) == "a change"


def test_a_nul_character_is_kept_out_of_the_description() -> None:
    stored = sync.payload(LogTime(arm="cs", minutes=5, action="nul\x00byte"))
    assert sync.describe(entry(stored)) == "log “nulbyte” in cs"
