"""The account's sync lock: one sync of an account at a time (in this process or any).

Its own module so that `sync.quick` takes it without loading the engine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from mailbag.errors import SyncError
from mailbag.filelock import flock_within
from mailbag.paths import Paths

__all__ = ["sync_lock"]

#: the bytes of the lock file's process id (padded with spaces; a line)
_PID_WIDTH = 16


@contextlib.contextmanager
def sync_lock(paths: Paths, account: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the account's sync lock; another holder makes this wait `wait` seconds, then fail."""
    lock_dir = paths.data_dir / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in account)
    path = lock_dir / f"sync-{safe}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not flock_within(fd, wait):
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise SyncError(
                f"another `mailbag sync` of account {account!r} is running (process {holder})",
                hint="wait for it to finish; two syncs of one account never run at once",
                account=account,
                cause="locked",
            )
        # the holder's process id, written over the last one in place: the same length
        # every time, so no truncation (ext4 writes a file truncated and written again
        # out at its close: ~0.3 ms of a sync where nothing changed)
        os.pwrite(fd, f"{os.getpid():<{_PID_WIDTH - 1}}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
