"""Full-text index: an SQLite FTS5 table beside the message index.

One row per message (rowid = `messages.id`) with the subject, sender, recipients,
Cc, the rendered body text (text/plain, or HTML reduced to its words) and the
attachment names.

Keeping it in step does not depend on every writer remembering to: triggers
on `messages` put each new row on a to-do list (`fulltext_todo`) and each row
that is deleted or becomes a tombstone on a list of index rows to drop
(`fulltext_gone`). The store's hook indexes a message as it is added (and
ticks it off the list); a writer that defers indexing (the sync, for speed)
leaves it on the list, and `search` catches up with `index_missing` first,
which drops the index rows of the messages gone, indexes the new ones, and is
one tiny query when nothing is pending. A message deleted while still on the
to-do list was never indexed: it only leaves that list, so neither list grows
with mail that comes and goes between searches (a store synced for months and
never searched keeps both as small as its mailbox). `rebuild` recreates everything from
the Maildir files.

Why dropping is deferred: an FTS5 row is deleted by tokenizing its whole
text again (to find its terms). Done in the trigger, deleting 165 messages of
a searchable 20,000-message store took ~150 ms in the sync (plus ~45 ms more
to commit the pages it touched); a row on the list costs ~20 us. Until
`index_missing` runs, the dropped rows' text is still in `fulltext`, which is
harmless: every query joins it to `messages` (and skips tombstones), and a
message that reuses a row ID is written over when indexed.

The tables have their own small schema version (`fulltext_meta`), separate
from the store's migrations: a new version drops them and marks the index for
a rebuild, which `search` runs on first use. This module never deletes mail
and never touches the network.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from mailbag.store.index import (
    FULLTEXT_INDEXES,
    FULLTEXT_TRIGGERS,
    FULLTEXT_VERSION,
    WHEN_INDEX,
    fulltext_names,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mailbag.store.index import Message, Store

__all__ = [
    "COLUMNS",
    "FulltextHook",
    "IndexedText",
    "ensure_schema",
    "extract",
    "index_missing",
    "needs_rebuild",
    "pending",
    "rebuild",
    "store_hook",
]

VERSION = FULLTEXT_VERSION
# FTS5 column names; the query language maps from:/to:/cc:/subject:/body: onto them
COLUMNS = ("subject", "sender", "recipients", "cc", "body", "attachments")
MAX_BODY_CHARS = 200_000  # text indexed per message; the rest is not searchable
_TRIGGERS = FULLTEXT_TRIGGERS
# the triggers of earlier indexes, upgraded in place (their index is exact, so it needs
# no rebuild): dropping at once, then listing every deletion (indexed or not)
_OLD_TRIGGERS = (
    "fulltext_on_delete",
    "fulltext_on_gone",
    "fulltext_drop_deleted",
    "fulltext_drop_gone",
)
# Newest-first order as indexes: `list` and `search` walk them and stop at their
# LIMIT instead of sorting every match (40 ms -> 1 ms on 20,000 messages); the
# partial one makes has:attachment as quick when few messages have any.
_INDEXES = {  # (by the names of FULLTEXT_INDEXES)
    WHEN_INDEX: f"CREATE INDEX IF NOT EXISTS {WHEN_INDEX} "
    "ON messages(COALESCE(date, internal_date), id)",
    "messages_with_attachments": "CREATE INDEX IF NOT EXISTS messages_with_attachments "
    "ON messages(COALESCE(date, internal_date), id) WHERE has_attachments = 1",
}

# the index rows of messages deleted or gone, dropped by `index_missing` (see above); a
# new row that reuses an ID is taken off the list by `fulltext_on_insert`'s to-do entry
# being indexed with `replace` (which drops the old text first)
# A row still on the to-do list has no text in the index (indexing takes it off the
# list): it only leaves the list. (An ID listed for an earlier message's text stays
# listed.) A tombstone's text was listed when it became one.
_FORGET = """
        INSERT OR IGNORE INTO fulltext_gone(id)
            SELECT old.id WHERE NOT EXISTS (SELECT 1 FROM fulltext_todo WHERE id = old.id);
        DELETE FROM fulltext_todo WHERE id = old.id;
"""
_DEFERRED_DROP = [
    "CREATE TABLE IF NOT EXISTS fulltext_gone (id INTEGER PRIMARY KEY)",
    f"""CREATE TRIGGER IF NOT EXISTS fulltext_forget_deleted AFTER DELETE ON messages
    WHEN old.gone = 0
    BEGIN {_FORGET} END""",
    f"""CREATE TRIGGER IF NOT EXISTS fulltext_forget_gone AFTER UPDATE OF gone ON messages
    WHEN new.gone != 0 AND old.gone = 0
    BEGIN {_FORGET} END""",
]
# what older triggers left behind: to-do rows of deleted mail, listed IDs never indexed
_PRUNE = [
    "DELETE FROM fulltext_todo WHERE id NOT IN (SELECT id FROM messages WHERE gone = 0)",
    "DELETE FROM fulltext_gone WHERE NOT EXISTS "
    "(SELECT 1 FROM fulltext WHERE fulltext.rowid = fulltext_gone.id)",
]

_SCHEMA = [
    """CREATE TABLE fulltext_meta (
        version INTEGER NOT NULL,
        needs_rebuild INTEGER NOT NULL DEFAULT 0
    )""",
    f"""CREATE VIRTUAL TABLE fulltext USING fts5(
        {", ".join(COLUMNS)},
        tokenize = 'unicode61 remove_diacritics 2'
    )""",
    "CREATE TABLE fulltext_todo (id INTEGER PRIMARY KEY)",
    """CREATE TRIGGER fulltext_on_insert AFTER INSERT ON messages
    BEGIN
        INSERT OR IGNORE INTO fulltext_todo(id) VALUES (new.id);
    END""",
    *_DEFERRED_DROP,
]


def _state(conn: sqlite3.Connection) -> str:
    """'current', 'no-index' (only the order indexes are missing), 'old-drop' (the
    triggers that dropped index rows at once: replaced in place) or 'stale'."""
    names = fulltext_names(conn)
    if names is None:
        return "stale"
    # a store migration that rebuilds `messages` drops our triggers and index with it
    if not set(_TRIGGERS) <= names:
        return (
            "old-drop" if "fulltext_on_insert" in names and set(_OLD_TRIGGERS) & names else "stale"
        )
    return "current" if set(FULLTEXT_INDEXES) <= names else "no-index"


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create (or upgrade) the full-text tables, triggers and index. Cheap when current."""
    if _state(conn) == "current":
        return
    own_tx = not conn.in_transaction
    if own_tx:
        conn.execute("BEGIN IMMEDIATE")
    try:
        state = _state(conn)  # again under the write lock: another process may have done it
        if state == "stale":
            for name in (*_TRIGGERS, *_OLD_TRIGGERS):
                conn.execute(f"DROP TRIGGER IF EXISTS {name}")
            for table in ("fulltext", "fulltext_meta", "fulltext_todo", "fulltext_gone"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _SCHEMA:
                conn.execute(statement)
            has_mail = conn.execute("SELECT 1 FROM messages LIMIT 1").fetchone() is not None
            conn.execute(
                "INSERT INTO fulltext_meta(version, needs_rebuild) VALUES (?, ?)",
                (VERSION, int(has_mail)),
            )
        elif state == "old-drop":
            for name in _OLD_TRIGGERS:
                conn.execute(f"DROP TRIGGER IF EXISTS {name}")
            for statement in (*_DEFERRED_DROP, *_PRUNE):
                conn.execute(statement)
        if state != "current":
            for statement in _INDEXES.values():
                conn.execute(statement)
        if own_tx:
            conn.execute("COMMIT")
    except BaseException:
        if own_tx:
            conn.execute("ROLLBACK")
        raise


def needs_rebuild(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT needs_rebuild FROM fulltext_meta").fetchone()
    return bool(row and row[0])


def pending(conn: sqlite3.Connection) -> int:
    """How many messages wait to be indexed (stored while indexing was deferred)."""
    return int(
        conn.execute(
            "SELECT count(*) FROM fulltext_todo t JOIN messages m ON m.id = t.id WHERE m.gone = 0"
        ).fetchone()[0]
    )


class IndexedText:
    """What one message contributes to the index."""

    def __init__(
        self,
        subject: str,
        sender: str,
        recipients: str,
        cc: str,
        body: str,
        attachments: str,
        has_attachments: bool,
    ) -> None:
        self.values = (subject, sender, recipients, cc, body, attachments)
        self.has_attachments = has_attachments


def extract(raw: bytes) -> IndexedText:
    """Searchable text of a message (bounded parse; never raises on bad mail)."""
    from mailbag.message.attachments import list_attachments
    from mailbag.message.parse import parse_message
    from mailbag.message.render import body_parts, html_words

    msg = parse_message(raw)
    h = msg.headers

    def people(name: str) -> str:
        return " ".join(f"{a.name} {a.addr}" for a in h.addresses(name))

    chunks: list[str] = []
    budget = MAX_BODY_CHARS
    for part in body_parts(msg.root):
        if budget <= 0:
            break
        text, _ = msg.text(part)
        if part.content_type == "text/html":
            text = html_words(text[: budget * 4])
        chunks.append(text[:budget])
        budget -= len(chunks[-1])
    body = "\n".join(chunks)
    attachments = list_attachments(msg)
    return IndexedText(
        subject=msg.subject,
        sender=people("From") + " " + people("Sender"),
        recipients=people("To"),
        cc=people("Cc") + " " + people("Bcc"),
        body=body,
        attachments=" ".join(a.name for a in attachments if a.name),
        has_attachments=bool(attachments),
    )


def _write(
    conn: sqlite3.Connection, message_id: int, text: IndexedText, *, replace: bool = True
) -> None:
    if replace:
        conn.execute("DELETE FROM fulltext WHERE rowid = ?", (message_id,))
        # (a new message with the ID of one deleted: its text is replaced already)
        conn.execute("DELETE FROM fulltext_gone WHERE id = ?", (message_id,))
    conn.execute("DELETE FROM fulltext_todo WHERE id = ?", (message_id,))
    conn.execute(
        f"INSERT INTO fulltext(rowid, {', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (message_id, *text.values),
    )
    # the envelope guesses attachments from the top Content-Type; the parse knows
    conn.execute(
        "UPDATE messages SET has_attachments = ? WHERE id = ? AND has_attachments != ?",
        (int(text.has_attachments), message_id, int(text.has_attachments)),
    )


class FulltextHook:
    """Keeps `fulltext` in step with the store (registered by `store_hook`)."""

    #: a deleted `messages` row is put on `fulltext_gone` by the triggers: `Store.forget_many`
    #: need not call `message_removed` for each
    rows_followed = True

    def message_added(self, store: Store, message: Message, path: Path) -> None:
        _write(store.conn, message.id, extract(path.read_bytes()))

    def message_removed(self, store: Store, message_id: int) -> None:
        # nothing to do: every removal deletes the row or makes it a tombstone (a folder's
        # rows go by its foreign key's cascade, which fires the triggers too)
        pass


def store_hook(store: Store) -> FulltextHook:
    """Called by `Store.open`: make sure the tables exist, then index as mail arrives."""
    ensure_schema(store.conn)
    return FulltextHook()


def _index_rows(
    store: Store,
    rows: list[tuple[int, int, str]],
    progress: Callable[[int, int], None] | None,
    *,
    replace: bool,
) -> int:
    """Index (message id, folder id, key) rows, grouped by folder; commits in batches.

    A folder with many rows is listed once (finding files one by one scans
    cur/ per message); a few are looked up directly. Must run in a transaction.
    """
    from mailbag.errors import StoreError

    conn = store.conn
    total = len(rows)
    done = seen = 0
    by_folder: dict[int, list[tuple[int, str]]] = {}
    for mid, folder_id, key in rows:
        by_folder.setdefault(folder_id, []).append((mid, key))
    for folder_id, items in by_folder.items():
        try:
            maildir = store.folder_by_id(folder_id).maildir
        except StoreError:
            continue
        listing = maildir.scan() if len(items) > 20 else None
        for mid, key in items:
            seen += 1
            entry = listing.get(key) if listing is not None else maildir.find(key)
            raw = None
            if entry is not None:
                try:
                    raw = entry.path.read_bytes()
                except OSError:
                    raw = None
            if raw is None:
                # the file is gone (another program, a crash): nothing to index; the
                # next sync brings it back or forgets the row
                conn.execute("DELETE FROM fulltext_todo WHERE id = ?", (mid,))
                continue
            _write(conn, mid, extract(raw), replace=replace)
            done += 1
            if seen % 1000 == 0:
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
                if progress is not None:
                    progress(seen, total)
    if progress is not None:
        progress(total, total)
    return done


def _in_own_transaction(store: Store, work: Callable[[], int]) -> int:
    conn = store.conn
    if conn.in_transaction:
        store.commit()
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def index_missing(store: Store, progress: Callable[[int, int], None] | None = None) -> int:
    """Index the messages stored while indexing was deferred; returns how many.

    `search` calls this first; with nothing pending it is one query.
    """
    conn = store.conn
    ensure_schema(conn)
    if (
        conn.execute(
            "SELECT 1 FROM fulltext_todo UNION ALL SELECT 1 FROM fulltext_gone LIMIT 1"
        ).fetchone()
        is None
    ):
        return 0

    def work() -> int:
        # first the index rows of messages gone (a new message may have taken an ID of
        # theirs: it is on the to-do list, indexed next)
        conn.execute("DELETE FROM fulltext WHERE rowid IN (SELECT id FROM fulltext_gone)")
        conn.execute("DELETE FROM fulltext_gone")
        conn.execute(
            "DELETE FROM fulltext_todo WHERE id NOT IN (SELECT id FROM messages WHERE gone = 0)"
        )
        rows = conn.execute(
            "SELECT t.id, m.folder_id, m.key FROM fulltext_todo t "
            "JOIN messages m ON m.id = t.id ORDER BY m.folder_id, t.id"
        ).fetchall()
        return _index_rows(store, rows, progress, replace=True)

    return _in_own_transaction(store, work)


def rebuild(store: Store, progress: Callable[[int, int], None] | None = None) -> int:
    """Index every message again from its file; returns how many were indexed.

    Messages whose file is missing are left out. Commits in batches; an
    interrupted rebuild stays marked, and `search` runs it again.
    """
    conn = store.conn
    ensure_schema(conn)

    def work() -> int:
        conn.execute("UPDATE fulltext_meta SET needs_rebuild = 1")
        conn.execute("DELETE FROM fulltext")
        conn.execute("DELETE FROM fulltext_todo")
        conn.execute("DELETE FROM fulltext_gone")
        rows = conn.execute(
            "SELECT id, folder_id, key FROM messages WHERE gone = 0 ORDER BY folder_id, id"
        ).fetchall()
        done = _index_rows(store, rows, progress, replace=False)
        conn.execute("UPDATE fulltext_meta SET needs_rebuild = 0")
        return done

    return _in_own_transaction(store, work)
