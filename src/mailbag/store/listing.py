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

A folder's conversations are kept up to date with `FolderConversations`:
after a sync it reads what changed since the last look (one scan that returns
only the differences) and regroups only the conversations those changes touch,
instead of grouping 200,000 messages again (see `Conversations.fold`).

Nothing here prints or changes the store.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Collection, KeysView, Sequence
from typing import TYPE_CHECKING, Protocol

from mailbag.record import NamedTuple
from mailbag.store.query import _MSGID, _SUBJECT_PREFIX, base_subject

if TYPE_CHECKING:
    import sqlite3

    from mailbag.store.index import Message, Store

__all__ = [
    "Conversations",
    "FolderConversations",
    "Refreshed",
    "RowSource",
    "ThreadSummary",
    "folder_order",
    "folder_threads",
    "group_threads",
    "messages_by_id",
    "thread_order",
]

_WHEN = "COALESCE(m.date, m.internal_date)"
# conversations order by the same value their summaries carry (`latest`), so the
# order kept up to date in Python (`Conversations.fold`) is the order SQL gives
_THREAD_WHEN = "COALESCE(m.date, m.internal_date, 0.0)"
_THREAD_COLUMNS = f"m.id, {_THREAD_WHEN}, m.flags, m.message_id, m.in_reply_to, m.refs, m.subject"


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
    return group_threads(_folder_rows(store, fid))


def _folder_rows(store: Store, folder_id: int) -> list[Row]:
    return store.conn.execute(
        f"SELECT {_THREAD_COLUMNS} FROM messages m "  # noqa: S608
        f"WHERE m.folder_id = ? AND m.gone = 0 ORDER BY {_THREAD_WHEN} DESC, m.id DESC",
        (folder_id,),
    ).fetchall()


Row = tuple[int, float | None, str | None, str | None, str | None, str | None, str | None]


#: rounds of following names into other folders (a parent found elsewhere can name its own)
_ACROSS_ROUNDS = 3


def join_across_folders(
    store: Store, account: str, threads: Collection[ThreadSummary]
) -> list[ThreadSummary]:
    """`threads` (conversations of one account's folders, each grouped in its folder)
    joined where they continue in another folder, newest first: your own replies in
    the Sent folder, and messages elsewhere (an archive, the Sent copy a reply answers)
    whose Message-ID they name. Reads the Sent folder's threading headers once (a few
    ms for thousands of messages) and the Message-ID index for the rest."""
    ids = {i for t in threads for i in t.ids}
    if not ids:
        return []
    rows = {r[0]: r for r in _rows_by_id(store, ids)}
    sent = store.folder_by_role(account, "sent")
    sent_rows = [] if sent is None else _folder_rows(store, sent.id)
    sent_names = [(r, set(_names(r))) for r in sent_rows if r[0] not in rows]
    looked_up: set[str] = set()
    for _ in range(_ACROSS_ROUNDS):
        names = {n for r in rows.values() for n in _names(r)}
        fresh = names - looked_up
        if not fresh:
            break
        looked_up |= fresh
        found = [r for r, named in sent_names if r[0] not in rows and named & fresh]
        found += _rows_named(store, account, fresh)
        for r in found:
            rows.setdefault(r[0], r)
    ordered = sorted(rows.values(), key=lambda r: (r[1] or 0.0, r[0]), reverse=True)
    return group_threads(ordered)


def _rows_by_id(store: Store, ids: Collection[int]) -> list[Row]:
    return _rows_in(store.conn, "m.id", ids)


def _rows_named(store: Store, account: str, names: Collection[str]) -> list[Row]:
    """The account's messages whose Message-ID is one of `names` (by its index)."""
    return _rows_in(
        store.conn,
        "m.message_id",
        names,
        join="JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = f.account_id",
        more="AND a.name = ?",
        params=(account,),
    )


def _rows_in(
    conn: sqlite3.Connection,
    column: str,
    values: Collection[object],
    *,
    join: str = "",
    more: str = "",
    params: tuple[object, ...] = (),
) -> list[Row]:
    """The present messages whose `column` is one of `values`, `more` conditions on
    `params`, asked in chunks (SQLite's bound-parameter limit)."""
    out: list[Row] = []
    listed = list(values)
    for start in range(0, len(listed), 500):
        chunk = listed[start : start + 500]
        out += conn.execute(
            f"SELECT {_THREAD_COLUMNS} FROM messages m {join} "  # noqa: S608
            f"WHERE {column} IN ({','.join('?' * len(chunk))}) AND m.gone = 0 {more}",
            (*chunk, *params),
        ).fetchall()
    return out


def group_threads(rows: Sequence[Row]) -> list[ThreadSummary]:
    """Conversations of (id, when, flags, message_id, in_reply_to, refs, subject) rows
    given newest first; pure, so the rule is tested without a store."""
    return _summaries(rows, _link(rows)[0])


def _link(rows: Sequence[Row]) -> tuple[list[int], dict[str, int], list[tuple[int, str]]]:
    """Union-find parents of row positions; every name mentioned -> the first row that
    named it; and the (position, base subject) of replies without threading headers."""
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
    replies = _join_replies_by_subject(rows, headerless, parent) if headerless else []
    return parent, owner, replies


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


def _join_replies_by_subject(
    rows: Sequence[Row], headerless: list[int], parent: list[int]
) -> list[tuple[int, str]]:
    """Replies without threading headers join the newest original of their base subject
    (or, with no original here, one another). Returns those replies and their subjects."""
    is_reply = _SUBJECT_PREFIX.match
    replies = [
        (i, base_subject(rows[i][6] or "")) for i in headerless if is_reply(rows[i][6] or "")
    ]
    if not replies:
        return replies
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
    return replies


def _root(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = i = parent[parent[i]]
    return i


# --- conversations kept up to date ---------------------------------------------------------


class RowSource(Protocol):
    """What `Conversations.fold` asks of the folder (a store, or plain values in tests)."""

    def rows(self, ids: Collection[int]) -> list[Row]:
        """These messages' rows, newest first (the order `folder_threads` reads them in)."""
        ...

    def owners(self, names: Collection[str]) -> set[int]:
        """The messages whose Message-ID is one of `names`."""
        ...

    def headerless_with(self, keys: Collection[str]) -> set[int]:
        """The messages without threading headers whose base subject is one of `keys`
        (more is fine: the grouping rule decides)."""
        ...


def thread_order(thread: ThreadSummary) -> tuple[float, int]:
    """The sort key of conversations, newest first (as `folder_threads` orders them)."""
    return (-thread.latest, -thread.ids[0])


def _names(row: Row) -> list[str]:
    """The IDs a message names, its own included, read as `_link` reads them."""
    _, _, _, message_id, in_reply_to, refs, _ = row
    if in_reply_to or refs:
        names: list[str] = _MSGID.findall(f"{in_reply_to or ''} {refs or ''}")
        if message_id:
            names.append(message_id)
        return names
    return [message_id] if message_id else []


def _subject_key(row: Row) -> tuple[str, bool]:
    """(base subject, is a reply) of a message without threading headers; ('', False)
    for one that cannot join anything by subject."""
    if row[4] or row[5]:
        return "", False
    subject = row[6] or ""
    return base_subject(subject), bool(_SUBJECT_PREFIX.match(subject))


class Conversations:
    """A folder's conversations (`threads`, newest first) that take changes in.

    Built from all of the folder's rows once; `fold` then takes in the messages
    added and removed since, regrouping only the conversations they touch, with
    the same result as grouping everything again. Why that holds: a conversation
    is a connected group (messages sharing a named ID, or a header-less reply
    and the original of its subject), so a change can only join the groups that
    share something with it, or split the group it leaves. `fold` finds those
    groups (by Message-ID in the index, by the names here that no message owns,
    and by subject for header-less replies) and groups just their messages.
    """

    def __init__(self, rows: Sequence[Row]) -> None:
        parent, owner, replies = _link(rows)
        self.threads = _summaries(rows, parent)
        self._thread_of = {i: thread for thread in self.threads for i in thread.ids}
        self._unread = {r[0] for r in rows if "\\Seen" not in (r[2] or "")}
        owned = {r[3] for r in rows if r[3]}
        # names mentioned here that no message here has as its Message-ID (often a
        # parent elsewhere, such as your own reply in Sent) -> a message naming it:
        # a message arriving with that ID, or naming it too, joins that one
        self._dangling = {name: rows[owner[name]][0] for name in owner.keys() - owned}
        # the base subject of each header-less reply -> one such reply
        self._reply_keys = {key: rows[i][0] for i, key in replies if key}

    def __len__(self) -> int:
        return len(self._thread_of)

    def __contains__(self, message: int) -> bool:
        return message in self._thread_of

    def message_ids(self) -> KeysView[int]:
        return self._thread_of.keys()

    def thread_of(self, message: int) -> ThreadSummary | None:
        """The conversation a message is in (None: not in this folder)."""
        return self._thread_of.get(message)

    def fold(
        self,
        source: RowSource,
        added: Collection[int],
        removed: Collection[int],
        unread: set[int],
    ) -> int:
        """Take in the messages `added` and `removed` since the last build or fold (an ID
        in both was replaced by another message) and `unread`, every unread message now.
        Returns how many messages were grouped again."""
        thread_of = self._thread_of
        gone = {i for i in removed if i in thread_of}
        dropped: dict[int, ThreadSummary] = {}  # id() -> conversations regrouped

        def take(message: int) -> None:
            thread = thread_of.get(message)
            if thread is not None:
                dropped[id(thread)] = thread

        for i in gone:
            take(i)
        new_rows = source.rows(added) if added else []
        names: set[str] = set()
        keys: set[str] = set()
        for row in new_rows:
            names.update(_names(row))
            key, reply = _subject_key(row)
            if key and (reply or key in self._reply_keys):
                keys.add(key)
        related = source.owners(names) if names else set()
        related.update(j for j in map(self._dangling.get, names) if j is not None)
        if keys:
            related |= source.headerless_with(keys)
        for i in related:
            take(i)
        members = {i for thread in dropped.values() for i in thread.ids} - gone
        members.update(row[0] for row in new_rows)
        rows = source.rows(members)
        # a header-less reply joins the newest original of its subject, which may be in
        # another conversation (or just have left): bring in every message of that subject
        looked = set(keys)
        while True:
            wanted = {k for r in rows for k, reply in (_subject_key(r),) if reply and k} - looked
            if not wanted:
                break
            looked |= wanted
            for i in source.headerless_with(wanted):
                take(i)
            more = {i for thread in dropped.values() for i in thread.ids} - gone - members
            if more:
                members |= more
                rows = source.rows(members)
        parent, owner, replies = _link(rows)
        regrouped = _summaries(rows, parent)

        for i in gone:
            del thread_of[i]
            self._unread.discard(i)
        for thread in regrouped:
            for i in thread.ids:
                thread_of[i] = thread
        owned = {r[3] for r in rows if r[3]}
        for name, pos in owner.items():
            if name in owned:
                self._dangling.pop(name, None)
            else:
                self._dangling[name] = rows[pos][0]
        for pos, key in replies:
            if key:
                self._reply_keys[key] = rows[pos][0]
        for r in rows:
            if "\\Seen" in (r[2] or ""):
                self._unread.discard(r[0])
            else:
                self._unread.add(r[0])

        # read/unread changes elsewhere: those conversations keep their messages
        old = list(dropped.values())
        new = list(regrouped)
        recount: dict[int, ThreadSummary] = {}
        for i in unread.symmetric_difference(self._unread):
            flipped = thread_of.get(i)
            if flipped is not None:
                recount[id(flipped)] = flipped
        for thread in recount.values():
            count = sum(1 for i in thread.ids if i in unread)
            if count != thread.unread:
                fresh = thread._replace(unread=count)
                for i in thread.ids:
                    thread_of[i] = fresh
                old.append(thread)
                new.append(fresh)
        self._unread = set(unread)
        self._reorder(old, new)
        return len(rows)

    def _reorder(self, old: list[ThreadSummary], new: list[ThreadSummary]) -> None:
        """Swap conversations `old` for `new` in the newest-first list."""
        threads = self.threads
        if len(old) + len(new) > 64:
            # many: one pass over the list beats many inserts into it
            out = {id(t) for t in old}
            kept = [t for t in threads if id(t) not in out]
            new.sort(key=thread_order)
            self.threads = list(heapq.merge(kept, new, key=thread_order))
            return
        for thread in old:
            pos = bisect_left(threads, thread_order(thread), key=thread_order)
            if pos >= len(threads) or threads[pos] is not thread:
                raise AssertionError("conversation list out of order")  # a bug, not a state
            del threads[pos]
        for thread in new:
            insort(threads, thread, key=thread_order)


class Refreshed(NamedTuple):
    """What `FolderConversations.refresh` did."""

    full: bool  # grouped the whole folder again
    added: int
    removed: int
    regrouped: int  # messages grouped again


class _StoreRows:
    """`RowSource` over one folder of a store."""

    def __init__(self, store: Store, folder_id: int) -> None:
        self.conn = store.conn
        self.folder_id = folder_id

    def rows(self, ids: Collection[int]) -> list[Row]:
        found = _rows_in(
            self.conn, "m.id", ids, more="AND +m.folder_id = ?", params=(self.folder_id,)
        )
        found.sort(key=lambda r: (-(r[1] or 0.0), -r[0]))
        return found

    def owners(self, names: Collection[str]) -> set[int]:
        found: set[int] = set()
        wanted = list(names)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            # the unary + keeps SQLite on the Message-ID index
            found.update(
                r[0]
                for r in self.conn.execute(
                    "SELECT m.id FROM messages m WHERE m.message_id IN "  # noqa: S608
                    f"({','.join('?' * len(chunk))}) AND +m.folder_id = ? AND m.gone = 0",
                    (*chunk, self.folder_id),
                )
            )
        return found

    def headerless_with(self, keys: Collection[str]) -> set[int]:
        # a scan: only header-less replies (rare in real mail) bring it here
        wanted = set(keys)
        likes = " OR ".join("m.subject LIKE ? ESCAPE '\\'" for _ in wanted)
        rows = self.conn.execute(
            "SELECT m.id, m.subject FROM messages m WHERE m.folder_id = ? AND m.gone = 0 "  # noqa: S608
            "AND COALESCE(m.in_reply_to, '') = '' AND COALESCE(m.refs, '') = '' "
            f"AND ({likes})",
            (self.folder_id, *map(_like_any_case, wanted)),
        )
        return {i for i, subject in rows if base_subject(subject or "") in wanted}


def _like_any_case(key: str) -> str:
    """A LIKE pattern matching every subject whose lower-cased form contains `key`.
    LIKE folds ASCII case only, so other characters (and i and k, which 'İ' and the
    Kelvin sign lower-case to) match as wildcards; the caller checks exactly."""
    out = []
    for c in key:
        if c in "ik" or not c.isascii():
            out.append("_" if c in "ik" else "%")
        elif c in "%_\\":
            out.append("\\" + c)
        else:
            out.append(c)
    return "%" + "".join(out) + "%"


#: more changes than this (or a tenth of the folder) and the folder is grouped whole again
REGROUP_WHOLE_AT = 1000


def _ints(text: str | None) -> list[int]:
    return [int(x) for x in text.split(",")] if text else []


class FolderConversations:
    """One folder's conversations, kept current by `refresh` (call it after a sync; it
    reads the store, so run it in a worker for big folders).

    The first refresh groups the whole folder; later ones read what changed since
    (one scan returning only new message IDs and the unread ones; a second one
    only when messages left) and fold that in. The whole folder is grouped again
    when that is as cheap (many changes) or the folder is not the same any more
    (deleted and made again, or a new UIDVALIDITY).
    """

    def __init__(self, account: str, folder: str) -> None:
        self.account = account
        self.folder = folder
        self.grouped: Conversations | None = None
        self._identity: tuple[int, int | None] | None = None  # folder row ID, UIDVALIDITY
        self._max_id = 0
        self._max_added = 0.0
        self._id_sum = 0

    @property
    def threads(self) -> list[ThreadSummary]:
        return [] if self.grouped is None else self.grouped.threads

    def refresh(self, store: Store) -> Refreshed:
        conn = store.conn
        own_transaction = not conn.in_transaction
        if own_transaction:
            conn.execute("BEGIN")  # one snapshot for every read below
        try:
            return self._refresh(store)
        finally:
            if own_transaction and conn.in_transaction:
                conn.execute("COMMIT")

    def _refresh(self, store: Store) -> Refreshed:
        found = store.find_folder(self.account, self.folder)
        if found is None:
            self.grouped, self._identity = None, None
            return Refreshed(True, 0, 0, 0)
        identity = (found.id, found.uidvalidity)
        grouped = self.grouped
        if grouped is None or identity != self._identity:
            return self._rebuild(store, identity)
        # when the folder is most of the store, reading the table in order is faster
        # than going through the folder index
        total = store.conn.execute("SELECT max(id) FROM messages").fetchone()[0] or 0
        folder_col = "+m.folder_id" if len(grouped) * 3 > total else "m.folder_id"
        count, id_sum, max_id, max_added, new_text, unread_text = store.conn.execute(
            "SELECT count(*), COALESCE(sum(m.id), 0), max(m.id), max(m.added), "  # noqa: S608
            "group_concat(CASE WHEN m.id > ? OR m.added > ? THEN m.id END), "
            "group_concat(CASE WHEN instr(m.flags, '\\Seen') = 0 THEN m.id END) "
            f"FROM messages m WHERE {folder_col} = ? AND m.gone = 0",
            (self._max_id, self._max_added, found.id),
        ).fetchone()
        added = _ints(new_text)
        # a new row can take the ID of a removed one (SQLite reuses the highest): it is
        # new by its `added` time, and the message that had the ID is gone (only a reused
        # ID while the clock went back would go unseen: `added` is time.time())
        removed = {i for i in added if i in grouped}
        left = len(grouped) - len(removed) + len(added) - count
        # the IDs that left add up to what the folder's sum of IDs lost: one gone (the
        # usual case after a sync) is found without reading the folder's IDs
        left_sum = self._id_sum - sum(removed) + sum(added) - id_sum
        if left == 1 and left_sum in grouped and left_sum not in removed:
            removed.add(left_sum)
        elif left > 0:
            (present,) = store.conn.execute(
                f"SELECT group_concat(m.id) FROM messages m WHERE {folder_col} = ? "  # noqa: S608
                "AND m.gone = 0",
                (found.id,),
            ).fetchone()
            removed.update(grouped.message_ids() - set(_ints(present)))
        if len(added) + len(removed) > max(REGROUP_WHOLE_AT, count // 10):
            return self._rebuild(store, identity)  # as cheap, and simpler
        regrouped = grouped.fold(
            _StoreRows(store, found.id), added, removed, set(_ints(unread_text))
        )
        self._max_id = max(self._max_id, max_id or 0)
        self._max_added = max(self._max_added, max_added or 0.0)
        self._id_sum = id_sum
        return Refreshed(False, len(added), len(removed), regrouped)

    def _rebuild(self, store: Store, identity: tuple[int, int | None]) -> Refreshed:
        rows = _folder_rows(store, identity[0])
        self.grouped = Conversations(rows)
        self._identity = identity
        self._id_sum = sum(r[0] for r in rows)
        self._max_id, self._max_added = store.conn.execute(
            "SELECT COALESCE(max(id), 0), COALESCE(max(added), 0.0) FROM messages m "
            "WHERE m.folder_id = ?",
            (identity[0],),
        ).fetchone()
        return Refreshed(True, len(rows), 0, len(rows))
