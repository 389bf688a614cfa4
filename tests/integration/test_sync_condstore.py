"""Sync with a server that offers CONDSTORE but not QRESYNC (RFC 7162 without its
re-sync half), as some providers do: the client enables CONDSTORE only, skips folders
whose HIGHESTMODSEQ did not move, and otherwise lists every UID with its flags. Flag
changes and expunges made on either side converge, and a run after that changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.errors import SandboxError
from mailbag.protocols.trace import Transcript
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from mailbag.sync.imap import SyncOptions, sync_account
from synctools import (
    assert_ok,
    assert_same,
    home_paths,
    server_state,
    sync,
    target,
    totals,
)

pytestmark = pytest.mark.sandbox
USERS = ["cs1", "cs2"]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(
        users={u: f"{u}-secret" for u in USERS}, services={"imap"}, imap_without={"QRESYNC"}
    ) as box:
        yield box


def test_the_client_enables_condstore_only(sb: Sandbox, tmp_path: Path) -> None:
    sb.fill("cs2", 3, "INBOX", seed=4)
    t = target(sb, "cs2")
    trace = tmp_path / "trace.log"
    transcript = Transcript(trace)
    try:
        report = sync_account(
            t.account(),
            t.password,
            home_paths(tmp_path / "home"),
            options=SyncOptions(connections=1),
            transcript=transcript,
        )
    finally:
        transcript.close()
    assert_ok(report)
    sent = [line for line in trace.read_bytes().splitlines() if b" C: " in line]
    assert any(b"ENABLE CONDSTORE" in line for line in sent)
    assert not any(b"QRESYNC" in line for line in sent)
    received = trace.read_bytes()
    assert b"CONDSTORE" in received and b"QRESYNC" not in received
    assert b"HIGHESTMODSEQ" in received


def test_flag_changes_and_expunges_converge(sb: Sandbox, tmp_path: Path) -> None:
    user = "cs1"
    sb.fill(user, 30, "INBOX", seed=1, seen_ratio=0.5)
    sb.fill(user, 8, "Work", seed=2)
    t = target(sb, user)
    home = tmp_path / "home"
    first = sync(t, home)
    assert_ok(first)
    assert totals(first)["new"] == assert_same(sb, user, home) == 38

    quiet = sync(t, home)
    assert_ok(quiet)
    assert all(f.skipped for f in quiet.folders), "unchanged HIGHESTMODSEQ: nothing to ask"

    # flags only (the message count stays): HIGHESTMODSEQ moves, so INBOX is looked at
    with sb.control(user) as c:
        uids = c.uids("INBOX")
        c.store("INBOX", uids[:4], "+FLAGS", ["\\Flagged"])
        c.store("INBOX", uids[4:6], "+FLAGS", ["$Label1"])
        c.store("INBOX", uids[:10], "-FLAGS", ["\\Seen"])
    flagged = sync(t, home)
    assert_ok(flagged)
    by_name = {f.name: f for f in flagged.folders}
    assert by_name["INBOX"].updated >= 6 and not by_name["INBOX"].skipped
    assert by_name["Work"].skipped
    assert totals(flagged)["new"] == totals(flagged)["deleted"] == 0
    assert_same(sb, user, home)

    # expunges on the server; here another Maildir program flags one and deletes one
    with sb.control(user) as c:
        c.expunge("INBOX", uids[10:13])
        c.store("Work", c.uids("Work")[:1], "+FLAGS", ["\\Answered"])
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        keys = {m.uid: m.key for m in store.folder_messages(inbox)}
        entries = inbox.maildir.scan()
        entry = entries[keys[uids[20]]]
        os.rename(entry.path, entry.root / "cur" / f"{entry.key}:2,FS")
        inbox.maildir.remove(entries[keys[uids[21]]])
    both = sync(t, home)
    assert_ok(both)
    tot = totals(both)
    assert tot["deleted"] == 4 and tot["new"] == 0, tot
    assert assert_same(sb, user, home) == 38 - 4
    server = server_state(sb, user)
    assert {"\\Flagged", "\\Seen"} <= server["INBOX"][uids[20]][1]
    assert uids[21] not in server["INBOX"]
    assert not set(uids[10:13]) & set(server["INBOX"])

    settled = sync(t, home)
    assert_ok(settled)
    assert sum(totals(settled).values()) == 0, totals(settled)


def test_removing_an_unknown_capability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="NOT-A-CAPABILITY"):
        Sandbox(tmp_path, services={"imap"}, imap_without={"not-a-capability"}).start()
