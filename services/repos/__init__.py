"""Data access: one module per table, each holding that table's SQL.

Functions take a :class:`services.db.UnitOfWork` (already scoped to one user by RLS, or
privileged where the module says so), run their statements and never commit.
"""
