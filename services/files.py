"""Local files the bot keeps (``DATA_DIR``): private to the account the bot runs as.

The outbox holds users' writes during an outage and the embedded database holds all of their
data, so ``DATA_DIR`` and what the bot creates in it are readable by the owner only: folders
0700, files 0600; a folder that already existed with wider modes keeps at most the right to
pass through.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
#: what group and others never keep on a folder of the bot's: listing it and writing in it
KEEP_FROM_OTHERS = 0o066


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a folder only its owner can enter (0700).

    A folder that exists loses read and write for group and others, but keeps any right to
    pass through that was given on purpose: run as root, the embedded PostgreSQL runs as a
    system user of its own, which must pass through ``DATA_DIR`` to reach its data (0711).
    """
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        _restrict(path, DIR_MODE)
        return path
    _restrict(path, stat.S_IMODE(path.stat().st_mode) & ~KEEP_FROM_OTHERS)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` if missing, in a private folder, readable by its owner only."""
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
    os.close(fd)
    _restrict(path, FILE_MODE)
    return path


def _restrict(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except PermissionError:  # not ours (a mounted volume, say): say so, keep working
        logger.warning("cannot make %s private (mode %o): it belongs to another user", path, mode)
