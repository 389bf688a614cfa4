"""The index's WAL between runs: `Store.close` leaves it (no checkpoint at the end of a
sync), `Store.checkpoint_ahead` moves it into the database file, readers see one
consistent index throughout, and the file stays bounded."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from mailbag.paths import Paths
from mailbag.store.index import _WAL_KEPT_BYTES, Store


def _paths(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")


def _wal(paths: Paths) -> Path:
    return Path(f"{paths.index_file}-wal")


def _add(store: Store, n: int, start: int = 0, size: int = 100) -> None:
    inbox = store.folder("acct", "INBOX")
    for i in range(start, start + n):
        data = f"Subject: m{i}\r\nMessage-ID: <m{i}@x>\r\n\r\n{'x' * size}\r\n".encode()
        store.add_bytes(inbox, data, commit=False)
    store.commit()


def _count_in_file_alone(paths: Paths, tmp_path: Path) -> int:
    """The messages the database file holds by itself (a copy without its WAL)."""
    copy = tmp_path / "alone.sqlite3"
    shutil.copyfile(paths.index_file, copy)
    conn = sqlite3.connect(copy)
    try:
        (n,) = conn.execute("SELECT count(*) FROM messages").fetchone()
    except sqlite3.OperationalError:  # (not even the schema is in the file yet)
        n = 0
    finally:
        conn.close()
    return int(n)


@pytest.mark.parametrize("name", ["plain", "odd 50% ?x=1 #y"])
def test_close_leaves_the_committed_wal_and_every_reader_sees_it(tmp_path: Path, name: str) -> None:
    paths = _paths(tmp_path / name)  # (the read-only connection's URI escapes the path)
    with Store.open(paths) as store:
        _add(store, 50)
    wal = _wal(paths)
    assert wal.exists() and wal.stat().st_size > 0  # not checkpointed away at the close
    # another process's view: a plain connection reads the whole index, WAL included
    with sqlite3.connect(paths.index_file) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (50,)
    conn.close()
    with Store.open(paths) as store:
        assert len(store.messages(account="acct", folder="INBOX", limit=None)) == 50


def test_the_next_run_checkpoints_what_the_last_left_while_a_reader_keeps_its_view(
    tmp_path: Path,
) -> None:
    paths = _paths(tmp_path)
    with Store.open(paths) as store:
        _add(store, 30)
    assert _count_in_file_alone(paths, tmp_path) == 0  # (all of it in the WAL)
    reader = sqlite3.connect(paths.index_file, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM messages").fetchone() == (30,)
        store = Store.open(paths)
        try:
            store.checkpoint_ahead()
            _add(store, 20, start=30)  # written while the checkpoint runs
            store.wait_checkpoint()
            # the reader's transaction still sees the index as it began
            assert reader.execute("SELECT count(*) FROM messages").fetchone() == (30,)
            reader.execute("COMMIT")
            assert reader.execute("SELECT count(*) FROM messages").fetchone() == (50,)
        finally:
            store.close()
    finally:
        reader.close()
    # the first run's messages went into the database file itself
    assert _count_in_file_alone(paths, tmp_path) >= 30
    with Store.open(paths) as store:
        assert len(store.messages(account="acct", folder="INBOX", limit=None)) == 50


def test_the_kept_wal_stays_bounded_over_many_runs(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    wal = _wal(paths)
    with Store.open(paths) as store:
        _add(store, 5)
        # a big transaction (as an initial sync's): ~20 MB of WAL
        store.conn.execute("CREATE TABLE scratch (b BLOB)")
        store.conn.execute("BEGIN")
        store.conn.executemany("INSERT INTO scratch VALUES (?)", [(b"x" * 4000,)] * 5000)
        store.conn.execute("COMMIT")
    big = wal.stat().st_size
    assert big > 2 * _WAL_KEPT_BYTES
    sizes = []
    for run in range(6):
        with Store.open(paths) as store:
            store.checkpoint_ahead()
            store.wait_checkpoint()  # (the sync's login takes longer)
            _add(store, 20, start=5 + 20 * run)
        sizes.append(wal.stat().st_size)
    assert all(s > 0 for s in sizes)  # (kept)
    assert max(sizes[1:]) <= _WAL_KEPT_BYTES, sizes
    with Store.open(paths) as store:
        assert len(store.messages(account="acct", folder="INBOX", limit=None)) == 125


def _checkpoint_run(paths: Paths) -> None:
    """A run that writes nothing: open, checkpoint ahead, close."""
    with Store.open(paths) as store:
        store.checkpoint_ahead()
        store.wait_checkpoint()


def test_runs_that_write_nothing_do_not_copy_the_same_pages_again(tmp_path: Path) -> None:
    """SQLite, opening an index whose WAL was left at close, takes none of its pages as
    checkpointed: without the checkpoint's note every run rewrote (and synced) the same
    pages of the database file, a run that changed nothing too."""
    paths = _paths(tmp_path)
    with Store.open(paths) as store:
        _add(store, 40)
    _checkpoint_run(paths)  # copies the WAL into the file, once
    assert _count_in_file_alone(paths, tmp_path) == 40
    copied = paths.index_file.stat().st_mtime_ns
    for _ in range(3):
        _checkpoint_run(paths)
    assert paths.index_file.stat().st_mtime_ns == copied  # not written again
    # a run that writes: its pages are copied by the next checkpoint, as before
    with Store.open(paths) as store:
        _add(store, 5, start=40)
    _checkpoint_run(paths)
    assert _count_in_file_alone(paths, tmp_path) == 45
    assert paths.index_file.stat().st_mtime_ns != copied
    with Store.open(paths) as store:
        assert len(store.messages(account="acct", folder="INBOX", limit=None)) == 45


def test_a_checkpoint_note_that_is_wrong_or_unreadable_only_costs_a_checkpoint(
    tmp_path: Path,
) -> None:
    paths = _paths(tmp_path)
    with Store.open(paths) as store:
        _add(store, 10)
    note = Path(f"{paths.index_file}-checkpointed")
    note.write_bytes(b"\xff\xfe not a mark")
    _checkpoint_run(paths)
    assert _count_in_file_alone(paths, tmp_path) == 10
    # a note of an earlier WAL (as left by a run that then wrote more)
    note.write_text("1 2 3", encoding="ascii")
    with Store.open(paths) as store:
        _add(store, 10, start=10)
    _checkpoint_run(paths)
    assert _count_in_file_alone(paths, tmp_path) == 20
