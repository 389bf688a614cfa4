"""A sync's renames of existing files (flag changes, expunged messages taken out) are
durable before the index commit that records them: each directory they changed is
fsynced once, after the renames, before the COMMIT (tests/durability.py records it)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from durability import assert_renames_durable_before_commit, record
from mailbag.sandbox import Sandbox
from synctools import assert_ok, assert_same, home_paths, sync, target, totals

pytestmark = pytest.mark.sandbox
USERS = ["durable0", "durable1"]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(users={u: f"{u}-secret" for u in USERS}, services={"imap"}) as box:
        yield box


@pytest.mark.parametrize("new_mail", [False, True], ids=["server-changes-only", "with-new-mail"])
def test_renames_are_fsynced_once_per_directory_before_their_commit(
    sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_mail: bool
) -> None:
    user = USERS[new_mail]
    home = tmp_path / "home"
    boxes = ("INBOX", "Work/Projects", "Archive")
    for i, box in enumerate(boxes):
        sb.fill(user, 12, box, seed=i + 1)
    t = target(sb, user)
    assert_ok(sync(t, home))
    time.sleep(0.25)  # (past a timestamp tick: the fast path is armed by the next run)
    assert_ok(sync(t, home))
    with sb.control(user) as c:
        for box in boxes:
            uids = c.uids(box)
            c.store(box, uids[:4], "+FLAGS", ["\\Flagged"])  # unseen ones move new/ -> cur/
            c.store(box, uids[4:6], "-FLAGS", ["\\Seen"])
            c.expunge(box, uids[6:8])
        if new_mail:  # (this folder goes the usual way: a commit before the download)
            c.append("Archive", b"Subject: one more\r\nMessage-ID: <more@x>\r\n\r\nhi\r\n")
    seam = record(monkeypatch)
    report = sync(t, home, connections=1)
    assert_ok(report)
    assert totals(report)["deleted"] == 6 and totals(report)["updated"] >= 12
    checked = assert_renames_durable_before_commit(seam)
    mail = os.path.realpath(home_paths(home).mail_dir / user)
    for folder in ("INBOX", "Work/Projects", "Archive"):
        assert f"{mail}/{folder}/cur" in checked, checked
    assert any(d.endswith("/new") for d in checked), checked  # (unseen mail was flagged)
    monkeypatch.undo()
    assert_same(sb, user, home)
