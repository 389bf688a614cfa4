"""What a sync reports while it runs and when it ends: plain values, no printing.

The engine calls a `ProgressCallback` with `Progress` events; the CLI draws a
bar from them, tests count them. Reports are what `sync --json` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

from mailbag.record import NamedTuple, Record

__all__ = ["AccountReport", "FolderReport", "Progress", "ProgressCallback", "no_progress"]


class Progress(NamedTuple):
    """One progress event of a sync, for the progress callback."""

    account: str
    folder: str | None
    #: "plan" (totals known for a folder), "message" (one downloaded/uploaded),
    #: "folder-done", "retry", "note"
    kind: str
    messages: int = 0
    bytes: int = 0
    detail: str = ""


ProgressCallback = Callable[[Progress], None]


def no_progress(event: Progress) -> None:
    """The callback that ignores everything."""


class FolderReport(Record):
    """What a sync did to one folder: what was done and committed, also when a step
    failed and the folder was tried again (then `error` is None) or not (`error`)."""

    __slots__ = (
        "deleted",
        "error",
        "kept",
        "name",
        "new",
        "notes",
        "paired",
        "paired_again",
        "paired_by_hash",
        "restored",
        "skipped",
        "updated",
        "uploaded",
    )
    name: str
    new: int  # downloaded here
    updated: int  # flag changes applied (either side)
    deleted: int  # deleted here or expunged there
    uploaded: int
    paired: int  # matched by Message-ID and size instead of copied
    paired_again: int  # of those, after a UIDVALIDITY change (all its pairings)
    paired_by_hash: int  # of those, without a Message-ID: by size and header hash
    restored: int  # lost local files downloaded again
    skipped: bool  # unchanged on both sides: not even selected
    error: str | None
    notes: list[str]
    #: the counts and how many notes there were at the index's last commit of this
    #: folder's changes (`committed`)
    kept: tuple[int, ...]
    _hidden = ("kept",)

    def __init__(
        self,
        name: str,
        new: int = 0,
        updated: int = 0,
        deleted: int = 0,
        uploaded: int = 0,
        paired: int = 0,
        restored: int = 0,
        skipped: bool = False,
        error: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.name = name
        self.new = new
        self.updated = updated
        self.deleted = deleted
        self.uploaded = uploaded
        self.paired = paired
        self.paired_again = 0
        self.paired_by_hash = 0
        self.restored = restored
        self.skipped = skipped
        self.error = error
        self.notes = [] if notes is None else notes
        self.kept = (updated, deleted, uploaded, paired, 0, 0, len(self.notes))

    def committed(self) -> None:
        """What is counted so far is in the index for good: a later failure keeps it.
        Called where a folder's changes are committed before a step that may fail (a
        server command). Downloads count only what is committed (`new`, `restored`:
        not kept here)."""
        self.kept = (*_kept_counts(self), len(self.notes))

    def rolled_back(self) -> None:
        """Forget what was counted since `committed`: it was rolled back, and a retry
        does it again (or the report says it was not done)."""
        *counts, notes = self.kept
        for name, value in zip(_KEPT, counts, strict=True):
            setattr(self, name, value)
        del self.notes[notes:]

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "new": self.new,
            "updated": self.updated,
            "deleted": self.deleted,
            "uploaded": self.uploaded,
            "paired": self.paired,
            "paired_again": self.paired_again,
            "paired_by_hash": self.paired_by_hash,
            "restored": self.restored,
            "error": self.error,
            "notes": list(self.notes),
        }


#: the counts of `FolderReport` that a failed try's rollback takes back
_KEPT = ("updated", "deleted", "uploaded", "paired", "paired_again", "paired_by_hash")
_kept_counts = attrgetter(*_KEPT)


class AccountReport(Record):
    """What a sync did to one account."""

    __slots__ = ("error", "folders", "hint", "name")
    name: str
    folders: list[FolderReport]
    error: str | None
    hint: str | None

    def __init__(
        self,
        name: str,
        folders: list[FolderReport] | None = None,
        error: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.name = name
        self.folders = [] if folders is None else folders
        self.error = error
        self.hint = hint

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.error is None for f in self.folders)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "folders": [f.to_json() for f in self.folders],
            "error": self.error or next((f.error for f in self.folders if f.error), None),
        }
