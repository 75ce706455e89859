"""Data access: one module per table, each holding that table's SQL.

Functions take a :class:`services.db.UnitOfWork` (already scoped to one user by RLS, or
privileged where the module says so), run their statements and never commit. A statement
lives in the module of the table it writes; a read that joins several tables, in the module
of the table it is about, composing the fragments other modules expose for their tables.
Shared row helpers are in :mod:`services.repos.rows`.

Exceptions, each said in its module: :mod:`~services.repos.user_data` runs the same statement
over every per-user table (/export, /delete); :mod:`~services.repos.schema_migrations` works
on the migration runner's own connection; the impersonation that opens every unit of work is
in services/db.py. SQL text is built with f-strings only from fixed identifiers (column
lists, table names from a fixed list, fragments of these modules), never from input; each
place that does so says so.
"""
