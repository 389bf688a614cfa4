"""Full-text index: an SQLite FTS5 table beside the message index.

One row per message (rowid = `messages.id`) with the subject, sender, recipients,
Cc, the rendered body text (text/plain, or HTML turned into text) and the
attachment names. The store calls the hook inside its own transaction when a
message is added, moved (added in the new folder, removed from the old) or
removed, so the index never drifts from the store; `rebuild` recreates it
from the Maildir files.

The FTS table has its own small schema version (`fulltext_meta`), separate
from the store's migrations: a new version drops the table and marks it for a
rebuild, which `search` runs on first use. This module never deletes mail and
never touches the network.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailbag.store.index import Message, Store

__all__ = [
    "COLUMNS",
    "FulltextHook",
    "IndexedText",
    "ensure_schema",
    "extract",
    "needs_rebuild",
    "rebuild",
    "store_hook",
]

VERSION = 1
# FTS5 column names; the query language maps from:/to:/cc:/subject:/body: onto them
COLUMNS = ("subject", "sender", "recipients", "cc", "body", "attachments")
MAX_BODY_CHARS = 200_000  # text indexed per message; the rest is not searchable

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS fulltext_meta (
    version INTEGER NOT NULL,
    needs_rebuild INTEGER NOT NULL DEFAULT 0
);
CREATE VIRTUAL TABLE IF NOT EXISTS fulltext USING fts5(
    {", ".join(COLUMNS)},
    tokenize = 'unicode61 remove_diacritics 2'
);
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create (or upgrade) the FTS tables. Cheap when they are current."""
    try:
        row = conn.execute("SELECT version FROM fulltext_meta").fetchone()
    except sqlite3.OperationalError:
        row = None
    if row is not None and row[0] == VERSION:
        return
    own_tx = not conn.in_transaction
    if own_tx:
        conn.execute("BEGIN IMMEDIATE")
    try:
        row = None
        # re-check under the write lock: another process may have done it
        with contextlib.suppress(sqlite3.OperationalError):
            row = conn.execute("SELECT version FROM fulltext_meta").fetchone()
        if row is None or row[0] != VERSION:
            conn.execute("DROP TABLE IF EXISTS fulltext")
            conn.execute("DROP TABLE IF EXISTS fulltext_meta")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            has_mail = conn.execute("SELECT 1 FROM messages LIMIT 1").fetchone() is not None
            conn.execute(
                "INSERT INTO fulltext_meta(version, needs_rebuild) VALUES (?, ?)",
                (VERSION, int(has_mail)),
            )
        if own_tx:
            conn.execute("COMMIT")
    except BaseException:
        if own_tx:
            conn.execute("ROLLBACK")
        raise


def needs_rebuild(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT needs_rebuild FROM fulltext_meta").fetchone()
    return bool(row and row[0])


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

    def message_added(self, store: Store, message: Message, path: Path) -> None:
        _write(store.conn, message.id, extract(path.read_bytes()))

    def message_removed(self, store: Store, message_id: int) -> None:
        store.conn.execute("DELETE FROM fulltext WHERE rowid = ?", (message_id,))


def store_hook(store: Store) -> FulltextHook:
    """Called by `Store.open`: make sure the tables exist, then index as mail arrives."""
    ensure_schema(store.conn)
    return FulltextHook()


def rebuild(store: Store, progress: Callable[[int, int], None] | None = None) -> int:
    """Index every message again from its file; returns how many were indexed.

    Each folder's Maildir is listed once (looking files up one by one would
    scan cur/ per message). Messages whose file is missing are left out. Commits
    in batches so a long rebuild can be interrupted and run again.
    """
    conn = store.conn
    ensure_schema(conn)
    if conn.in_transaction:
        store.commit()
    total = conn.execute("SELECT count(*) FROM messages WHERE gone = 0").fetchone()[0]
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM fulltext")
    done = 0
    for folder in store.folders():
        entries = folder.maildir.scan()
        rows = conn.execute(
            "SELECT id, key FROM messages WHERE folder_id = ? AND gone = 0 ORDER BY id",
            (folder.id,),
        ).fetchall()
        for mid, key in rows:
            entry = entries.get(key)
            if entry is None:
                continue
            try:
                raw = entry.path.read_bytes()
            except OSError:
                continue
            _write(conn, mid, extract(raw), replace=False)
            done += 1
            if done % 1000 == 0:
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
                if progress is not None:
                    progress(done, total)
    conn.execute("UPDATE fulltext_meta SET needs_rebuild = 0")
    conn.execute("COMMIT")
    if progress is not None:
        progress(done, total)
    return done
