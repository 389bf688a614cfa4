"""`FolderReport`'s committed counts: what a failed try's rollback takes back."""

from __future__ import annotations

from mailbag.sync.events import FolderReport


def test_a_rollback_takes_back_what_was_counted_since_the_last_commit() -> None:
    report = FolderReport("INBOX", notes=["created on the server"])
    report.paired, report.paired_again, report.updated = 20, 20, 2
    report.notes.append("UIDVALIDITY changed")
    report.committed()
    report.uploaded, report.deleted, report.paired_by_hash = 1, 3, 4
    report.notes.append("not committed")
    report.new, report.restored = 10, 1  # (downloads count once committed: kept as they are)
    report.rolled_back()
    assert report.to_json() == {
        "name": "INBOX",
        "new": 10,
        "updated": 2,
        "deleted": 0,
        "uploaded": 0,
        "paired": 20,
        "paired_again": 20,
        "paired_by_hash": 0,
        "restored": 1,
        "error": None,
        "notes": ["created on the server", "UIDVALIDITY changed"],
    }


def test_before_any_commit_a_rollback_leaves_what_the_report_was_made_with() -> None:
    report = FolderReport("Sent", uploaded=2, notes=["a note"])
    report.uploaded += 5
    report.notes.append("later")
    report.rolled_back()
    assert (report.uploaded, report.notes) == (2, ["a note"])
    assert report == FolderReport("Sent", uploaded=2, notes=["a note"])  # (kept: not compared)
