"""Sync with servers that offer less than Dovecot does: one without LIST-STATUS
(folders listed, then their STATUS pipelined), and a plain IMAP4rev1 server without
CONDSTORE, QRESYNC, LIST-STATUS or ESEARCH (every folder checked with one
`UID FETCH 1:* (FLAGS)`). On both, new mail, flag changes and expunges made on either
side converge, unchanged folders are skipped where STATUS can tell, and a settled
account syncs to nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.protocols.trace import Transcript
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from mailbag.sync.events import AccountReport
from mailbag.sync.imap import SyncOptions, sync_account
from synctools import Target, assert_ok, assert_same, home_paths, server_state, target, totals

pytestmark = pytest.mark.sandbox
USER = "plain"
SERVERS = {
    "no-list-status": {"LIST-STATUS"},
    "imap4rev1": {"CONDSTORE", "QRESYNC", "LIST-STATUS", "ESEARCH"},
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Sandbox]]:
    kind: str = request.param
    with Sandbox(users={USER: "plain-secret"}, services={"imap"}, imap_without=SERVERS[kind]) as sb:
        yield kind, sb


def _sync(t: Target, home: Path, trace: Path) -> tuple[AccountReport, list[bytes]]:
    """Sync once over one connection, and what the client sent."""
    transcript = Transcript(trace)
    try:
        report = sync_account(
            t.account(),
            t.password,
            home_paths(home),
            options=SyncOptions(connections=1),
            transcript=transcript,
        )
    finally:
        transcript.close()
    sent = [line for line in trace.read_bytes().splitlines() if b" C: " in line]
    trace.unlink()
    return report, sent


def test_changes_on_both_sides_converge(server: tuple[str, Sandbox], tmp_path: Path) -> None:
    kind, sb = server
    sb.fill(USER, 20, "INBOX", seed=11, seen_ratio=0.5)
    sb.fill(USER, 6, "Work", seed=12)
    t = target(sb, USER)
    home = tmp_path / "home"
    trace = tmp_path / "trace.log"

    first, sent = _sync(t, home, trace)
    assert_ok(first)
    assert totals(first)["new"] == assert_same(sb, USER, home) == 26
    assert not any(b"RETURN (STATUS" in line for line in sent), "LIST-STATUS is not on offer"
    if kind == "imap4rev1":
        assert not any(b"CONDSTORE" in line or b"QRESYNC" in line for line in sent)

    quiet, sent = _sync(t, home, trace)
    assert_ok(quiet)
    assert sum(totals(quiet).values()) == 0, totals(quiet)
    assert any(b" STATUS " in line for line in sent), "folders checked with STATUS"
    selected = {line.split(b" SELECT ")[1] for line in sent if b" SELECT " in line}
    if kind == "no-list-status":
        # HIGHESTMODSEQ in STATUS says nothing moved: no folder is even selected
        assert all(f.skipped for f in quiet.folders)
        assert not selected
    else:
        # without CONDSTORE flags may have changed unseen, except in an empty folder
        assert selected == {b"INBOX", b"Work"}
        assert {f.name for f in quiet.folders if not f.skipped} == {"INBOX", "Work"}

    # the server changes flags, expunges and gets new mail; here another Maildir
    # program flags one message and deletes another
    with sb.control(USER) as c:
        uids = c.uids("INBOX")
        c.store("INBOX", uids[:3], "+FLAGS", ["\\Flagged"])
        c.store("INBOX", uids[3:5], "-FLAGS", ["\\Seen"])
        c.expunge("INBOX", uids[5:7])
    sb.fill(USER, 2, "Work", seed=13)
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(USER, "INBOX")
        keys = {m.uid: m.key for m in store.folder_messages(inbox)}
        entries = inbox.maildir.scan()
        entry = entries[keys[uids[10]]]
        os.rename(entry.path, entry.root / "cur" / f"{entry.key}:2,FS")
        inbox.maildir.remove(entries[keys[uids[11]]])

    both, sent = _sync(t, home, trace)
    assert_ok(both)
    tot = totals(both)
    assert tot["new"] == 2 and tot["deleted"] == 3, tot
    if kind == "imap4rev1":
        assert any(b"UID FETCH 1:* (UID FLAGS)" in line for line in sent), "flags in one go"
    assert assert_same(sb, USER, home) == 26 - 3 + 2
    state = server_state(sb, USER)
    assert {"\\Flagged", "\\Seen"} <= state["INBOX"][uids[10]][1]
    assert uids[11] not in state["INBOX"]

    settled, _ = _sync(t, home, trace)
    assert_ok(settled)
    assert sum(totals(settled).values()) == 0, totals(settled)
