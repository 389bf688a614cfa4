"""The POP3 ledger: states, commit points, sharing the store's transaction, isolation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailbag.errors import StoreError
from mailbag.store.pop_ledger import LedgerState, PopLedger, server_key


def put(led: PopLedger, uidl: str, at: float = 2.0, **kw: object) -> None:
    led.record_stored(uidl, size=10, local_key=f"k-{uidl}", local_uid=1, stored_at=at, **kw)  # type: ignore[arg-type]


def test_stored_row_round_trips_through_the_file(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    with PopLedger.open(db, "acct", "u@h") as led:
        led.record_stored(
            "U1", size=1234, local_key="key1", local_uid=5, stored_at=11.0, headers_only=True
        )
    with PopLedger.open(db, "acct", "u@h") as led:
        e = led.get("U1")
        assert e is not None and e.state is LedgerState.STORED
        assert (e.size, e.local_key, e.local_uid, e.stored_at, e.headers_only) == (
            1234,
            "key1",
            5,
            11.0,
            True,
        )
        assert led.get("nope") is None


def test_the_same_uidl_is_never_stored_twice(tmp_path: Path) -> None:
    with PopLedger.open(tmp_path / "i.sqlite3", "acct", "u@h") as led:
        put(led, "U1")
        with pytest.raises(StoreError):
            put(led, "U1")
        assert len(led.entries()) == 1


def test_deletion_commit_points(tmp_path: Path) -> None:
    with PopLedger.open(tmp_path / "i.sqlite3", "acct", "u@h") as led:
        for u in ("a", "b", "c"):
            put(led, u)
        led.mark_dele_sent(["a", "b"], now=3.0)
        assert {u: e.state for u, e in led.entries().items()} == {
            "a": LedgerState.DELE_SENT,
            "b": LedgerState.DELE_SENT,
            "c": LedgerState.STORED,
        }
        led.mark_removed(["a"], now=4.0)  # QUIT acknowledged for a
        led.revert_dele_sent(["b"], now=4.0)  # still listed next session: not committed
        led.mark_removed(["c"], now=4.0)  # never DELEd: mark_removed does not apply
        states = {u: e.state for u, e in led.entries().items()}
        assert states == {
            "a": LedgerState.REMOVED,
            "b": LedgerState.STORED,
            "c": LedgerState.STORED,
        }
        led.mark_gone(["b"], now=5.0)  # removed by another client
        assert led.entries()["b"].state is LedgerState.REMOVED
        assert dict(led.counts()) == {"removed": 2, "stored": 1}


def test_accounts_and_servers_are_kept_apart(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    with PopLedger.open(db, "one", server_key("me", "POP.Example.org")) as a:
        put(a, "U1")
    with PopLedger.open(db, "two", server_key("me", "pop.example.org")) as b:
        assert b.entries() == {}
        put(b, "U1")  # the same UIDL in another account is another message
    with PopLedger.open(db, "one", server_key("me", "pop.example.org")) as c:
        assert set(c.entries()) == {"U1"}  # host case does not matter


def test_rows_join_an_open_transaction_and_vanish_with_its_rollback(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "i.sqlite3", isolation_level=None)
    led = PopLedger(conn, "acct", "srv")
    conn.execute("BEGIN IMMEDIATE")
    put(led, "U")
    assert conn.in_transaction  # the ledger did not commit the caller's transaction
    conn.execute("ROLLBACK")
    assert led.entries() == {}
    conn.execute("BEGIN IMMEDIATE")
    put(led, "U")
    conn.execute("COMMIT")
    assert set(led.entries()) == {"U"}
    conn.close()


def test_unwritable_database_is_a_store_error(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    with PopLedger.open(db, "a", "s"):
        pass
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(StoreError):
        put(PopLedger(conn, "a", "s"), "U")
    conn.close()
