"""The account's sync lock file holds the holder's process id, written in place (the
same length every time): never truncated, as ext4 writes a file truncated and written
again out when it is closed (~0.3 ms of a sync where nothing changed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailbag.errors import SyncError
from mailbag.paths import Paths
from mailbag.sync.imap import sync_lock


def test_the_lock_writes_its_process_id_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths.from_env({"MAILBAG_HOME": str(tmp_path)})
    lock = paths.data_dir / "locks" / "sync-work.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("4194304999\n")  # a longer id from an earlier holder

    def refuse(fd: int, length: int) -> None:
        raise AssertionError("the lock file was truncated")

    monkeypatch.setattr(os, "ftruncate", refuse)
    with sync_lock(paths, "work"):
        assert lock.read_text().strip() == str(os.getpid())
        inode = lock.stat().st_ino
        held = rf"\(process {os.getpid()}\)"
        with pytest.raises(SyncError, match=held), sync_lock(paths, "work"):
            pass
    with sync_lock(paths, "work"):
        assert lock.read_text().strip() == str(os.getpid())
    assert lock.stat().st_ino == inode and lock.stat().st_size == 16
