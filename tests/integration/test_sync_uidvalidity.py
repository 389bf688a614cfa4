"""A server folder's UIDVALIDITY changes (a migration, a rebuilt index) against the real
Dovecot: the messages are paired again by Message-ID and size, only what is really new
is downloaded, nothing is deleted on either side, both sides' flags are kept, the report
says so; and a sync killed (SIGKILL) in the middle of it converges when run again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbag.protocols.imap import client as client_module
from mailbag.protocols.imap.parser import scan_identity_lines
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from synctools import (
    Target,
    assert_ok,
    assert_same,
    home_paths,
    server_state,
    sync,
    sync_in_child,
    target,
    totals,
)

pytestmark = pytest.mark.sandbox
USERS = [f"uidv{i}" for i in range(12)]
_next_user = iter(USERS)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """One Dovecot for this module; every test gets a user of its own."""
    with Sandbox(users={u: f"{u}-secret" for u in USERS}, services={"imap"}) as box:
        yield box


@pytest.fixture
def user() -> str:
    return next(_next_user)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _migrated(sb: Sandbox, user: str, home: Path) -> Target:
    """Synced mail, then changes on both sides while the server's folders get new
    UIDVALIDITYs (and some messages new UIDs in another order), then new mail there."""
    sb.fill(user, 24, "INBOX", seed=11, seen_ratio=0.5)
    sb.fill(user, 6, "Archive", seed=12)
    t = target(sb, user)
    assert_ok(sync(t, home))
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        first = min(store.folder_messages(inbox), key=lambda m: m.uid or 0)
        store.set_flags(first, first.flags | {"\\Flagged", "$todo"})  # not pushed yet
        store.add_bytes(inbox, b"Subject: here only\r\nMessage-ID: <here@x>\r\n\r\nhi\r\n")
    with sb.control(user) as c:
        uids = c.uids("INBOX")
        c.expunge("INBOX", [uids[2]])  # gone there: the copy here is kept (uploaded)
        c.create("Moving")
        for uid in reversed(uids[-6:]):  # new UIDs, in the reverse order
            c.move("INBOX", [uid], "Moving")
        c.move("Moving", c.uids("Moving"), "INBOX")
        c.delete_mailbox("Moving")
    sb.reset_uidvalidity(user, "INBOX")
    sb.reset_uidvalidity(user, "Archive")
    # (after the reset: Dovecot may rebuild a Maildir's flags from its file names then)
    with sb.control(user) as c:
        c.store("INBOX", [c.uids("INBOX")[1]], "+FLAGS", ["\\Answered"])
    sb.fill(user, 3, "INBOX", seed=13)  # really new
    return t


def test_a_new_uidvalidity_pairs_again_downloads_only_new_mail_and_deletes_nothing(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _migrated(sb, user, home)
    scanned: list[int] = []

    def counting(data: bytes, known: dict[bytes, tuple[str, ...]]) -> tuple[list[Any], int]:
        found, used = scan_identity_lines(data, known)
        scanned.append(len(found))
        return found, used

    monkeypatch.setattr(client_module, "scan_identity_lines", counting)
    report = sync(t, home)
    # the server's identities were read by the scanner (answers cut by a read: not)
    assert sum(scanned) >= 25
    assert_ok(report)
    by_name = {f.name: f for f in report.folders}
    inbox, archive = by_name["INBOX"], by_name["Archive"]
    assert (inbox.paired, inbox.new, inbox.uploaded, inbox.deleted) == (23, 3, 2, 0)
    assert (archive.paired, archive.new, archive.uploaded, archive.deleted) == (6, 0, 0, 0)
    assert inbox.updated == 2  # the flags added here and there, now on both sides
    assert any(
        "UIDVALIDITY changed" in n
        and "23 messages paired again by Message-ID and size, 3 new there to download, 2 only "
        "here to upload; nothing was deleted"
        in n
        for n in inbox.notes
    ), inbox.notes
    assert assert_same(sb, user, home) == 24 - 1 + 3 + 2 + 6
    flags = [f for _, f in server_state(sb, user)["INBOX"].values()]  # (the same here)
    assert sum(1 for f in flags if {"\\Flagged", "$todo"} <= f) == 1
    assert sum(1 for f in flags if "\\Answered" in f) == 1
    again = sync(t, home)
    assert_ok(again)
    assert sum(totals(again).values()) == 0, totals(again)


@pytest.mark.parametrize("point", ["paired:1", "local-files:1", "upload:1", "download:2"])
def test_a_sync_killed_while_pairing_again_converges(
    sb: Sandbox, user: str, home: Path, point: str
) -> None:
    t = _migrated(sb, user, home)
    crashed = sync_in_child(t, home, crash=point)
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout, crashed.stderr)
    again = sync_in_child(t, home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert assert_same(sb, user, home) == 24 - 1 + 3 + 2 + 6  # nothing lost or doubled
    final = sync(t, home)
    assert_ok(final)
    assert sum(totals(final).values()) == 0, totals(final)
