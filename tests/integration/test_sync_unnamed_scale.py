"""A big folder where no message has a Message-ID (a robot's mail archive), against the
real Dovecot: after a UIDVALIDITY change every message is paired again by size and
header digest (byte-identical twins by whole digest), nothing is downloaded or
uploaded again, nothing deleted, and the sync's peak memory stays bounded.

The size is a parameter: `MAILBAG_TEST_UNNAMED_MESSAGES` (default 1,000, a few
seconds); `MAILBAG_TEST_UNNAMED_MESSAGES=200000` is the scale run (a few minutes)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from synctools import assert_ok, home_paths, sync, sync_in_child, target, totals

pytestmark = pytest.mark.sandbox
USER = "robot"
COUNT = int(os.environ.get("MAILBAG_TEST_UNNAMED_MESSAGES", "1000"))
#: peak RSS of the sync that pairs them all again (Python, SQLite caches, the plan):
#: measured 28 MB at 1,000 messages, 67 MB at 200,000 (the index's 16 MiB page cache
#: filled; the rest ~100 bytes a message: plan, listing, SQLite's own)
PEAK_MB = 120


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(users={USER: "robot-secret"}, services={"imap"}) as box:
        yield box


def _report(i: int) -> bytes:
    """Message i: no Message-ID; sizes repeat often (bodies of a few lengths), headers
    differ by subject and date; every 97th is a byte-identical copy of the one before."""
    n = i - 1 if i % 97 == 96 else i
    day, minute = divmod(n, 1440)
    body = "disk usage report\r\n" + "ok\r\n" * (n % 7)
    return (
        f"From: cron@sandbox.test\r\nTo: ops@sandbox.test\r\nSubject: report {n % 500}\r\n"
        f"Date: Mon, {1 + day % 28:02d} Jun 2025 {minute // 60:02d}:{minute % 60:02d}:00 +0000"
        f"\r\nX-Run: {n}\r\n\r\n{body}"
    ).encode()


def _append_all(sb: Sandbox, count: int) -> None:
    """APPEND messages 0..count-1 to INBOX, 500 in each command (MULTIAPPEND, LITERAL+):
    imaplib's one at a time takes ~3 ms each here (10 minutes at 200,000)."""
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(sb.ca_file))
    with (
        socket.create_connection((sb.host, sb.ports.imaps)) as raw,
        ctx.wrap_socket(raw, server_hostname=sb.host) as conn,
        conn.makefile("rb") as answers,
    ):

        def finish(tag: bytes) -> None:
            while not (line := answers.readline()).startswith(tag + b" "):
                assert line, "connection closed"
            assert line.startswith(tag + b" OK"), line

        answers.readline()  # (the greeting)
        conn.sendall(
            b'L LOGIN "%s" "%s"\r\n' % (sb.address(USER).encode(), sb.password(USER).encode())
        )
        finish(b"L")
        for start in range(0, count, 500):
            # one MULTIAPPEND (RFC 3502) of 500: Dovecot saves them in one transaction
            parts = [b"A APPEND INBOX"]
            for i in range(start, min(count, start + 500)):
                data = _report(i)
                parts.append(b" {%d+}\r\n%s" % (len(data), data))
            conn.sendall(b"".join(parts) + b"\r\n")
            finish(b"A")


def test_a_big_folder_without_message_ids_is_paired_again_in_bounded_memory(
    sb: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    started = time.monotonic()
    _append_all(sb, COUNT)
    appended = time.monotonic() - started
    t = target(sb, USER, threshold=COUNT + 1)
    first = sync(t, home)
    assert_ok(first)
    assert totals(first)["new"] == COUNT
    sb.reset_uidvalidity(USER, "INBOX")
    started = time.monotonic()
    again = sync_in_child(t, home, timeout=max(120, COUNT / 200))
    repaired = time.monotonic() - started
    assert again.returncode == 0, again.stdout + again.stderr
    got = json.loads(again.stdout.splitlines()[-1])
    assert got["totals"] == {
        "new": 0,
        "updated": 0,
        "deleted": 0,
        "uploaded": 0,
        "paired": COUNT,
        "restored": 0,
    }, got
    assert got["folders"]["INBOX"] == {"paired_again": COUNT, "paired_by_hash": COUNT}
    assert got["peak_rss_kb"] < PEAK_MB * 1024, got["peak_rss_kb"]
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(USER, "INBOX")
        rows = store.conn.execute(
            "SELECT count(*), count(DISTINCT uid) FROM messages WHERE folder_id = ?", (inbox.id,)
        ).fetchone()
    assert tuple(rows) == (COUNT, COUNT)
    print(
        f"{COUNT} messages: appended in {appended:.1f} s, paired again in {repaired:.1f} s "
        f"(a child process), its peak RSS {got['peak_rss_kb']} kB"
    )
    final = sync(t, home)
    assert_ok(final)
    assert sum(totals(final).values()) == 0, totals(final)
