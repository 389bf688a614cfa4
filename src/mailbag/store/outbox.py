"""The local Outbox: every outgoing message is on disk before any network I/O.

Layout under `Paths.data_dir/outbox/`::

    tmp/<id>/            being written (a crash leaves it here; `recover` removes it)
    queue/<id>/message.eml   the exact bytes that will be sent (CRLF, no Bcc header)
    queue/<id>/state.json    the small state record (see `OutboxRecord`)
    lock                 held (flock) by whoever is sending, so two processes never
                         send the same message

Writing a message: files into tmp/<id>/, fsync them, rename the directory into
queue/, fsync queue/. Changing a state: write state.json.tmp, fsync, rename over
state.json, fsync the directory. So after a crash a message is either fully in
the queue with a state that was true at some moment, or not queued at all.

States (the sender in `mailbag.sync.outbox` moves between them)::

    queued ──> sending ──> data ──> sent ──(Sent copy done)──> removed
      ^  <──(4xx, offline)──┘         │
      └──────── retry ──── failed <───┘ (5xx: kept for the user)
                           uncertain   (crashed or cut off after the message
                                        was handed over: never resent by itself)
    draft ──(saved to Drafts)──> removed

`sending` means "an attempt may be connecting, but the end of the message has
not been sent": a crash there is safe to retry. `data` is written *before* the
final "." of the DATA phase leaves: from then on the server may have accepted
the message, so a crash there becomes `uncertain` instead of a second send.

This module only keeps records; it never talks to a server.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from mailbag.errors import StoreError, UsageError
from mailbag.filelock import flock_within
from mailbag.paths import Paths
from mailbag.store.maildir import fsync_dir, fsync_file

__all__ = ["CopyState", "Outbox", "OutboxLocked", "OutboxRecord", "OutboxState"]

MESSAGE_FILE = "message.eml"
STATE_FILE = "state.json"
#: history entries kept per record (enough to explain what happened)
MAX_HISTORY = 30


class OutboxState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DATA = "data"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    DRAFT = "draft"


class CopyState(StrEnum):
    """The copy of a sent message in the Sent folder."""

    PENDING = "pending"  # not made yet
    APPENDING = "appending"  # an APPEND was started: check before trying again
    DONE = "done"
    SKIPPED = "skipped"  # the server files sent mail itself


class OutboxLocked(StoreError):
    """Another mailbag process is sending from this outbox right now."""


@dataclass
class OutboxRecord:
    id: str
    account: str
    state: OutboxState
    message_id: str
    envelope_from: str
    #: recipients not yet accepted by the server (the next attempt sends to these)
    recipients: list[str]
    subject: str = ""
    size: int = 0
    created: float = 0.0
    bcc: list[str] = field(default_factory=list)
    smtputf8: bool = False
    eight_bit: bool = False
    #: recipients the server accepted in an earlier attempt (never sent to again)
    delivered: list[str] = field(default_factory=list)
    #: recipients refused for good: [{"address", "reply"}]
    rejected: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    attempt_id: str | None = None
    next_attempt: float | None = None
    #: {"message", "reply", "code", "permanent", "cause"}
    last_error: dict[str, Any] | None = None
    copy: CopyState = CopyState.PENDING
    sent_at: float | None = None
    #: the local store ID of the message this one replies to (flagged \\Answered once sent)
    answers: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def note(self, event: str, detail: str = "") -> None:
        self.history.append({"time": round(time.time(), 3), "event": event, "detail": detail})
        del self.history[:-MAX_HISTORY]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["copy"] = self.copy.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboxRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = OutboxState(values["state"])
        values["copy"] = CopyState(values.get("copy", CopyState.PENDING.value))
        return cls(**values)


def _new_id() -> str:
    # short, sortable by creation time, unique enough for one user's outbox
    return format(int(time.time()), "x")[-6:] + secrets.token_hex(3)


class Outbox:
    """The outbox of one mailbag home."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.queue_dir = root / "queue"
        self.tmp_dir = root / "tmp"

    @staticmethod
    def has_entries(paths: Paths) -> bool:
        """Anything queued, or left in tmp/ by a crash? (`outbox_probe.has_entries`)"""
        from mailbag.store.outbox_probe import has_entries

        return has_entries(paths)

    @classmethod
    def open(cls, paths: Paths) -> Outbox:
        box = cls(paths.data_dir / "outbox")
        box.create()
        return box

    def create(self) -> None:
        try:
            for d in (self.root, self.queue_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"cannot create the outbox at {self.root}: {exc}") from exc

    # --- adding -----------------------------------------------------------------------

    def add(self, record: OutboxRecord, data: bytes) -> OutboxRecord:
        """Write message and record durably; returns the record with its new id."""
        record.id = record.id or _new_id()
        while (self.queue_dir / record.id).exists():
            record.id = _new_id()
        record.size = len(data)
        record.created = record.created or time.time()
        tmp = self.tmp_dir / record.id
        try:
            tmp.mkdir(mode=0o700)
            (tmp / MESSAGE_FILE).write_bytes(data)
            (tmp / STATE_FILE).write_text(json.dumps(record.to_json(), indent=1))
            fsync_file(tmp / MESSAGE_FILE)
            fsync_file(tmp / STATE_FILE)
            fsync_dir(tmp)
            tmp.rename(self.queue_dir / record.id)
            fsync_dir(self.queue_dir)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(
                f"cannot write to the outbox at {self.root}: {exc.strerror or exc}",
                hint="check free disk space and permissions; nothing was sent",
            ) from exc
        return record

    # --- reading ----------------------------------------------------------------------

    def ids(self) -> list[str]:
        try:
            return sorted(p.name for p in self.queue_dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def records(self) -> list[OutboxRecord]:
        out = []
        for mid in self.ids():
            with contextlib.suppress(UsageError):
                out.append(self.get(mid))
        return out

    def get(self, record_id: str) -> OutboxRecord:
        path = self.queue_dir / record_id / STATE_FILE
        if "/" in record_id or record_id.startswith(".") or not path.is_file():
            raise UsageError(
                f"no outbox message {record_id!r}",
                hint="`mailbag outbox` lists the messages waiting to be sent",
            )
        try:
            return OutboxRecord.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"outbox record {path} is unreadable: {exc}") from exc

    def message_path(self, record_id: str) -> Path:
        return self.queue_dir / record_id / MESSAGE_FILE

    def read_message(self, record_id: str) -> bytes:
        try:
            return self.message_path(record_id).read_bytes()
        except OSError as exc:
            raise StoreError(f"outbox message {record_id} is unreadable: {exc}") from exc

    # --- changing ---------------------------------------------------------------------

    def save(self, record: OutboxRecord) -> None:
        """Replace the state record atomically and durably."""
        folder = self.queue_dir / record.id
        tmp = folder / (STATE_FILE + ".tmp")
        try:
            with tmp.open("w") as fh:
                fh.write(json.dumps(record.to_json(), indent=1))
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(folder / STATE_FILE)
            fsync_dir(folder)
        except OSError as exc:
            raise StoreError(
                f"cannot update outbox record {record.id}: {exc.strerror or exc}"
            ) from exc

    def remove(self, record_id: str) -> None:
        """Take a message out of the queue (sent and copied, saved as draft, dropped)."""
        src = self.queue_dir / record_id
        if not src.is_dir():
            return
        gone = self.tmp_dir / f"removed-{record_id}-{secrets.token_hex(2)}"
        src.rename(gone)
        fsync_dir(self.queue_dir)
        shutil.rmtree(gone, ignore_errors=True)

    def recover(self) -> list[OutboxRecord]:
        """After a crash: drop half-written entries, settle interrupted attempts.

        Must be called with the lock held. `sending` goes back to `queued` (the end
        of the message was never sent); `data` becomes `uncertain` (it may have
        been delivered; resending could make a duplicate, so the user decides).
        Returns the records that changed.
        """
        for leftover in self.tmp_dir.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
        changed = []
        for record in self.records():
            if record.state is OutboxState.SENDING:
                record.state = OutboxState.QUEUED
                record.note("recovered", "interrupted before the message was handed over")
            elif record.state is OutboxState.DATA:
                record.state = OutboxState.UNCERTAIN
                record.last_error = {
                    "message": "interrupted while the server was receiving the message: "
                    "it may have been delivered",
                    "reply": None,
                    "code": None,
                    "permanent": False,
                    "cause": "uncertain",
                }
                record.note("recovered", "interrupted during DATA; outcome unknown")
            else:
                continue
            record.attempt_id = None
            self.save(record)
            changed.append(record)
        return changed

    # --- one sender at a time -------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, *, wait: float = 0.0) -> Iterator[None]:
        """Hold the outbox lock; raises OutboxLocked if still busy after `wait` s."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not flock_within(fd, wait):
                raise OutboxLocked(
                    "another mailbag process is sending from the outbox",
                    hint="wait for it to finish, then run `mailbag outbox flush`",
                )
            yield
        finally:
            os.close(fd)  # closing releases the lock
