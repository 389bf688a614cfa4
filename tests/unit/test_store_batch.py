"""The download fast paths of the store: batched durability, batch insert and delivery,
the header capture of downloads, and the envelope's fast Date and header scanners
(each checked against the general code it short-cuts)."""

from __future__ import annotations

import email.utils
import itertools
import os
import re
from pathlib import Path

import pytest

from mailbag.errors import StoreError
from mailbag.paths import Paths
from mailbag.store import maildir as maildir_mod
from mailbag.store.envelope import _date, decode_words, envelope_from_bytes, header_fields
from mailbag.store.index import NewMessage, Store
from mailbag.store.maildir import Maildir, MaildirEntry, sync_batch
from mailbag.sync.apply import _Capture


def _store(tmp_path: Path) -> Store:
    p = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    return Store.open(p, defer_indexing=True)


def _write_tmp(md: Maildir, data: bytes) -> str:
    key, fh = md.open_tmp()
    with fh:
        fh.write(data)
    return key


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_sync_batch_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool
) -> None:
    md = Maildir(tmp_path / "box")
    md.create()
    keys = [_write_tmp(md, b"Subject: x\r\n\r\nbody\r\n") for _ in range(5)]
    calls: list[str] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    if not syncfs:
        monkeypatch.setattr(maildir_mod, "_syncfs", None)
    sync_batch(md.root / "tmp", [md.tmp_path(k) for k in keys])
    # one syncfs covers the batch; without it every file and then the directory
    assert len(calls) == (0 if syncfs else 6)


def test_sync_batch_uses_fsync_on_file_systems_syncfs_may_not_cover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    md = Maildir(tmp_path / "box")
    md.create()
    keys = [_write_tmp(md, b"x") for _ in range(3)]
    synced: list[int] = []
    monkeypatch.setattr(maildir_mod, "_syncfs", lambda fd: synced.append(fd) or 0)
    monkeypatch.setattr(maildir_mod, "_trusted_devices", {})
    monkeypatch.setattr(maildir_mod, "mount_type", lambda dev: "fuse.sshfs")
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd) or real_fsync(fd))
    sync_batch(md.root / "tmp", [md.tmp_path(k) for k in keys])
    assert synced == [] and len(fsyncs) == 4


def test_mount_type_of_real_mounts(tmp_path: Path) -> None:
    assert maildir_mod.mount_type(os.stat("/proc").st_dev) == "proc"
    assert maildir_mod.mount_type(os.stat(tmp_path).st_dev) is not None


def test_sync_batch_reports_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maildir_mod, "_syncfs", lambda fd: 5)  # EIO from the kernel
    monkeypatch.setattr(maildir_mod, "_syncfs_trusted", lambda dev: True)
    with pytest.raises(OSError, match="syncfs"):
        sync_batch(tmp_path, [tmp_path / "x"])


def test_add_messages_inserts_delivers_and_refuses_duplicates(tmp_path: Path) -> None:
    store = _store(tmp_path)
    folder = store.folder("a", "INBOX")
    store.commit()
    md = folder.maildir
    items = [
        NewMessage(
            key=_write_tmp(md, b"Subject: m%d\r\nMessage-ID: <m%d@x>\r\n\r\nhi\r\n" % (i, i)),
            envelope=envelope_from_bytes(b"Subject: m%d\r\nMessage-ID: <m%d@x>\r\n\r\n" % (i, i)),
            size=30,
            flags=frozenset({"\\Seen"}) if i % 2 else frozenset(),
            uid=i + 1,
            synced=True,
        )
        for i in range(4)
    ]
    assert store.add_messages(folder, items) == 4
    assert md.tmp_names() == []
    entries = md.scan()
    assert {e.subdir for e in entries.values()} == {"cur", "new"}
    assert entries[items[1].key].name == items[1].key + ":2,S"
    rows = store.conn.execute(
        "SELECT uid, subject, message_id, flags, synced_flags FROM messages ORDER BY uid"
    ).fetchall()
    assert rows[1] == (2, "m1", "<m1@x>", "\\Seen", "\\Seen")
    assert len(rows) == 4
    again = [NewMessage(key=_write_tmp(md, b"x"), envelope=items[0].envelope, size=1, uid=1)]
    with pytest.raises(StoreError, match="already in folder"):
        store.add_messages(folder, again)
    assert not store.conn.in_transaction
    assert store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 4
    store.close()


def test_capture_keeps_exactly_the_header_block(tmp_path: Path) -> None:
    msg = b"Subject: a\r\nFrom: b\r\n\r\nSubject: not a header\r\n" + b"x" * 1000
    for cut in range(1, len(msg), 7):  # the header end may fall across writes
        path = tmp_path / f"f{cut}"
        cap = _Capture(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for i in range(0, len(msg), cut):
            assert cap.write(memoryview(msg)[i : i + cut]) == len(msg[i : i + cut])
        cap.close()
        assert cap.head == b"Subject: a\r\nFrom: b\r\n\r\n"
        assert cap.size == len(msg)
        assert path.read_bytes() == msg
    bare = _Capture(os.open(tmp_path / "bare", os.O_WRONLY | os.O_CREAT, 0o600))
    bare.write(b"Subject: a\n\nbody\r\n\r\n")
    bare.close()
    assert bare.head == b"Subject: a\n\n"


def test_capture_write_failure_is_a_store_error(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDONLY | os.O_CREAT, 0o600)
    cap = _Capture(fd)
    with pytest.raises(StoreError, match="cannot write"):
        cap.write(b"data")
    cap.close()


def _old_date(raw: bytes) -> float | None:
    parsed = email.utils.parsedate_tz(raw.decode("latin-1"))
    return None if parsed is None else float(email.utils.mktime_tz(parsed))


@pytest.mark.parametrize(
    "raw",
    [
        b"Tue, 14 Nov 2023 22:38:20 +0000",
        b"14 Nov 2023 22:38 -0800",
        b" Sun,  1 Jan 2023 00:00:00 +0130 (CET)",
        b"Mon, 31 Feb 2023 25:61:61 +2359",  # out of range: normalised as email.utils does
        b"Tue, 14 Nov 2023 22:38:20 -0000",  # unknown zone: left to email.utils
        b"Tue, 14 Nov 23 22:38:20 +0000",
        b"Tue, 14 Nov 2023 22:38:20 GMT",
    ],
)
def test_fast_date_agrees_with_email_utils(raw: bytes) -> None:
    assert _date(raw) == _old_date(raw)


def test_fast_date_rejects_nonsense() -> None:
    assert _date(b"") is None
    assert _date(b"yesterday") is None
    assert _date(b"Tue, 14 Nov 0000 22:38:20 +0000") is None


def _header_fields_general(data: bytes) -> dict[bytes, bytes]:
    wanted = {b"message-id", b"subject", b"from", b"to", b"cc", b"date"}
    wanted |= {b"in-reply-to", b"references", b"content-type"}
    return header_fields(data, set(wanted))  # an equal but other set: the line loop


def test_header_scan_agrees_with_the_line_loop() -> None:
    names = [b"From", b"SUBJECT", b"Subject ", b"To", b"X-Other", b"Fromage", b"From x"]
    values = [b" hello", b"\tworld", b"", b" a:b", b"  spaced  "]
    lines = [b" cont", b"\tmore", b"garbage"] + [n + b":" + v for n in names for v in values]
    checked = 0
    for combo in itertools.islice(itertools.product(lines, repeat=3), 0, None, 7):
        for sep in (b"\r\n", b"\n"):
            data = sep.join(combo) + sep + sep + b"Subject: body" + sep
            assert header_fields(data) == _header_fields_general(data)
            checked += 1
    assert checked > 1000


def test_collapsed_white_space_matches_the_regex() -> None:
    spaces = re.compile(r"[\s\x00]+")
    for text in ["", "  a  b ", "a\x00\x00b", "a\xa0\u2003b\x85", "\t\r\n x \x1c y"]:
        assert decode_words(text.encode()) == spaces.sub(" ", text).strip()


def test_file_renames_and_removals_overlap_the_index_but_failures_stop_the_plan(
    tmp_path: Path,
) -> None:
    # the helper thread renames and removes files while the index records them; the
    # caller commits only after it: a failure there is raised, and the caller's
    # rollback leaves the index as it was (the row of the file not removed is kept)
    from mailbag.sync.apply import apply_plan
    from mailbag.sync.events import FolderReport, no_progress
    from mailbag.sync.imap import _NoServer
    from mailbag.sync.plan import DeleteLocal, Plan, SetFlags

    seen, flagged = frozenset({"\\Seen"}), frozenset({"\\Seen", "\\Flagged"})
    store = _store(tmp_path)
    try:
        inbox = store.folder("acct", "INBOX")
        rows = []
        for uid in (1, 2, 3):
            m = store.add_bytes(inbox, b"Subject: %d\r\n\r\nhi\r\n" % uid, flags=seen)
            store.pair(m.id, uid, seen)
            rows.append(m)
        store.update_folder(inbox, uidvalidity=9)
        store.commit()
        inbox = store.folder_by_id(inbox.id)

        def plan_for() -> Plan:
            one, two, three = rows
            return Plan(
                actions=[
                    SetFlags(1, one.key, one.id, flagged, True, frozenset(), frozenset()),
                    DeleteLocal(2, two.key, two.id),
                    DeleteLocal(3, three.key, three.id),
                ]
            )

        def apply(entries: dict[str, MaildirEntry]) -> None:
            apply_plan(
                plan_for(),
                store=store,
                folder=inbox,
                remote=_NoServer(),
                entries=entries,
                report=FolderReport("INBOX"),
                on_progress=no_progress,
                uidvalidity=9,
            )

        doomed = inbox.maildir.scan()[rows[1].key].path
        doomed.unlink()
        doomed.mkdir()  # something that cannot be removed like a file
        with pytest.raises(StoreError):
            apply(inbox.maildir.scan())
        store.rollback()
        assert [store.get(m.id) is not None for m in rows] == [True, True, True]
        assert store.get(rows[0].id).flags == seen  # type: ignore[union-attr]
        doomed.rmdir()
        doomed.write_bytes(b"Subject: 2\r\n\r\nhi\r\n")
        apply(inbox.maildir.scan())
        store.commit()
        assert store.get(rows[1].id) is None and store.get(rows[2].id) is None
        assert store.get(rows[0].id).flags == flagged  # type: ignore[union-attr]
        assert {e.name.partition(":2,")[2] for e in inbox.maildir.scan().values()} == {"FS"}
    finally:
        store.close()


def test_unpair_all_leaves_the_rows_kept_as_they_are_and_pairs_the_rest(tmp_path: Path) -> None:
    # after a UIDVALIDITY change where the server kept its UIDs: rows already recorded
    # with the UID and flags found again are only checked; a candidate whose row says
    # otherwise is paired anyway, every other row's UID is voided
    store = _store(tmp_path)
    folder = store.folder("acct", "INBOX")
    rows = [store.add_bytes(folder, f"Subject: {i}\r\n\r\nbody\r\n".encode()).id for i in range(5)]
    for uid, row in enumerate(rows, start=10):
        store.pair(row, uid)
        store.record_flags(row, {"\\Seen"})
    store.conn.execute(
        "UPDATE messages SET moved_from_folder = 7, moved_from_uid = 3 WHERE id = ?", (rows[1],)
    )
    store.record_flags(rows[2], {"\\Seen", "\\Flagged"}, synced=False)  # changed here
    store.commit()
    store.conn.execute(
        "CREATE TEMP TRIGGER written AFTER UPDATE ON messages BEGIN "
        "INSERT INTO written VALUES (new.id); END"
    )
    store.conn.execute("CREATE TEMP TABLE written(row INTEGER)")
    # rows 0-2 kept as candidates, row 3 paired with another UID (by `pair_many`), row 4
    # not paired again
    store.unpair_all(
        folder, [(rows[0], 10, "\\Seen"), (rows[1], 11, "\\Seen"), (rows[2], 12, "\\Seen")]
    )
    store.pair_many([(99, "\\Seen", "\\Seen", rows[3])])
    got = {
        row: (uid, flags, synced, moved)
        for row, uid, flags, synced, moved in store.conn.execute(
            "SELECT id, uid, flags, synced_flags, moved_from_uid FROM messages"
        )
    }
    assert got == {
        rows[0]: (10, "\\Seen", "\\Seen", None),
        rows[1]: (11, "\\Seen", "\\Seen", None),  # (a pending move's marks cleared)
        rows[2]: (12, "\\Seen", "\\Seen", None),  # (its row said otherwise: paired again)
        rows[3]: (99, "\\Seen", "\\Seen", None),
        rows[4]: (None, "\\Seen", None, None),
    }
    written = [r for (r,) in store.conn.execute("SELECT row FROM written")]
    assert rows[0] not in written  # left as it was
    assert sorted(set(written)) == sorted(rows[1:])
    store.close()
