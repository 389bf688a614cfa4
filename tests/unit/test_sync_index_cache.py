"""The sync's index connections (`sync.imap._open_store`): a transaction's changed pages
stay in memory up to `_SPILL_KIB` (none written to the WAL before the commit; past it
they are, and the memory stops growing with the changes), while
pages only read are kept no further than SQLite's default cache (a first sync that reads
a big folder's rows must not grow its peak RSS with them)."""

from __future__ import annotations

import os
from pathlib import Path

from mailbag.paths import Paths
from mailbag.sync.imap import _REPAIR_CACHE_KIB, _SPILL_KIB, _open_store
from pyrun import python_words


def _paths(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")


def test_a_big_transaction_writes_nothing_to_the_wal_before_its_commit(tmp_path: Path) -> None:
    store = _open_store(_paths(tmp_path))
    try:
        conn = store.conn
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        conn.execute("CREATE INDEX t_v ON t(v)")
        wal = Path(str(_paths(tmp_path).index_file) + "-wal")
        at_begin = wal.stat().st_size  # (the schema's commits)
        conn.execute("BEGIN IMMEDIATE")
        # ~300 pages changed (table and index): 60% of the spill size
        conn.executemany(
            "INSERT INTO t (v) VALUES (?)", ((os.urandom(8) * 100,) for _ in range(750))
        )
        before_commit = wal.stat().st_size
        conn.execute("COMMIT")
        assert before_commit == at_begin
        assert wal.stat().st_size - at_begin > 750 * 800  # (all of it went in with the commit)
    finally:
        store.close()


def test_a_bigger_transaction_spills_past_the_spill_size(tmp_path: Path) -> None:
    """Changed pages wait for the commit in memory up to `_SPILL_KIB` only: a 1% re-sync of
    200,000 messages in one folder (~4,000 rows changed) held 16 MiB of them before (peak
    RSS 47 MB; 39 MB with 8 MiB, no slower; 32-34 MB with 2 MiB)."""
    store = _open_store(_paths(tmp_path))
    try:
        conn = store.conn
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        conn.execute("CREATE INDEX t_v ON t(v)")
        wal = Path(str(_paths(tmp_path).index_file) + "-wal")
        at_begin = wal.stat().st_size
        conn.execute("BEGIN IMMEDIATE")
        # ~3,000 pages changed (~12 MB): past 2 MiB (and 8)
        conn.executemany(
            "INSERT INTO t (v) VALUES (?)", ((os.urandom(8) * 100,) for _ in range(7500))
        )
        spilled = wal.stat().st_size - at_begin
        conn.execute("COMMIT")
        assert spilled > 1024 * 1024  # (written ahead of the commit, uncommitted)
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 7500
    finally:
        store.close()


SCAN = """\
import sys
from pathlib import Path
from mailbag.paths import Paths
from mailbag.sync.imap import _open_store
def peak():  # (VmHWM: a child's ru_maxrss starts at its parent's)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
d = Path(sys.argv[1])
store = _open_store(Paths(config_dir=d, data_dir=d / "data", state_dir=d / "state"))
before = peak()
n = sum(len(v) for (v,) in store.conn.execute("SELECT v FROM t"))
grew = peak() - before
store.close()
print(n, grew)
"""


def test_pages_only_read_stay_within_the_default_cache(tmp_path: Path) -> None:
    """Also in an index that has mail (a re-sync's): a full read of a big folder goes
    through all its rows, and a 16 MiB cache kept 16 MiB of them (62 MB of peak RSS for
    a 1% re-sync of a 200,000 message folder without CONDSTORE, 49 MB without them)."""
    store = _open_store(_paths(tmp_path))
    try:
        folder = store.folder("acct", "INBOX")
        store.add_bytes(folder, b"Subject: x\r\nMessage-ID: <x@example.org>\r\n\r\nhi\r\n")
        store.commit()
        store.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        store.conn.execute("BEGIN IMMEDIATE")
        store.conn.executemany(
            "INSERT INTO t (v) VALUES (?)", ((os.urandom(1000),) for _ in range(24000))
        )
        store.conn.execute("COMMIT")  # ~28 MB of table pages
    finally:
        store.close()
    read, grew_kib = map(int, python_words(SCAN, str(tmp_path)))
    assert read == 24000 * 1000
    assert grew_kib < 8 * 1024  # (a 16 MiB cache of read pages: ~17 MB more)


def test_a_resync_keeps_the_default_cache_with_the_big_spill_size(tmp_path: Path) -> None:
    store = _open_store(_paths(tmp_path))
    try:
        assert store.conn.execute("PRAGMA cache_size").fetchone()[0] == -2000  # (no mail yet)
        folder = store.folder("acct", "INBOX")
        store.add_bytes(folder, b"Subject: x\r\nMessage-ID: <x@example.org>\r\n\r\nhi\r\n")
        store.commit()
    finally:
        store.close()
    store = _open_store(_paths(tmp_path))
    try:
        assert store.conn.execute("PRAGMA cache_size").fetchone()[0] == -2000
        (spill_pages,) = store.conn.execute("PRAGMA cache_spill").fetchone()
        (page_size,) = store.conn.execute("PRAGMA page_size").fetchone()
        assert spill_pages * page_size > (_SPILL_KIB - 1024) * 1024  # (changed pages: 2 MiB)
    finally:
        store.close()


def test_pairing_again_writes_its_changed_pages_to_the_wal_before_the_commit(
    tmp_path: Path,
) -> None:
    """A UIDVALIDITY change rewrites every row of the folder (`_REPAIR_CACHE_KIB`): those
    pages go to the WAL, uncommitted, instead of waiting in memory; afterwards the
    connection's spill size is as before."""
    store = _open_store(_paths(tmp_path))
    try:
        conn = store.conn
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        wal = Path(str(_paths(tmp_path).index_file) + "-wal")
        spill_before = conn.execute("PRAGMA cache_spill").fetchone()[0]
        conn.execute("BEGIN IMMEDIATE")
        at_begin = wal.stat().st_size
        with store.page_cache(_REPAIR_CACHE_KIB, spill=True):
            # ~2,000 pages changed: four times the cache
            conn.executemany(
                "INSERT INTO t (v) VALUES (?)", ((os.urandom(8) * 100,) for _ in range(6000))
            )
            spilled = wal.stat().st_size
        assert spilled - at_begin > 2 * 1024 * 1024  # (what went past the cache, uncommitted)
        assert conn.execute("PRAGMA cache_spill").fetchone()[0] == spill_before
        assert conn.execute("PRAGMA cache_size").fetchone()[0] == -2000  # (as it was)
        # (afterwards changed pages stay in memory up to the sync's spill size again, as
        # before: `test_a_big_transaction_writes_nothing_to_the_wal_before_its_commit`)
        conn.execute("COMMIT")
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 6000
    finally:
        store.close()


def test_a_cache_spill_size_whose_low_byte_is_zero_comes_back_turned_on(tmp_path: Path) -> None:
    # (SQLite reads `PRAGMA cache_spill = 3840` as a boolean too: its low byte, 0, is "off")
    store = _open_store(_paths(tmp_path))
    try:
        store.conn.execute("PRAGMA cache_spill = -16384")
        store.conn.execute("PRAGMA cache_spill = 3840")
        store.conn.execute("PRAGMA cache_spill = ON")
        assert store.conn.execute("PRAGMA cache_spill").fetchone()[0] == 3840
        with store.page_cache(512, spill=True):
            assert store.conn.execute("PRAGMA cache_spill").fetchone()[0] < 3840
        assert store.conn.execute("PRAGMA cache_spill").fetchone()[0] == 3840
    finally:
        store.close()


REPAIR = """\
import sys
from pathlib import Path
from mailbag.paths import Paths
from mailbag.sync.imap import _REPAIR_CACHE_KIB, _journals_on_disk, _open_store
def peak():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
d = Path(sys.argv[1])
store = _open_store(Paths(config_dir=d, data_dir=d / "data", state_dir=d / "state"))
store.conn.execute("PRAGMA temp_store = MEMORY")  # (as a sync's only worker sets it)
folder = store.folder("acct", "INBOX")
if store.conn.in_transaction:
    store.commit()
_journals_on_disk(store)
before = peak()
with store.page_cache(_REPAIR_CACHE_KIB, spill=True):
    store.unpair_all(folder, ((row, row, "\\\\Seen") for row in range(1, 40001, 2)))
grew = peak() - before
store.rollback()
store.close()
print(grew)
"""


def test_pairing_a_folder_again_keeps_the_originals_of_its_pages_out_of_memory(
    tmp_path: Path,
) -> None:
    """A UIDVALIDITY change rewrites every row of the folder in a few statements, each of
    which SQLite journals (the original of every page it changes) for its own rollback,
    and keeps the pairings found again in a temporary table: with the sync's `temp_store`
    MEMORY both grew with the folder (20,000 of 40,000 rows kept: +13 MB); on disk past a
    small size (+2.5 MB: the 2 MB page cache)."""
    store = _open_store(_paths(tmp_path))
    try:
        folder = store.folder("acct", "INBOX")
        if store.conn.in_transaction:
            store.commit()
        store.conn.execute("BEGIN IMMEDIATE")
        store.conn.executemany(
            "INSERT INTO messages (id, folder_id, uid, key, flags, synced_flags, subject, "
            "added) VALUES (?, ?, ?, ?, '\\Seen', '\\Seen', ?, 0)",
            ((i, folder.id, i, f"key{i}", "s" * 200) for i in range(1, 40001)),
        )
        store.conn.execute("COMMIT")  # ~13 MB of table and index pages
    finally:
        store.close()
    (grew_kib,) = map(int, python_words(REPAIR, str(tmp_path)))
    assert grew_kib < 6 * 1024, grew_kib
