"""Big folders paired again after a UIDVALIDITY change, against the real Dovecot, in
memory that does not grow with the folder: the same is done with a small folder and a
big one, and the peaks of the syncs compared.

- No message has a Message-ID (a robot's mail archive): every message is paired again
  by size and header digest (byte-identical twins by whole digest).
- Every message has one, and the server gave them all new UIDs (a migration that
  copied the folder): every message is paired again by Message-ID and size, none is
  kept by its UID (`sync.keep`).

Either way nothing is downloaded or uploaded again, nothing deleted. The big sizes are
parameters: `MAILBAG_TEST_UNNAMED_MESSAGES` (default 8,000: ~30 s) and
`MAILBAG_TEST_RENUMBERED_MESSAGES` (default 12,000: ~60 s); 200000 is the scale run (a
few minutes each, `--timeout=0`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
COUNT = int(os.environ.get("MAILBAG_TEST_UNNAMED_MESSAGES", "8000"))
RENUMBERED = int(os.environ.get("MAILBAG_TEST_RENUMBERED_MESSAGES", "12000"))
USERS = ("robot", "robot-small", "moved", "moved-small")
#: peak RSS of the sync that pairs them all again, at most (measured: 28 MB at 1,000
#: messages, 30.3 MB at 8,000, 41.9 MB at 200,000; before, 67 MB at 200,000)
PEAK_MB = 60
#: how much more the big folder's peak may be than the small one's. Measured (VmHWM of
#: the child sync, this test): 1,000 -> 8,000 messages +2.0 to +2.3 MB (6,000: +2.0;
#: 3,000 -> 12,000: +2.6): SQLite's caches filling up to their fixed sizes (the index's
#: 2 MB while pairing again, the private databases'), then what is kept per message:
#: the plan's pairings (17 bytes), the server's UIDs and flags (9), the rows kept by
#: UID (`sync.keep`): 1,000 -> 200,000 +14.0 MB (~55 bytes a message, before the
#: leftovers' list was cut to 1,000). The same sync of one size gave the same peak
#: within 0.1 MB in three runs. Before (SQLite's 16 MiB cache, statement journals in
#: memory, temporary b-trees per query): +5.5 MB at 8,000, 28 -> 67 MB at 200,000.
#: So: 3 MB, and 64 bytes a message more.
#: Now nothing is kept per message (pairings go to a file, `plan.Pairs`; the server's
#: messages are not listed): 1,000 -> 8,000 +1.0 to +2.4 MB, what the old code grew too
#: at this size (the caches filling hide its ~30 bytes a message; the unit tests of
#: `repair` catch those); 24 bytes a message allow for the rest of the caches filling
#: at the full size.
GROWTH_KB = 3072 + 24 * (COUNT - SMALL) // 1024
#: The same for a renumbered folder. Measured (VmHWM of the child sync, 1,000 -> 12,000
#: messages): +4.6 MB (SQLite's caches filling: the index's 2 MB read while pairing,
#: the private databases', a sorter), 200,000 +5.7 MB (34.5 MB). Before: +7.5 MB at
#: 12,000 and 122 MB at 200,000: `keep` read every index row of a UID range in one
#: query, and a server that gave new UIDs above the old ones put all of them in the
#: first batch's range.
RENUMBERED_GROWTH_KB = 5632 + 8 * (RENUMBERED - SMALL) // 1024


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(users=dict.fromkeys(USERS, "robot-secret"), services={"imap"}) as box:
        yield box


def _report(i: int, named: bool = False) -> bytes:
    """Message i: no Message-ID (unless `named`); sizes repeat often (bodies of a few
    lengths), headers differ by subject and date; every 97th is a byte-identical copy of
    the one before."""
    n = i - 1 if i % 97 == 96 else i
    day, minute = divmod(n, 1440)
    body = "disk usage report\r\n" + "ok\r\n" * (n % 7)
    mid = f"Message-ID: <report.{i}@sandbox.test>\r\n" if named else ""
    return (
        f"From: cron@sandbox.test\r\nTo: ops@sandbox.test\r\n{mid}Subject: report {n % 500}\r\n"
        f"Date: Mon, {1 + day % 28:02d} Jun 2025 {minute // 60:02d}:{minute % 60:02d}:00 +0000"
        f"\r\nX-Run: {n}\r\n\r\n{body}"
    ).encode()


def _pair_again(sb: Sandbox, user: str, count: int, home: Path, *, renumber: bool = False) -> int:
    """Fill `user`'s INBOX with `count` messages, sync them, give the folder a new
    UIDVALIDITY and sync again in a child process: everything is paired again, nothing
    moves. Returns that sync's peak RSS (kB). `renumber`: the messages have
    Message-IDs, and are moved out of the folder and back (new UIDs, above the old
    ones) before the new UIDVALIDITY."""
    started = time.monotonic()
    assert append_many(sb, user, (_report(i, renumber) for i in range(count))) == count
    appended = time.monotonic() - started
    t = target(sb, user, threshold=count + 1)
    first = sync(t, home)
    assert_ok(first)
    assert totals(first)["new"] == count
    if renumber:
        with sb.control(user) as c:
            before = c.uids("INBOX")
            c.create("Aside")
            for source, dest in (("INBOX", "Aside"), ("Aside", "INBOX")):
                c.select(source)  # (a UID set of all, not a list: a line too long at scale)
                assert c.imap.uid("MOVE", "1:*", dest)[0] == "OK"
            assert min(c.uids("INBOX")) > max(before)  # (INBOX selected: Aside can go)
            c.delete_mailbox("Aside")
    sb.reset_uidvalidity(user, "INBOX")
    started = time.monotonic()
    again = sync_in_child(t, home, timeout=max(120, count / 200))
    repaired = time.monotonic() - started
    assert again.returncode == 0, again.stdout + again.stderr
    got = json.loads(again.stdout.splitlines()[-1])
    assert got["totals"] == {
        "new": 0,
        "updated": 0,
        "deleted": 0,
        "uploaded": 0,
        "paired": count,
        "restored": 0,
    }, got
    hashed = 0 if renumber else count
    assert got["folders"]["INBOX"] == {"paired_again": count, "paired_by_hash": hashed}
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        rows = store.conn.execute(
            "SELECT count(*), count(DISTINCT uid) FROM messages WHERE folder_id = ?", (inbox.id,)
        ).fetchone()
    assert tuple(rows) == (count, count)
    print(
        f"{count} messages: appended in {appended:.1f} s, paired again in {repaired:.1f} s "
        f"(a child process), its peak RSS {got['peak_rss_kb']} kB"
    )
    assert_nothing_left(t, home)
    return int(got["peak_rss_kb"])


def test_a_big_folder_without_message_ids_is_paired_again_in_memory_that_does_not_grow(
    sb: Sandbox, tmp_path: Path
) -> None:
    small = _pair_again(sb, "robot-small", SMALL, tmp_path / "small")
    big = _pair_again(sb, "robot", COUNT, tmp_path / "big")
    assert big < PEAK_MB * 1024, big
    assert big - small < GROWTH_KB, (small, big)


def test_a_big_folder_the_server_renumbered_is_paired_again_in_memory_that_does_not_grow(
    sb: Sandbox, tmp_path: Path
) -> None:
    small = _pair_again(sb, "moved-small", SMALL, tmp_path / "small", renumber=True)
    big = _pair_again(sb, "moved", RENUMBERED, tmp_path / "big", renumber=True)
    assert big < PEAK_MB * 1024, big
    assert big - small < RENUMBERED_GROWTH_KB, (small, big)
