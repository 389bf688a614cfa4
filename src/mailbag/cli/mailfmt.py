"""How messages look on the terminal and in JSON (list, search, read, thread).

Every string that came from mail passes through `clean_terminal` here, in the
human output and in the JSON documents alike (a JSON document is often read on
a terminal too). Imports stay light: `mailbag list` must start fast.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from mailbag.textsafe import clean_terminal

if TYPE_CHECKING:
    from mailbag.store.index import Message

_NAME_ADDR = re.compile(r'^\s*"?(.*?)"?\s*<([^<>]*)>\s*$')


def display_name(addresses: str) -> str:
    """The sender's name for a listing ("Name <a@b>" -> "Name")."""
    first = addresses.split(",")[0] if "<" not in addresses else addresses
    m = _NAME_ADDR.match(first)
    if m:
        return m.group(1).strip() or m.group(2).strip()
    return first.strip()


def when(message: Message) -> dt.datetime | None:
    ts = message.date if message.date is not None else message.internal_date
    if ts is None:
        return None
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_date(message: Message) -> str | None:
    d = when(message)
    return d.isoformat() if d else None


def short_date(message: Message) -> str:
    d = when(message)
    return d.astimezone().strftime("%Y-%m-%d %H:%M") if d else " " * 16


def flag_marks(message: Message) -> str:
    flags = message.flags
    return (
        ("N" if "\\Seen" not in flags else " ")
        + ("!" if "\\Flagged" in flags else " ")
        + ("R" if "\\Answered" in flags else " ")
        + ("@" if message.has_attachments else " ")
    )


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" or value >= 10 else f"{value:.1f}{unit}"
        value /= 1024
    return f"{size}B"  # pragma: no cover


def _fit(text: str, width: int) -> str:
    text = clean_terminal(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def list_line(message: Message, *, id_width: int, show_folder: bool) -> str:
    parts = [
        message.short_id.rjust(id_width),
        short_date(message),
        flag_marks(message),
        human_size(message.size).rjust(5),
        _fit(display_name(message.from_addr), 22).ljust(22),
    ]
    if show_folder:
        parts.append(_fit(message.folder, 12).ljust(12))
    parts.append(_fit(message.subject or "(no subject)", 70))
    return "  ".join(parts)


def list_lines(messages: list[Message]) -> list[str]:
    if not messages:
        return []
    width = max(len(m.short_id) for m in messages)
    folders = {(m.account, m.folder) for m in messages}
    return [list_line(m, id_width=width, show_folder=len(folders) > 1) for m in messages]


def envelope_json(message: Message) -> dict[str, Any]:
    """The contract's list/search element."""
    c = clean_terminal
    return {
        "id": message.short_id,
        "account": c(message.account),
        "folder": c(message.folder),
        "date": iso_date(message),
        "from": c(message.from_addr),
        "to": c(message.to_addrs),
        "subject": c(message.subject),
        "flags": sorted(c(f) for f in message.flags),
        "size": message.size,
        "has_attachments": message.has_attachments,
    }
