"""A real server without UIDPLUS (Dovecot with the capability hidden; the client then
takes no UID from an APPEND): messages uploaded there are paired with their server
copies at the next sync, those without a Message-ID by size and header digest, files
with bare LF line ends as the server gives them, instead of being uploaded again at
every sync; and after a UIDVALIDITY change there, all are paired again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from synctools import (
    assert_nothing_left,
    assert_ok,
    assert_same_but_line_ends,
    home_paths,
    sync,
    target,
    totals,
)

pytestmark = pytest.mark.sandbox
USER = "nouidplus"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(
        users={USER: "nouidplus-secret"}, services={"imap"}, imap_without={"UIDPLUS"}
    ) as box:
        yield box


def _bare(subject: str, body: str) -> bytes:
    return (
        f"From: robot@sandbox.test\r\nTo: someone@sandbox.test\r\nSubject: {subject}\r\n"
        f"Date: Tue, 3 Mar 2026 09:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


DRAFT = (
    b"From: me@sandbox.test\r\nSubject: a draft\r\nMessage-ID: <draft-1@sandbox.test>\r\n"
    b"\r\nto be sent\r\n"
)
REPORTS = [_bare("disk report", "disk 1 is full"), _bare("disk report", "disk 2 is full")]
LF_REPORT = _bare("lf report", "written by procmail\r\nwith LF").replace(b"\r\n", b"\n")


def test_uploads_are_paired_at_the_next_sync_not_uploaded_again(
    sb: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    sb.fill(USER, 5, "INBOX", seed=41)
    t = target(sb, USER)
    assert_ok(sync(t, home))
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(USER, "INBOX")
        for data in (DRAFT, *REPORTS, LF_REPORT):
            store.add_bytes(inbox, data)
    first = sync(t, home)
    assert_ok(first)
    assert totals(first)["uploaded"] == 4
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(USER, "INBOX")
        unpaired = [m for m in store.folder_messages(inbox) if m.uid is None]
        assert len(unpaired) == 4  # (no UID came back from the APPENDs)
    sb.fill(USER, 2, "INBOX", seed=42)  # new there meanwhile
    second = sync(t, home)
    assert_ok(second)
    assert {k: totals(second)[k] for k in ("new", "uploaded", "paired", "deleted")} == {
        "new": 2,
        "uploaded": 0,
        "paired": 4,
        "deleted": 0,
    }
    assert assert_same_but_line_ends(sb, USER, home) == 11
    assert_nothing_left(t, home)
    # a UIDVALIDITY change there: all paired again, nothing copied either way
    sb.reset_uidvalidity(USER, "INBOX")
    again = sync(t, home)
    assert_ok(again)
    (inbox_report,) = [f for f in again.folders if f.name == "INBOX"]
    assert (inbox_report.paired_again, inbox_report.new, inbox_report.uploaded) == (11, 0, 0)
    assert inbox_report.paired_by_hash == 3
    assert assert_same_but_line_ends(sb, USER, home) == 11
    assert_nothing_left(t, home)
