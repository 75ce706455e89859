"""Nudges (SPEC §5): the messages the bot sends on its own (idle reminders, overload warnings,
the daily brief, the weekly review), each at most once. One job per module:

- :mod:`services.nudges.messages`: what each kind of nudge says, and what ``send`` raises;
- :mod:`services.nudges.localtime`: a user's zone, quiet hours, the daily and weekly schedules
  across DST (pure functions);
- :mod:`services.nudges.planning`: the rules that turn due candidates into claims (their dedupe
  keys) and the next "check at" hints (pure functions);
- :mod:`services.nudges.scan`: one scan, :func:`services.nudges.scan.run_scan`: decide and
  claim, take retries, deliver;
- :mod:`services.nudges.delivery`: per claimed row, re-check, build the message, send, record;
- :mod:`services.nudges.settings`: the user's nudge settings, and the writes behind the nudges'
  buttons (weekly capacity, overload snooze, energy shift).

Nudge settings typed as text are parsed in :mod:`services.validation`; the SQL is in
``services/repos/scan.py`` (the decision queries and hints) and ``services/repos/nudges.py`` (the
ledger). Nothing here imports ``telegram``. Import a name from the module that owns it: this
package re-exports nothing.
"""
