"""`Store.recover` after a crash in a big folder: it looks up the rows of the files left
in tmp/, not every row of the folder (a dict of every key and its flags: ~110 bytes of
Python objects a message, ~23 MB in a 200,000 message folder)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from mailbag.paths import Paths
from mailbag.store.index import Store

MSG = b"Subject: hi\r\nMessage-ID: <hi@example.org>\r\n\r\nhello\r\n"


def test_recovering_one_delivery_in_a_big_folder_reads_only_its_row(tmp_path: Path) -> None:
    p = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    store = Store.open(p)
    try:
        inbox = store.folder("acct", "INBOX")
        store.commit()
        store.conn.execute("BEGIN")
        store.conn.executemany(
            "INSERT INTO messages (folder_id, uid, key, flags, added) VALUES (?, ?, ?, ?, 0)",
            ((inbox.id, i, f"1795760000.M{i}P4242Q{i}.host", "\\Seen") for i in range(30000)),
        )
        store.conn.execute("COMMIT")
        m = store.add_bytes(inbox, MSG, flags={"\\Seen"}, commit=False)
        store._pending.deliver.clear()  # (a crash between the commit and the rename)
        store.commit()
        tracemalloc.start()
        try:
            assert store.recover(inbox) == 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert store.read_bytes(m) == MSG
        assert peak < 1024 * 1024, peak  # (every row's key and flags: 3.4 MB)
    finally:
        store.close()
