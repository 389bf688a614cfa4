from __future__ import annotations

from pathlib import Path

from mailbag.paths import Paths
from mailbag.store.index import Store


def test_folder_counts_totals_and_unread(tmp_path: Path) -> None:
    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    with Store.open(paths) as store:
        inbox = store.folder("a", "INBOX", role="inbox")
        store.folder("a", "Empty")
        other = store.folder("b", "INBOX")
        for n in range(5):
            flags = {"\\Seen"} if n < 2 else set()
            store.add_bytes(inbox, f"Subject: {n}\r\n\r\nx\r\n".encode(), flags=flags)
        gone = store.add_bytes(other, b"Subject: gone\r\n\r\nx\r\n")
        store.remove(gone)
        counts = {
            (f.account, f.name): (total, unread) for f, total, unread in store.folder_counts()
        }
    assert counts == {("a", "INBOX"): (5, 3), ("a", "Empty"): (0, 0), ("b", "INBOX"): (0, 0)}


def test_unread_counts_ignore_other_flags(tmp_path: Path) -> None:
    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    with Store.open(paths) as store:
        inbox = store.folder("a", "INBOX", role="inbox")
        for flags in ({"\\Flagged", "$Seen_by_bot"}, {"\\Answered", "\\Seen"}, {"NotSeen"}, set()):
            store.add_bytes(inbox, b"Subject: x\r\n\r\nx\r\n", flags=flags)
        ((_, total, unread),) = store.folder_counts()
    assert (total, unread) == (4, 3)
