"""What `read`, `flag`, `move` and `delete` do to the local store.

Every change is made locally (file and index) and left for the next sync to
apply on the server: flags are compared with the flags last agreed on, a
moved message remembers where the server copy still is, and a deleted one
stays as a tombstone until the server has expunged it (see `store.index`).
Nothing here talks to a server or prints.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailbag.errors import UsageError

if TYPE_CHECKING:
    from mailbag.store.index import Folder, Message, Store

__all__ = ["FLAG_NAMES", "apply_flag_changes", "delete", "find_target_folder", "mark_seen"]

FLAG_NAMES = {
    "seen": "\\Seen",
    "read": "\\Seen",
    "flagged": "\\Flagged",
    "flag": "\\Flagged",
    "starred": "\\Flagged",
    "answered": "\\Answered",
    "replied": "\\Answered",
    "draft": "\\Draft",
}
# an IMAP keyword: an atom without the characters IMAP reserves
_KEYWORD = re.compile(r"^\$?[A-Za-z0-9_.\-]{1,64}$")


def parse_flag_changes(changes: list[str]) -> tuple[set[str], set[str]]:
    """`+seen -flagged +$Label` -> (flags to add, flags to remove)."""
    add: set[str] = set()
    remove: set[str] = set()
    if not changes:
        raise UsageError("no flag change given", hint="for example: mailbag flag ID +flagged -seen")
    for change in changes:
        sign, name = change[:1], change[1:]
        if sign not in "+-" or not name:
            raise UsageError(
                f"cannot read the flag change {change!r}",
                hint="use +NAME to set and -NAME to clear (seen, flagged, answered, draft)",
            )
        flag = FLAG_NAMES.get(name.lower().lstrip("\\"))
        if flag is None:
            if name.startswith("\\") or not _KEYWORD.match(name):
                raise UsageError(
                    f"unknown flag {name!r}",
                    hint="use seen, flagged, answered, draft, or a keyword like $Label1",
                )
            flag = name
        (add if sign == "+" else remove).add(flag)
        (remove if sign == "+" else add).discard(flag)
    return add, remove


def apply_flag_changes(store: Store, message: Message, changes: list[str]) -> Message:
    add, remove = parse_flag_changes(changes)
    flags = (set(message.flags) | add) - remove
    if flags == set(message.flags):
        return message
    return store.set_flags(message, flags)


def mark_seen(store: Store, message: Message) -> Message:
    """What reading does: \\Seen locally; the next sync pushes it."""
    if message.seen:
        return message
    return store.set_flags(message, set(message.flags) | {"\\Seen"})


def find_target_folder(store: Store, account: str, name: str) -> Folder:
    folder = store.find_folder(account, name)
    if folder is None and name.upper() == "INBOX":
        folder = next((f for f in store.folders(account) if f.name.upper() == "INBOX"), None)
    if folder is None:
        known = ", ".join(f.name for f in store.folders(account)[:20]) or "none yet"
        raise UsageError(
            f"no folder {name!r} in account {account!r}",
            hint=f"known folders: {known} (`mailbag folders` lists them)",
        )
    return folder


def _trash(store: Store, account: str) -> Folder | None:
    folder = store.folder_by_role(account, "trash")
    if folder is not None:
        return folder
    for f in store.folders(account):
        if f.name.rsplit(f.delimiter or "/", 1)[-1].lower() in ("trash", "deleted items"):
            return f
    return None


def delete(store: Store, message: Message, *, expunge: bool = False) -> Message | None:
    """Move to Trash (returns the message there), or remove for good (returns None).

    A message already in Trash is removed for good, as mail clients do.
    """
    if expunge:
        store.remove(message)
        return None
    trash = _trash(store, message.account)
    if trash is None:
        raise UsageError(
            f"account {message.account!r} has no Trash folder",
            hint="use --expunge to delete for good, or `mailbag move ID FOLDER`",
        )
    if trash.id == message.folder_id:
        store.remove(message)
        return None
    return store.move(message, trash)
