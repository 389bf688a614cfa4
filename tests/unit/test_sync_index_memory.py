"""What a sync's changes to the index hold in memory stops growing with their number:
SQLite keeps the pages a transaction changed in memory until the commit only up to the
sync's spill size (`_SPILL_KIB`), and writes the rest to the WAL (uncommitted) before."""

from __future__ import annotations

import os
from pathlib import Path

from mailbag.paths import Paths
from mailbag.store.index import Store
from memtools import RSS_PEAK_PRELUDE
from pyrun import python_words

#: (after `RSS_PEAK_PRELUDE`)
PEAK = """\
rows = "SELECT id FROM messages WHERE folder_id = ? AND uid % 100 = ?"
gone = [r for (r,) in store.conn.execute(rows, (folder.id, 7))]
flagged = [(r, "\\\\Flagged \\\\Seen") for (r,) in store.conn.execute(rows, (folder.id, 3))]
before = peak_from_here()
store.forget_many(gone)  # (as a 1% re-sync: 1% expunged, 1% flagged on the server)
store.record_flags_many(flagged)
store.commit()
grew = status("VmHWM") - before
store.close()
print(len(gone), len(flagged), grew)
"""

BIG = int(os.environ.get("MAILBAG_TEST_INDEX_MEMORY_MESSAGES", "100000"))
SMALL = 20_000


def _index(home: Path, count: int) -> None:
    """An index with one synced folder of `count` messages (rows as a sync fills them)."""
    store = Store.open(Paths(config_dir=home, data_dir=home / "data", state_dir=home / "state"))
    try:
        inbox = store.folder("acct", "INBOX")
        store.update_folder(inbox, uidvalidity=9, messages=count)
        store.conn.executemany(
            "INSERT INTO messages (folder_id, uid, key, flags, synced_flags, size, message_id, "
            "subject, from_addr, to_addrs, date, added) "
            "VALUES (?, ?, ?, '\\Seen', '\\Seen', 3000, ?, ?, ?, ?, ?, 0)",
            (
                (
                    inbox.id,
                    i,
                    f"1795760000.M{i}P4242Q{i}R0123456789abcdef.host",
                    f"<{i * 7919 % count}.{i}@example.org>",
                    f"report {i} " + "x" * 40,
                    f"sender{i % 97}@example.org",
                    f"someone{i % 13}@example.org",
                    1_700_000_000 + i * 60,
                )
                for i in range(1, count + 1)
            ),
        )
        store.commit()
    finally:
        store.close()


def test_a_resync_changing_many_rows_holds_memory_that_stops_growing(tmp_path: Path) -> None:
    """1% of a folder expunged and 1% flagged on the server, applied to the index in one
    transaction. The pages changed stayed in memory up to 8 MiB: peak RSS growth of the
    change (this test) 3.1 MB at 20,000 messages, 7.1 MB at 100,000 and 6.4 MB at
    200,000 (a 1% re-sync of one folder of 200,000 messages peaked at 38 MB, 27 with
    20,000). With SQLite's default 2 MiB: 1.9, 0.8 and 0.4 MB."""
    grew = {}
    for count in (SMALL, BIG):
        home = tmp_path / str(count)
        _index(home, count)
        gone, flagged, grew[count] = map(int, python_words(RSS_PEAK_PRELUDE + PEAK, str(home)))
        assert gone == flagged == count // 100
    assert grew[BIG] - grew[SMALL] < 2048, grew
