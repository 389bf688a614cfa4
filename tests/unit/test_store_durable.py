"""Renames the index records (flag changes, moves) are durable before its commit: each
directory they changed is fsynced once, after the renames, before the COMMIT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durability import assert_renames_durable_before_commit, record
from mailbag.paths import Paths
from mailbag.store.index import Store


def _store(tmp_path: Path) -> Store:
    return Store.open(
        Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    )


def _msg(i: int) -> bytes:
    return f"Subject: m{i}\r\nMessage-ID: <m{i}@x>\r\n\r\nbody {i}\r\n".encode()


def test_flag_changes_fsync_their_directories_once_before_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _store(tmp_path) as store:
        inbox = store.folder("acct", "INBOX")
        fresh = [store.add_bytes(inbox, _msg(i)) for i in range(3)]  # in new/
        seen = [store.add_bytes(inbox, _msg(i), flags={"\\Seen"}) for i in range(3, 6)]
        seam = record(monkeypatch)
        # a batch: several renames in new/ -> cur/ and within cur/, one commit
        for m in fresh + seen:
            store.set_flags(m, {*m.flags, "\\Flagged"}, commit=False)
        store.commit()
        root = os.path.realpath(inbox.maildir.root)
        assert assert_renames_durable_before_commit(seam) == {f"{root}/new", f"{root}/cur"}
        # and one flag change alone (the CLI's `mailbag flag`)
        seam.events.clear()
        store.set_flags(store.get(seen[0].id) or seen[0], {"\\Seen"})
        assert assert_renames_durable_before_commit(seam) == {f"{root}/cur"}


def test_a_move_makes_the_file_leaving_its_folder_durable_before_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _store(tmp_path) as store:
        inbox = store.folder("acct", "INBOX")
        archive = store.folder("acct", "Archive")
        m = store.add_bytes(inbox, _msg(1), flags={"\\Seen"})
        seam = record(monkeypatch)
        store.move(m, archive)
        root = os.path.realpath(inbox.maildir.root)
        assert f"{root}/cur" in assert_renames_durable_before_commit(seam)


def test_a_directory_gone_meanwhile_does_not_fail_the_commit(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        inbox = store.folder("acct", "INBOX")
        m = store.add_bytes(inbox, _msg(1))
        store.set_flags(m, {"\\Seen"}, commit=False)
        store.note_dir_changes(tmp_path / "no-such-folder" / "cur")
        store.commit()
        assert store.get(m.id).flags == {"\\Seen"}  # type: ignore[union-attr]
