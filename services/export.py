"""/export: every row of the user's Aelpher data, as one JSON document and a zip of CSVs.

Everything is read in one unit of work as the user (RLS), from every table in
:data:`services.repos.user_data.TABLES`, with every column.

The JSON document is ``{"exported_at", "user_id", "tables": {name: [row, ...]}}`` with rows as
objects keyed by column name. The zip holds one ``<table>.csv`` per table (UTF-8, a header
row, comma-separated, RFC 4180 quoting), with the same values as text. Values:

* timestamps (``timestamptz``) are ISO 8601 in UTC, e.g. ``2026-10-25T22:30:00+00:00``;
  times of day are ``HH:MM:SS``; ids are UUID strings;
* NUMERIC columns (progress, risk, stale days) are **strings** holding the exact stored
  value with its scale (``"78.75"``, ``"0.00"``), because a JSON number would be read back as
  a binary float by most tools; integers are JSON numbers;
* booleans are ``true``/``false`` (the same words in the CSV); null is ``null`` in JSON and an
  empty field in the CSV;
* JSON columns (``sync_queue.payload``) stay nested objects in JSON and are compact JSON
  text in the CSV;
* a value the bot cannot work with (``'infinity'`` or year 20000 in a timestamp, ``'NaN'``,
  ``'24:00'``: written outside the bot) is exported as the database spells it, as text, and
  listed under ``"unreadable"`` (``{"table", "column", "row"}``, ``row`` counting from 0) in
  the JSON document;
* text is redacted like the logs (:func:`services.redact.redact`): a bot token or another of
  the bot's secrets never leaves in an export.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from services import redact, sanity
from services.db import Database, Principal
from services.pgtypes import Unreadable
from services.repos import global_metrics, user_data, user_settings
from services.repos.user_data import TableRows

__all__ = ["Export", "export_data", "json_value"]


def json_value(value: Any) -> Any:
    """A database value as the JSON export writes it (see the module docstring)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return redact.redact(value)
    if isinstance(value, Unreadable):
        return redact.redact(str(value))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, Mapping):
        return {redact.redact(str(key)): json_value(item) for key, item in value.items()}
    return str(value)


def csv_value(value: Any) -> str:
    """A database value as one CSV field: the JSON export's value as text."""
    plain = json_value(value)
    if plain is None:
        return ""
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, list | dict):
        return json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    return str(plain)


@dataclass(frozen=True, slots=True)
class Export:
    """What /export sends: the user's rows per table and when they were read."""

    user_id: UUID
    exported_at: datetime
    #: the user's local date at export time, for the file names
    local_date: date
    tables: tuple[TableRows, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {table.name: len(table.rows) for table in self.tables}

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())

    @property
    def basename(self) -> str:
        return f"aelpher-export-{self.local_date:%Y%m%d}"

    @property
    def unreadable(self) -> list[dict[str, Any]]:
        """Where the rows hold values the bot cannot work with (table, column, row index)."""
        return [
            {"table": table.name, "column": column, "row": n}
            for table in self.tables
            for n, row in enumerate(table.rows)
            for column in table.columns
            if sanity.problem_of(row[column]) is not None
        ]

    def document(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "exported_at": json_value(self.exported_at),
            "user_id": str(self.user_id),
            "tables": {
                table.name: [
                    {column: json_value(row[column]) for column in table.columns}
                    for row in table.rows
                ]
                for table in self.tables
            },
        }
        unreadable = self.unreadable
        if unreadable:
            found["unreadable"] = unreadable
        return found

    def json_bytes(self) -> bytes:
        return json.dumps(self.document(), ensure_ascii=False, indent=2).encode("utf-8")

    def csv_text(self, table: TableRows) -> str:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow([csv_value(row[column]) for column in table.columns])
        return out.getvalue()

    def zip_bytes(self) -> bytes:
        out = io.BytesIO()
        stamp = self.exported_at.astimezone(UTC).timetuple()[:6]
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for table in self.tables:
                info = zipfile.ZipInfo(f"{table.name}.csv", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, self.csv_text(table).encode("utf-8"))
        return out.getvalue()


async def export_data(db: Database, user_id: Principal, now: datetime) -> Export:
    """Read every row of the user's Aelpher data in one unit of work (RLS)."""
    async with db.user_uow(user_id) as uow:
        # The per-user write lock: no write of this user commits while the tables are read,
        # so the export is one consistent state.
        await global_metrics.get(uow, for_update=True)
        settings = await user_settings.get(uow)
        tables = tuple([await user_data.read_all(uow, name) for name in user_data.TABLE_NAMES])
        owner = uow.user_id
    assert owner is not None
    name = settings.timezone if settings else "UTC"
    zone = ZoneInfo(name if sanity.known_zone(name) else "UTC")
    return Export(
        user_id=owner,
        exported_at=now,
        local_date=now.astimezone(zone).date(),
        tables=tables,
    )
