"""The POP3 ledger: which server messages (by UIDL) this computer already holds.

One row per (account, server, UIDL). A row says `stored` only when the message
file is durably in the local Maildir: the engine writes the row inside the same
index transaction as the message's own index row (`Store.add_message(...,
commit=False)` then `Store.commit()`, which fsyncs the files before COMMIT), so
after a crash either both exist or neither does, and the message is fetched
again exactly once.

Deletions follow POP3's own commit point: a `dele-sent` row means DELE went out
but QUIT has not been acknowledged. Only a QUIT +OK, or the UIDL vanishing from
a later listing, turns it into `removed`; a dropped connection leaves it pending
and the next session reconciles it. The ledger never decides anything itself:
`mailbag.sync.pop3_plan` does, from a snapshot of these rows.

The table lives in the index database (its own table, created if missing) so
one file holds all local state; it can also use a file of its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType

from mailbag.errors import StoreError

__all__ = ["LedgerEntry", "LedgerState", "PopLedger", "server_key"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS pop_ledger (
    account      TEXT    NOT NULL,
    server       TEXT    NOT NULL,
    uidl         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    size         INTEGER NOT NULL DEFAULT 0,
    local_key    TEXT,
    local_uid    INTEGER,
    stored_at    REAL,
    headers_only INTEGER NOT NULL DEFAULT 0,
    changed_at   REAL    NOT NULL,
    PRIMARY KEY (account, server, uidl)
) WITHOUT ROWID;
"""


class LedgerState(StrEnum):
    STORED = "stored"  # the message is durably stored here
    DELE_SENT = "dele-sent"  # stored here, DELE sent, QUIT not yet acknowledged
    REMOVED = "removed"  # stored here, and gone from the server


@dataclass(frozen=True)
class LedgerEntry:
    uidl: str
    state: LedgerState
    size: int = 0
    local_key: str | None = None
    #: the number the local index knows this message by (its `uid` column)
    local_uid: int | None = None
    #: when the message was stored here (epoch seconds); the "remove after N days" clock
    stored_at: float | None = None
    #: only the header was kept (over the size limit): never a reason to DELE
    headers_only: bool = False


def server_key(username: str, host: str) -> str:
    """Who the UIDLs belong to: the same mailbox reached on another port is the same."""
    return f"{username}@{host.lower()}"


class PopLedger:
    """The ledger rows of one account on one server, over a SQLite connection.

    Every method that changes a row commits before it returns, unless the
    connection is already inside a transaction (the store's): then the row is
    committed with it, which is how a row and its message land together.
    """

    def __init__(self, conn: sqlite3.Connection, account: str, server: str) -> None:
        self._conn = conn
        self.account = account
        self.server = server
        self._own_conn = False
        try:
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot create the POP3 ledger table: {exc}",
                hint="check that the index database is writable",
            ) from exc

    @classmethod
    def open(cls, path: Path, account: str, server: str) -> PopLedger:
        """A ledger on its own connection to the database file at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed row survives power loss, which is the whole point here
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the POP3 ledger at {path}: {exc}",
                hint="check that the data directory is writable",
                path=str(path),
            ) from exc
        ledger = cls(conn, account, server)
        ledger._own_conn = True
        return ledger

    def close(self) -> None:
        if self._own_conn:
            self._conn.close()

    def __enter__(self) -> PopLedger:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- reading ---------------------------------------------------------------------

    def entries(self) -> dict[str, LedgerEntry]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM pop_ledger WHERE account = ? AND server = ?",  # noqa: S608
            (self.account, self.server),
        )
        return {r[0]: _entry(r) for r in rows}

    def get(self, uidl: str) -> LedgerEntry | None:
        r = self._conn.execute(
            f"SELECT {_COLUMNS} FROM pop_ledger"  # noqa: S608
            " WHERE account = ? AND server = ? AND uidl = ?",
            (self.account, self.server, uidl),
        ).fetchone()
        return None if r is None else _entry(r)

    # --- changing --------------------------------------------------------------------

    def _write(self, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
        try:
            with self._tx():
                self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot update the POP3 ledger: {exc}",
                hint="check free disk space and that the index database is writable",
            ) from exc

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)

    def record_stored(
        self,
        uidl: str,
        *,
        size: int,
        local_key: str,
        local_uid: int | None,
        stored_at: float,
        headers_only: bool = False,
    ) -> None:
        """`uidl` is stored here as `local_key`. Refuses a UIDL that is already held.

        Call it inside the store transaction that indexes the message, so the
        row commits together with the message (after its file is fsynced).
        """
        if self.get(uidl) is not None:
            raise StoreError(
                f"POP3 message {uidl!r} is already stored here; refusing to store it twice",
                uidl=uidl,
            )
        self._write(
            "INSERT INTO pop_ledger (account, server, uidl, state, size, local_key, local_uid,"
            " stored_at, headers_only, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    self.account,
                    self.server,
                    uidl,
                    LedgerState.STORED.value,
                    size,
                    local_key,
                    local_uid,
                    stored_at,
                    int(headers_only),
                    stored_at,
                )
            ],
        )

    def _set_state(
        self, uidls: Iterable[str], state: LedgerState, now: float, *, only: LedgerState
    ) -> None:
        self._write(
            "UPDATE pop_ledger SET state = ?, changed_at = ?"
            " WHERE account = ? AND server = ? AND uidl = ? AND state = ?",
            [(state.value, now, self.account, self.server, u, only.value) for u in uidls],
        )

    def mark_dele_sent(self, uidls: Iterable[str], now: float) -> None:
        self._set_state(uidls, LedgerState.DELE_SENT, now, only=LedgerState.STORED)

    def mark_removed(self, uidls: Iterable[str], now: float) -> None:
        """QUIT was acknowledged after DELE: the server has committed the removal."""
        self._set_state(uidls, LedgerState.REMOVED, now, only=LedgerState.DELE_SENT)

    def revert_dele_sent(self, uidls: Iterable[str], now: float) -> None:
        """DELE was sent but never committed (the message is still listed)."""
        self._set_state(uidls, LedgerState.STORED, now, only=LedgerState.DELE_SENT)

    def mark_gone(self, uidls: Iterable[str], now: float) -> None:
        """Held messages that the server no longer lists (removed by us or by anyone)."""
        rows = [
            (LedgerState.REMOVED.value, now, self.account, self.server, u, st.value)
            for u in uidls
            for st in (LedgerState.STORED, LedgerState.DELE_SENT)
        ]
        self._write(
            "UPDATE pop_ledger SET state = ?, changed_at = ?"
            " WHERE account = ? AND server = ? AND uidl = ? AND state = ?",
            rows,
        )

    def counts(self) -> Mapping[str, int]:
        rows = self._conn.execute(
            "SELECT state, COUNT(*) FROM pop_ledger WHERE account = ? AND server = ?"
            " GROUP BY state",
            (self.account, self.server),
        )
        return {r[0]: r[1] for r in rows}


_COLUMNS = "uidl, state, size, local_key, local_uid, stored_at, headers_only"


def _entry(r: tuple[object, ...]) -> LedgerEntry:
    uidl, state, size, key, uid, stored_at, headers_only = r
    assert isinstance(uidl, str) and isinstance(state, str) and isinstance(size, int)
    assert key is None or isinstance(key, str)
    assert uid is None or isinstance(uid, int)
    assert stored_at is None or isinstance(stored_at, int | float)
    return LedgerEntry(uidl, LedgerState(state), size, key, uid, stored_at, bool(headers_only))


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection; ROLLBACK on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._outer = conn.in_transaction

    def __enter__(self) -> None:
        if not self._outer:
            self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._outer:
            return
        if t is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
