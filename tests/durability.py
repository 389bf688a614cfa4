"""A recorder at the durability seam: which renames happened, which directories were
fsynced, and when the index committed, in order. Used to check that every directory a
rename changed is fsynced (once) before the commit that records the rename."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import mailbag.store.index as index_module
from mailbag.store.index import Store

#: (what, directories): ("rename", (source dir, target dir)), ("fsync", (dir,)),
#: ("commit", ())
Event = tuple[str, tuple[str, ...]]


class Seam:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def add(self, what: str, *dirs: str | Path) -> None:
        with self._lock:
            self.events.append((what, tuple(os.path.realpath(d) for d in dirs)))

    def windows(self) -> list[list[Event]]:
        """The renames and fsyncs between one commit and the next, in order, for every
        commit that follows at least one rename."""
        out: list[list[Event]] = []
        window: list[Event] = []
        for event in self.events:
            if event[0] != "commit":
                window.append(event)
                continue
            if any(what == "rename" for what, _ in window):
                out.append(window)
            window = []
        return out


def record(monkeypatch: pytest.MonkeyPatch) -> Seam:
    """Patch os.rename, the store's directory fsync and its COMMIT to report to a Seam."""
    seam = Seam()
    real_rename = os.rename
    real_fsync_dir = index_module.fsync_dir
    real_end = Store._end

    def rename(src: str | Path, dst: str | Path) -> None:
        real_rename(src, dst)
        seam.add("rename", os.path.dirname(src), os.path.dirname(dst))

    def fsync_dir(path: str | Path) -> None:
        seam.add("fsync", path)
        real_fsync_dir(path)

    def end(self: Store, statement: str) -> None:
        committing = statement == "COMMIT" and self.conn.in_transaction
        real_end(self, statement)
        if committing:
            seam.add("commit")

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", rename)
    monkeypatch.setattr(index_module, "fsync_dir", fsync_dir)
    monkeypatch.setattr(Store, "_end", end)
    return seam


def assert_renames_durable_before_commit(seam: Seam) -> set[str]:
    """Every directory whose entries a rename changed is fsynced exactly once after its
    last rename and before the next commit. tmp/ is left out: what is in tmp/ is
    nobody's mail (a delivery out of it is redone by `Store.recover`, a discard into it
    only needs its source directory). Nor is `listings/` beside the index: the copies of
    listings there are checked when read (`sync.imap._ListingCopy`), never flushed. Returns
    the directories checked."""
    checked: set[str] = set()
    for window in seam.windows():
        touched: dict[str, int] = {}  # directory -> position of its last rename
        for at, (what, dirs) in enumerate(window):
            if what == "rename":
                touched.update(
                    (d, at) for d in dirs if os.path.basename(d) not in ("tmp", "listings")
                )
        for d, last in touched.items():
            after = [
                at for at, event in enumerate(window) if at > last and event == ("fsync", (d,))
            ]
            assert len(after) == 1, (d, window)
        checked |= set(touched)
    return checked


def assert_deliveries_durable_before_commit(seam: Seam) -> int:
    """Every tmp/ whose files a commit delivers (renames out of tmp/ right after it) was
    fsynced before that commit: the index never records a file whose name a power
    loss can take back. Returns how many commits delivered files."""
    delivering = 0
    window: list[Event] = []
    events = seam.events
    for at, event in enumerate(events):
        if event[0] != "commit":
            window.append(event)
            continue
        after = []
        for what, dirs in events[at + 1 :]:
            if what != "rename":
                break
            after.append(dirs[0])
        for tmp in {d for d in after if os.path.basename(d) == "tmp"}:
            delivering += 1
            assert ("fsync", (tmp,)) in window, (tmp, window)
        window = []
    return delivering
