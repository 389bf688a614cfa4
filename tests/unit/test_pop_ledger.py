"""The POP3 ledger: states, the journal step, commit points, isolation per account/server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailbag.errors import StoreError
from mailbag.store.pop_ledger import LedgerState, PopLedger, server_key


def test_download_journal_then_stored(tmp_path: Path) -> None:
    with PopLedger.open(tmp_path / "i.sqlite3", "acct", "u@h") as led:
        led.begin_fetch("U1", 1234, "key1", now=10.0)
        e = led.get("U1")
        assert e is not None and e.state is LedgerState.FETCHING and not e.held
        assert e.local_key == "key1" and e.stored_at is None
        led.mark_stored("U1", "key1", stored_at=11.0)
        e = led.get("U1")
        assert e is not None and e.state is LedgerState.STORED and e.held
        assert e.stored_at == 11.0 and e.size == 1234


def test_rows_survive_reopening_the_file(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    with PopLedger.open(db, "acct", "u@h") as led:
        led.begin_fetch("U1", 1, "k", now=1.0)
        led.mark_stored("U1", "k", 2.0, headers_only=True)
    with PopLedger.open(db, "acct", "u@h") as led:
        e = led.get("U1")
        assert e is not None and e.headers_only and e.state is LedgerState.STORED


def test_the_same_uidl_is_never_stored_twice(tmp_path: Path) -> None:
    with PopLedger.open(tmp_path / "i.sqlite3", "acct", "u@h") as led:
        led.begin_fetch("U1", 1, "k", now=1.0)
        led.mark_stored("U1", "k", 2.0)
        with pytest.raises(StoreError):
            led.begin_fetch("U1", 1, "k2", now=3.0)
        # an unfinished fetch may be restarted
        led.begin_fetch("U2", 1, "a", now=1.0)
        led.begin_fetch("U2", 1, "b", now=2.0)
        e = led.get("U2")
        assert e is not None and e.local_key == "b"


def test_abandon_only_drops_unfinished_fetches(tmp_path: Path) -> None:
    with PopLedger.open(tmp_path / "i.sqlite3", "acct", "u@h") as led:
        led.begin_fetch("F", 1, "k", now=1.0)
        led.begin_fetch("S", 1, "k2", now=1.0)
        led.mark_stored("S", "k2", 2.0)
        led.abandon_fetch(["F", "S"])
        assert led.get("F") is None
        assert led.get("S") is not None


def test_deletion_commit_points(tmp_path: Path) -> None:
    with PopLedger.open(tmp_path / "i.sqlite3", "acct", "u@h") as led:
        for u in ("a", "b", "c"):
            led.begin_fetch(u, 1, u, now=1.0)
            led.mark_stored(u, u, 2.0)
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
        assert led.get("b") is not None and led.get("b").state is LedgerState.REMOVED  # type: ignore[union-attr]
        assert dict(led.counts()) == {"removed": 2, "stored": 1}


def test_accounts_and_servers_are_kept_apart(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    with PopLedger.open(db, "one", server_key("me", "POP.Example.org")) as a:
        a.begin_fetch("U1", 1, "k", now=1.0)
        a.mark_stored("U1", "k", 2.0)
    with PopLedger.open(db, "two", server_key("me", "pop.example.org")) as b:
        assert b.entries() == {}
    with PopLedger.open(db, "one", server_key("me", "pop.example.org")) as c:
        assert set(c.entries()) == {"U1"}  # host case does not matter


def test_shares_a_connection_with_other_tables(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "i.sqlite3", isolation_level=None)
    conn.execute("CREATE TABLE other (x)")
    led = PopLedger(conn, "acct", "srv")
    led.begin_fetch("U", 1, "k", now=1.0)
    assert conn.execute("SELECT COUNT(*) FROM pop_ledger").fetchone()[0] == 1
    conn.close()


def test_unwritable_database_is_a_store_error(tmp_path: Path) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    db = d / "i.sqlite3"
    with PopLedger.open(db, "a", "s"):
        pass
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(StoreError):
        PopLedger(conn, "a", "s").begin_fetch("U", 1, "k", now=1.0)
    conn.close()
