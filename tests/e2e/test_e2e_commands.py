"""The bot end to end: commands in their one-line form, through HTTP, against real PostgreSQL."""

from __future__ import annotations

from tests.conftest import BotEnv


async def test_start_then_one_line_commands(bot: BotEnv) -> None:
    chat = bot.chat(1001)
    (welcome,) = await chat.send("/start")
    assert "Welcome to Aelpher" in welcome.plain_text
    (added,) = await chat.send("/add cs 4 Read SICP chapter 3")
    assert "Added to cs" in added.plain_text and "Read SICP chapter 3" in added.plain_text
    (logged,) = await chat.send("/log cs 45 read chapter 3")
    assert "Logged in cs: read chapter 3 (45 min)" in logged.plain_text
    (refl,) = await chat.send("/reflect cs Passed the mock exam, 78%")
    assert "Passed the mock exam, 78%" in refl.plain_text
    (prog,) = await chat.send("/progress cs 40")
    assert "cs progress set to 40%" in prog.plain_text
    (energy,) = await chat.send("/energy 60")
    assert "ibm 60% · cs 40%" in energy.plain_text
    (blocked,) = await chat.send("/block ibm travelling")
    assert "ibm is blocked (travelling)" in blocked.plain_text
    (nba_cs,) = await chat.send("/nba cs")
    assert "Read SICP chapter 3" in nba_cs.plain_text
    assert "gap 4 (+40)" in nba_cs.plain_text
    (hist,) = await chat.send("/history cs 10")
    assert "read chapter 3" in hist.plain_text and "mock exam" in hist.plain_text
    (status,) = await chat.send("/status")
    assert "blocked (travelling)" in status.plain_text
    assert "0.8 h of your 40 h weekly capacity" in status.plain_text
    (unblocked,) = await chat.send("/unblock ibm")
    assert "ibm is unblocked" in unblocked.plain_text
    (undone,) = await chat.send("/undo")
    assert "Removed the log “read chapter 3”" in undone.plain_text
    (helped,) = await chat.send("/help")
    assert "/log cs 45 read chapter 3" in helped.plain_text
    commands = [c["command"] for c in bot.emu.commands()]
    assert {"nba", "log", "add", "status", "help"} <= set(commands)


async def test_nba_shows_both_theaters_in_one_message(bot: BotEnv) -> None:
    chat = bot.chat(1002)
    await chat.send("/start")
    await chat.send("/add cs 4 Read SICP chapter 3")
    await chat.send("/add cs 1 Exercises")
    (both,) = await chat.send("/nba")  # one message, not one per theater
    text = both.plain_text
    assert text.index("ibm 🟢 active") < text.index("cs 🟢 active")
    assert "No open Next Best Action." in text and "/add ibm 3 What to do next" in text
    assert "➤ Read SICP chapter 3" in text and "1 more waiting." in text
    labels = [label for row in both.buttons for label, _ in row]
    assert labels == [
        "➕ Add one to ibm",
        "🔒 Lock cs", "▶ Start cs", "▶ Progress cs", "✅ Done cs",
        "🔀 Choose another cs", "⚙ Manage cs",
    ]  # fmt: skip
    await chat.press(both, "🔒 Lock cs")  # the message becomes the theater's own view
    locked = chat.message(both.message_id)
    assert "➤ Read SICP chapter 3 🔒 locked" in locked.plain_text
    assert "ibm" not in locked.plain_text
    assert [label for label, _ in locked.buttons[0]] == [
        "🔓 Unlock", "▶ Start", "▶ Progress", "✅ Done",
    ]  # fmt: skip
    # Nothing else can be chosen while it is locked: Unlock is the way.
    assert [label for label, _ in locked.buttons[1]] == ["⚙ Manage"]
    await chat.press(locked, "🔓 Unlock")
    unlocked = chat.message(both.message_id)
    assert [label for label, _ in unlocked.buttons[1]] == ["🔀 Choose another", "⚙ Manage"]
    await chat.press(unlocked, "🔀 Choose another")
    assert "cs: choose the item to work on" in chat.message(both.message_id).plain_text


async def test_add_one_under_nba_asks_in_a_new_message(bot: BotEnv) -> None:
    chat = bot.chat(1003)
    await chat.send("/start")
    await chat.send("/add cs 4 Read SICP chapter 3")
    (both,) = await chat.send("/nba")
    (ask_gap,) = await chat.press(both, "➕ Add one to ibm", replies=1)
    assert "ibm: how big is the gap" in ask_gap.plain_text
    assert chat.message(both.message_id).plain_text == both.plain_text  # the view stays
    await chat.press(ask_gap, "3")  # the question itself is redrawn as the next one
    assert "what's the action" in chat.message(ask_gap.message_id).plain_text
    (added,) = await chat.send("Draft the report intro")
    assert "Added to ibm" in added.plain_text


async def test_cancel_with_nothing_open_says_so(bot: BotEnv) -> None:
    chat = bot.chat(1004)
    await chat.send("/start")
    await chat.send("/cancel")  # ends the onboarding questions
    (nothing,) = await chat.send("/cancel")
    assert "Nothing to cancel" in nothing.plain_text
    await chat.send("/log cs")  # a question is open: /cancel closes it
    (closed,) = await chat.send("/cancel")
    assert "Cancelled" in closed.plain_text
    (again,) = await chat.send("/cancel")
    assert "Nothing to cancel" in again.plain_text
