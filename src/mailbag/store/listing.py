"""What a message list shows: a folder's order, flat or by conversation, and pages of it.

A list of 200,000 messages must open and scroll without building 200,000
`Message` values, so the order is a list of row IDs (one narrow query) and
the rows on screen are fetched a page at a time (`messages_by_id`).

Conversations (`folder_threads`) are computed once per folder from the
threading headers the index keeps, with the same rule as `mailbag thread`
(`store.query.thread`): two messages belong together when one's Message-ID,
In-Reply-To or References names an ID the other's do. That is a union over
shared IDs, done in one pass over the folder. Messages without any threading
header fall back to their subject, but only when one of them says it is a
reply (`Re:`/`Fwd:`): two unrelated mails both called "Hello" stay apart.

Nothing here prints or changes the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from mailbag.store.query import _MSGID, _SUBJECT_PREFIX, base_subject

if TYPE_CHECKING:
    from mailbag.store.index import Message, Store

__all__ = ["ThreadSummary", "folder_order", "folder_threads", "messages_by_id"]

_WHEN = "COALESCE(m.date, m.internal_date)"


class ThreadSummary(NamedTuple):
    """One conversation of a folder: its message row IDs, newest first.

    A named tuple rather than a dataclass: a big folder makes 200,000 of them,
    and a tuple is made five times faster."""

    ids: tuple[int, ...]
    latest: float
    unread: int

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def newest(self) -> int:
        return self.ids[0]


def _folder_id(store: Store, account: str, folder: str) -> int | None:
    found = store.find_folder(account, folder)
    return None if found is None else found.id


def folder_order(store: Store, account: str, folder: str, *, first: int | None = None) -> list[int]:
    """Row IDs of the folder's messages, newest first (as `Store.messages` orders them).

    `first=N` asks for the newest N only: that walks the newest-first index and
    stops (under a millisecond on 200,000 messages, where sorting the whole
    folder takes 150 ms), so a screen can show the top at once and load the rest
    after.
    """
    fid = _folder_id(store, account, folder)
    if fid is None:
        return []
    if first is None:
        rows = store.conn.execute(
            f"SELECT m.id FROM messages m WHERE m.folder_id = ? AND m.gone = 0 "  # noqa: S608
            f"ORDER BY {_WHEN} DESC, m.id DESC",
            (fid,),
        )
    else:
        # the unary + keeps SQLite off the folder index, so it walks the date order
        rows = store.conn.execute(
            f"SELECT m.id FROM messages m WHERE +m.folder_id = ? AND m.gone = 0 "  # noqa: S608
            f"ORDER BY {_WHEN} DESC, m.id DESC LIMIT ?",
            (fid, first),
        )
    return [r[0] for r in rows]


def messages_by_id(store: Store, ids: Sequence[int]) -> list[Message]:
    """The messages with these row IDs, in the order given (missing or gone ones left out)."""
    from mailbag.store.index import _MESSAGE_COLUMNS, _MESSAGE_FROM, _message

    found: dict[int, Message] = {}
    for start in range(0, len(ids), 500):  # SQLite's parameter limit is far above this
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        sql = (
            f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} "  # noqa: S608
            f"WHERE m.gone = 0 AND m.id IN ({marks})"
        )
        for row in store.conn.execute(sql, chunk):
            message = _message(row)
            found[message.id] = message
    return [found[i] for i in ids if i in found]


def folder_threads(store: Store, account: str, folder: str) -> list[ThreadSummary]:
    """The folder's conversations, the one with the newest message first."""
    fid = _folder_id(store, account, folder)
    if fid is None:
        return []
    rows = store.conn.execute(
        f"SELECT m.id, {_WHEN}, m.flags, m.message_id, m.in_reply_to, m.refs, m.subject "  # noqa: S608
        f"FROM messages m WHERE m.folder_id = ? AND m.gone = 0 ORDER BY {_WHEN} DESC, m.id DESC",
        (fid,),
    ).fetchall()
    return group_threads(rows)


Row = tuple[int, float | None, str | None, str | None, str | None, str | None, str | None]


def group_threads(rows: Sequence[Row]) -> list[ThreadSummary]:
    """Conversations of (id, when, flags, message_id, in_reply_to, refs, subject) rows
    given newest first; pure, so the rule is tested without a store."""
    # union-find over row positions, written out inline: this runs over every
    # message of a folder (200,000 in 0.5 s is the budget), and calls cost
    parent = list(range(len(rows)))
    owner: dict[str, int] = {}  # a Message-ID -> the first row that named it
    headerless: list[int] = []
    findall = _MSGID.findall
    for i, (_, _, _, message_id, in_reply_to, refs, _) in enumerate(rows):
        if in_reply_to or refs:
            names = findall(f"{in_reply_to or ''} {refs or ''}")
            if message_id:
                names.append(message_id)
        elif message_id:
            headerless.append(i)
            names = [message_id]
        else:
            headerless.append(i)
            continue
        for name in names:
            j = owner.setdefault(name, i)
            if j == i:
                continue
            while parent[j] != j:
                parent[j] = j = parent[parent[j]]
            k = i
            while parent[k] != k:
                parent[k] = k = parent[parent[k]]
            if j != k:
                parent[max(j, k)] = min(j, k)
    if headerless:
        _join_replies_by_subject(rows, headerless, parent)
    return _summaries(rows, parent)


def _summaries(rows: Sequence[Row], parent: list[int]) -> list[ThreadSummary]:
    # A group's root is its lowest position, which is its newest row (rows come
    # newest first): walking positions in order meets every conversation at its
    # newest message, so the result is newest conversation first, and each
    # conversation's IDs are newest first. Most mail is not part of a
    # conversation, so single messages take the short way.
    for i in range(len(parent)):
        root = parent[i]
        while parent[root] != root:
            root = parent[root]
        parent[i] = root
    has_replies = {root for i, root in enumerate(parent) if root != i}
    out: list[ThreadSummary | list[int]] = []
    groups: dict[int, list[int]] = {}
    for i, root in enumerate(parent):
        if root != i:
            groups[root].append(i)
        elif i in has_replies:
            groups[i] = [i]
            out.append(groups[i])
        else:
            row = rows[i]
            unread = 0 if "\\Seen" in (row[2] or "") else 1
            out.append(ThreadSummary((row[0],), row[1] or 0.0, unread))
    threads = []
    for item in out:
        if isinstance(item, ThreadSummary):
            threads.append(item)
            continue
        unread = sum(1 for p in item if "\\Seen" not in (rows[p][2] or ""))
        ids = tuple(rows[p][0] for p in item)
        threads.append(ThreadSummary(ids, rows[item[0]][1] or 0.0, unread))
    return threads


def _join_replies_by_subject(rows: Sequence[Row], headerless: list[int], parent: list[int]) -> None:
    """Replies without threading headers join the newest original of their base subject
    (or, with no original here, one another)."""
    is_reply = _SUBJECT_PREFIX.match
    replies = [
        (i, base_subject(rows[i][6] or "")) for i in headerless if is_reply(rows[i][6] or "")
    ]
    if not replies:
        return
    wanted = {base for _, base in replies if base}
    target: dict[str, int] = {}
    for i in headerless:
        base = (rows[i][6] or "").strip().lower()
        if base in wanted and not is_reply(base):
            target.setdefault(base, i)  # newest original first
    for i, base in replies:
        if not base:
            continue
        j = target.setdefault(base, i)
        if j != i:
            a, b = _root(parent, j), _root(parent, i)
            parent[max(a, b)] = min(a, b)


def _root(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = i = parent[parent[i]]
    return i
