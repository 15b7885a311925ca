"""The data folder: private to the server's user, and checked before anything slow starts.

It holds callers' words and console password hashes (the SQLite file), the console's secret key,
recordings and the runbook index, so folders are made 0700 and the SQLite file 0600 (SQLite gives
its -wal and -journal files the same mode). A folder the server cannot write used to fail 15-20 s
into start-up, after the models had loaded, with an 80-line traceback ("attempt to write a
readonly database", no path); :func:`check_data_dir` fails at once, naming the path and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from voice_agent.errors import ErrorCode, VoiceAgentError

if TYPE_CHECKING:
    from voice_agent.settings import Settings

FIX = "make it writable by this user, or point VOICE_AGENT_DATA_DIR (or --config) elsewhere"


class DataFolderError(VoiceAgentError, RuntimeError):
    code = ErrorCode.DATA_DIR_UNUSABLE


def private_folder(path: Path, what: str = "data folder") -> Path:
    """``path`` made (0700 when new) and checked writable, or :class:`DataFolderError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise DataFolderError(f"cannot create the {what} {path}: {e.strerror}; {FIX}") from None
    if not path.is_dir():
        raise DataFolderError(f"the {what} {path} is not a folder; {FIX}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataFolderError(f"the {what} {path} is read-only for this user; {FIX}")
    return path


def private_sqlite_file(path: Path) -> None:
    """The SQLite file created 0600 (an older world-readable one is tightened), or an error
    naming it when it, or its folder, cannot be written."""
    path = Path(path)
    private_folder(path.parent, "database folder")
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # made by another process just now
        except OSError as e:
            why = e.strerror
            raise DataFolderError(f"cannot create the database {path}: {why}; {FIX}") from None
    elif not os.access(path, os.R_OK | os.W_OK):
        raise DataFolderError(f"the database {path} is read-only for this user; {FIX}")
    if path.stat().st_mode & 0o077:
        try:
            path.chmod(0o600)
        except PermissionError:
            pass  # not ours to change (another user's file we may still write)


def check_data_dir(settings: Settings) -> None:
    """Every folder the server writes, checked before the models load."""
    private_folder(settings.data_dir)
    if settings.kb_qdrant_url is None:
        private_folder(settings.resolved_kb_dir, "runbook index folder")
    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        private_sqlite_file(Path(url.removeprefix("sqlite:///")))
