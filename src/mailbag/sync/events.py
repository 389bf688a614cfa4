"""What a sync reports while it runs and when it ends: plain values, no printing.

The engine calls a `ProgressCallback` with `Progress` events; the CLI draws a
bar from them, tests count them. Reports are what `sync --json` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AccountReport", "FolderReport", "Progress", "ProgressCallback", "no_progress"]


@dataclass(frozen=True)
class Progress:
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


@dataclass
class FolderReport:
    """What a sync did to one folder."""

    name: str
    new: int = 0  # downloaded here
    updated: int = 0  # flag changes applied (either side)
    deleted: int = 0  # deleted here or expunged there
    uploaded: int = 0
    paired: int = 0  # matched by Message-ID and size instead of copied
    restored: int = 0  # lost local files downloaded again
    skipped: bool = False  # unchanged on both sides: not even selected
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "new": self.new,
            "updated": self.updated,
            "deleted": self.deleted,
            "uploaded": self.uploaded,
            "paired": self.paired,
            "restored": self.restored,
            "error": self.error,
            "notes": list(self.notes),
        }


@dataclass
class AccountReport:
    """What a sync did to one account."""

    name: str
    folders: list[FolderReport] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None

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
