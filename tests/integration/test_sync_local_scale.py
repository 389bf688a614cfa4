"""A big folder re-synced without CONDSTORE (every re-sync of a changed folder reads it
whole) after a mail reader flagged one message here and the same number of messages
changed on the server in a small folder and a big one (flags, expunges), against the
real Dovecot: everything converges, and the sync's peak memory hardly grows with the
folder: their peaks are compared. (The memory a change takes grows with the number of
changes, up to the index's spill size: `sync.imap._SPILL_KIB`.)

The big size is a parameter: `MAILBAG_TEST_LOCAL_SCALE_MESSAGES` (default 20,000: ~20 s);
`MAILBAG_TEST_LOCAL_SCALE_MESSAGES=200000` is the scale run (a few minutes)."""

from __future__ import annotations

import compileall
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import mailbag
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from synctools import (
    append_many,
    assert_nothing_left,
    assert_ok,
    home_paths,
    sync,
    sync_in_child,
    target,
    totals,
)

pytestmark = pytest.mark.sandbox
SMALL = 1000
COUNT = int(os.environ.get("MAILBAG_TEST_LOCAL_SCALE_MESSAGES", "20000"))
USERS = ("reader", "reader-small")
#: messages flagged there, and as many expunged there, in each folder
CHANGES = 50
#: peak RSS of that re-sync, at most
PEAK_MB = 60
#: how much more the big folder's peak may be than the small one's. Measured (VmHWM of the
#: child sync, this test, mailbag byte-compiled): 1,000 -> 20,000 messages +7.9 MB before
#: (the names of the folder's files in sets, ~115 bytes a message; the index's rows read
#: through a 16 MiB page cache), +3.1 MB now (SQLite's default 2 MB cache filling up; the
#: names as hashes, ~20 bytes a message; the server's listing, ~6). So: 4 MB, and 32 bytes
#: a message more.
GROWTH_KB = 4096 + 32 * (COUNT - SMALL) // 1024


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    # mailbag byte-compiled first, as an installed copy is: a child that compiles modules
    # frees that memory after, and the sync then fills it unseen by the peak
    compileall.compile_dir(Path(mailbag.__file__).parent, quiet=1)
    with Sandbox(
        users=dict.fromkeys(USERS, "reader-secret"),
        services={"imap"},
        imap_without={"CONDSTORE", "QRESYNC"},
    ) as box:
        yield box


def _message(i: int) -> bytes:
    return (
        f"From: list{i % 31}@sandbox.test\r\nTo: reader@sandbox.test\r\n"
        f"Subject: note {i}\r\nMessage-ID: <{i}.note@sandbox.test>\r\n"
        f"Date: Mon, {1 + i % 28:02d} Jun 2025 10:00:00 +0000\r\n\r\nline {i}\r\n"
    ).encode()


def _resync_peak(sb: Sandbox, user: str, count: int, home: Path) -> int:
    """Fill `user`'s INBOX with `count` messages and sync them; then flag one here as a
    mail reader would (a rename), change `CHANGES` twice on the server and sync again in a child
    process. Returns that sync's peak RSS (kB)."""
    append_many(sb, user, (_message(i) for i in range(count)))
    t = target(sb, user, threshold=count + 1)
    first = sync(t, home)
    assert_ok(first)
    assert totals(first)["new"] == count
    k = CHANGES
    with Store.open(home_paths(home)) as store:
        # (the UIDs as synced: a control session's SEARCH ALL of 200,000 is too long a line
        # for imaplib)
        uids = [uid for (uid,) in store.conn.execute("SELECT uid FROM messages ORDER BY uid")]
        mine = uids[count // 2]  # (neither changed nor expunged there)
        (key,) = store.conn.execute("SELECT key FROM messages WHERE uid = ?", (mine,)).fetchone()
        entry = store.folder(user, "INBOX").maildir.find(key)
    with sb.control(user) as c:
        c.store("INBOX", uids[:k], "+FLAGS", ["\\Flagged"])
        c.expunge("INBOX", uids[-k:])
    assert entry is not None
    os.rename(entry.path, entry.root / "cur" / f"{key}:2,S")  # read in the mail reader
    again = sync_in_child(t, home, timeout=max(120, count / 500))
    assert again.returncode == 0, again.stdout + again.stderr
    got = json.loads(again.stdout.splitlines()[-1])
    assert got["totals"] == {
        "new": 0,
        "updated": k + 1,
        "deleted": k,
        "uploaded": 0,
        "paired": 0,
        "restored": 0,
    }, got
    with sb.control(user) as c:
        c.select("INBOX")
        typ, data = c.imap.uid("FETCH", str(mine), "(FLAGS)")
        assert typ == "OK" and b"\\Seen" in data[0], data  # (pushed to the server)
    assert_nothing_left(t, home)
    print(f"{count} messages: the re-sync's peak RSS {got['peak_rss_kb']} kB")
    return int(got["peak_rss_kb"])


def test_a_big_folder_read_whole_after_changes_on_both_sides_takes_memory_that_hardly_grows(
    sb: Sandbox, tmp_path: Path
) -> None:
    small = _resync_peak(sb, "reader-small", SMALL, tmp_path / "small")
    big = _resync_peak(sb, "reader", COUNT, tmp_path / "big")
    assert big < PEAK_MB * 1024, big
    assert big - small < GROWTH_KB, (small, big)
