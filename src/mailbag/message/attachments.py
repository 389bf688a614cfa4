"""Attachments: listing, safe file names, saving without surprises.

A sender chooses attachment names, so a name is only ever used as a *base
name* inside the folder the user picked: no `../`, no absolute paths, no
backslashes, no control or bidi characters (after RFC 2231 and RFC 2047
decoding, so `%2e%2e%2f` tricks are caught too), and an existing file is
never overwritten: a new name is picked instead. Files are created with
O_EXCL, so a symlink planted in the folder is not followed either.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from mailbag.errors import StoreError, UsageError
from mailbag.message.parse import ParsedMessage, Part

__all__ = ["Attachment", "list_attachments", "safe_filename", "save_attachments"]

MAX_NAME_BYTES = 200
_EXT_BY_TYPE = {
    "text/plain": ".txt",
    "text/html": ".html",
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "message/rfc822": ".eml",
    "application/zip": ".zip",
}
# Windows device names are harmless on Linux but make the file unusable elsewhere
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_BIDI_AND_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Attachment:
    index: int  # 1-based, as shown by `attachments`
    part: Part
    name: str  # the sender's name, decoded (display only, never a path)
    content_type: str
    size: int  # decoded size in bytes

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "part": self.part.path,
            "name": self.name,
            "type": self.content_type,
            "size": self.size,
        }


def list_attachments(msg: ParsedMessage) -> list[Attachment]:
    out = []
    for i, part in enumerate(msg.attachments(), 1):
        data, _ = msg.payload(part)
        name = part.filename or ""
        if not name and part.message_headers is not None:
            subject = part.message_headers.decoded("Subject")
            name = f"{subject}.eml" if subject else ""
        out.append(Attachment(i, part, name, part.content_type, len(data)))
    return out


def safe_filename(name: str | None, *, fallback: str = "attachment", content_type: str = "") -> str:
    """A base name that is safe to create inside a chosen folder."""
    text = unicodedata.normalize("NFC", name or "")
    text = _BIDI_AND_CONTROL.sub("", text)
    # keep only the last path component, whatever separator the sender used
    text = re.split(r"[/\\]", text)[-1]
    text = text.replace(":", "_").strip().strip(".").strip()
    if _RESERVED.match(text):
        text = "_" + text
    if not text:
        text = fallback + _EXT_BY_TYPE.get(content_type, ".bin")
    return _shorten(text)


def _shorten(name: str, limit: int = MAX_NAME_BYTES) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 10:
        stem, ext = name, ""
    ext = "." + ext if ext else ""
    budget = limit - len(ext.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return cut + ext


def _candidates(name: str) -> list[str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    ext = "." + ext if ext else ""
    return [name] + [_shorten(f"{stem} ({n}){ext}") for n in range(1, 1000)]


def _create_exclusive(folder: Path, name: str, data: bytes) -> Path:
    for candidate in _candidates(name):
        path = folder / candidate
        try:
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600
            )
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path
    raise StoreError(f"could not find a free file name for {name!r} in {folder}")


def save_attachments(
    msg: ParsedMessage, folder: Path, *, only: set[int] | None = None
) -> list[tuple[Attachment, Path]]:
    """Write attachments into `folder` (which must exist); returns where each went."""
    if not folder.is_dir():
        raise UsageError(
            f"{folder} is not a folder", hint="create it first, or give an existing folder"
        )
    saved = []
    for att in list_attachments(msg):
        if only is not None and att.index not in only:
            continue
        data, _ = msg.payload(att.part)
        if att.part.message_headers is not None:
            data = msg.body_bytes(att.part)  # an attached message is saved as it is
        name = safe_filename(
            att.name, fallback=f"attachment-{att.index}", content_type=att.content_type
        )
        try:
            path = _create_exclusive(folder, name, data)
        except OSError as exc:
            raise StoreError(f"cannot write {folder / name}: {exc.strerror}") from exc
        saved.append((att, path))
    return saved
