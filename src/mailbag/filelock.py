"""An exclusive `flock` on an open file, waited for a bounded time: the sync's account
lock (`sync.lock`) and the outbox's (`store.outbox`)."""

from __future__ import annotations

import fcntl
import time

__all__ = ["flock_within"]


def flock_within(fd: int, wait: float) -> bool:
    """Lock `fd` exclusively, waiting up to `wait` seconds while another process holds
    it (polled every 0.1 s); whether the lock was taken. Closing `fd` releases it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
