"""The local store: Maildir conventions, the index, crash recovery. Real files, real SQLite."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from mailbag.errors import StoreError, UsageError
from mailbag.paths import Paths
from mailbag.store.envelope import envelope_from_bytes
from mailbag.store.index import SCHEMA_VERSION, Store, folder_dir
from mailbag.store.maildir import Maildir, flags_to_info, info_to_flags, split_name
from pyrun import python_words

MSG = (
    b"From: =?utf-8?q?Chlo=C3=A9?= <chloe@example.org>\r\n"
    b"To: bob@example.net, carol@example.net\r\n"
    b"Subject: =?utf-8?q?R=C3=A9union?= de\r\n projet\r\n"
    b"Date: Tue, 03 Feb 2026 10:00:00 +0100\r\n"
    b"Message-ID: <abc@example.org>\r\n"
    b"In-Reply-To: <parent@example.org>\r\n"
    b"References: <root@example.org>\r\n  <parent@example.org>\r\n"
    b"Content-Type: multipart/mixed; boundary=x\r\n"
    b"\r\n--x\r\nSubject: not a header\r\n\r\nbody\xff\xfe\r\n--x--\r\n"
)


def paths(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")


def test_flags_round_trip() -> None:
    flags = {"\\Seen", "\\Flagged", "\\Answered", "\\Draft", "\\Deleted", "$Forwarded", "work"}
    assert flags_to_info(flags) == "DFPRST"
    assert info_to_flags("DFPRST") == flags - {"work"}
    assert split_name("123.M1P2.host:2,FS") == ("123.M1P2.host", "FS")
    assert split_name("123.M1P2.host") == ("123.M1P2.host", "")


def test_envelope_decodes_and_stops_at_the_body() -> None:
    env = envelope_from_bytes(MSG)
    assert env.subject == "Réunion de projet"
    assert env.from_addr == "Chloé <chloe@example.org>"
    assert env.to_addrs == "bob@example.net, carol@example.net"
    assert env.message_id == "<abc@example.org>"
    assert env.in_reply_to == "<parent@example.org>"
    assert env.references == "<root@example.org> <parent@example.org>"
    assert env.has_attachments
    assert env.date == 1770109200.0


def test_envelope_of_garbage_does_not_raise() -> None:
    env = envelope_from_bytes(b"\x00\xff: \r\nSubject: =?bogus?x?zz?=\r\nDate: yesterday\r\n\r\n")
    assert env.date is None
    assert env.message_id == ""


def test_folder_names_stay_inside_the_account(tmp_path: Path) -> None:
    base = tmp_path / "mail"
    for name in ("../../etc", "a/../../b", "INBOX/cur", ".hidden", "x\\y", "", "a\x00b"):
        p = folder_dir(base, "acct", name, "/")
        assert base / "acct" in p.parents
        assert ".." not in p.relative_to(base).parts
        assert p.name not in ("cur", "new", "tmp")
    assert folder_dir(base, "acct", "Work/Projects", "/") == base / "acct" / "Work" / "Projects"
    assert folder_dir(base, "acct", "Work.Projects", ".") == base / "acct" / "Work" / "Projects"
    assert folder_dir(base, "acct", "a/b", ".") == base / "acct" / "a%2Fb"


def test_add_list_flag_remove(tmp_path: Path) -> None:
    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX", role="inbox")
        assert inbox.maildir.exists()
        m = store.add_bytes(inbox, MSG)
        assert store.read_bytes(m) == MSG  # bytes kept exactly
        assert store.path(m).parent.name == "new"  # unseen, no flags: new/
        m2 = store.add_bytes(inbox, MSG.replace(b"abc@", b"def@"), flags={"\\Seen"})
        assert store.path(m2).parent.name == "cur"
        assert store.path(m2).name.endswith(":2,S")
        assert [x.id for x in store.messages(account="acct", unread=True)] == [m.id]
        assert store.lookup(m.short_id).subject == "Réunion de projet"

        m = store.set_flags(m, {"\\Seen", "\\Flagged", "work"})
        assert store.path(m).name.endswith(":2,FS")
        assert store.lookup(m.short_id).flags == {"\\Seen", "\\Flagged", "work"}
        assert store.messages(unread=True) == []

        store.remove(m)
        assert not any(inbox.maildir.scan().keys() & {m.key})
        with pytest.raises(UsageError):
            store.lookup(m.short_id)
        # never on the server: forgotten entirely
        assert store.get(m.id) is None
        assert [x.id for x in store.messages(limit=5)] == [m2.id]


def test_remove_of_a_synced_message_leaves_a_tombstone(tmp_path: Path) -> None:
    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        key, fh = inbox.maildir.open_tmp()
        fh.write(MSG)
        fh.close()
        m = store.add_message(inbox, key, flags={"\\Seen"}, uid=7, synced=True)
        store.remove(m)
        gone = store.get(m.id)
        assert gone is not None and gone.gone and gone.uid == 7
        assert store.messages() == []


def test_move_keeps_the_server_copy_reference(tmp_path: Path) -> None:
    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        arch = store.folder("acct", "Archive", role="archive")
        key, fh = inbox.maildir.open_tmp()
        fh.write(MSG)
        fh.close()
        m = store.add_message(inbox, key, uid=3, synced=True)
        moved = store.move(m, arch)
        assert moved.folder == "Archive" and moved.uid is None
        assert (moved.moved_from_folder, moved.moved_from_uid) == (inbox.id, 3)
        assert store.read_bytes(moved) == MSG
        assert inbox.maildir.scan() == {}
        assert store.get(m.id) is None


def test_index_ids_ordering_newest_first(tmp_path: Path) -> None:
    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        ids = []
        for day in (3, 1, 2):
            data = MSG.replace(b"Tue, 03 Feb", f"Tue, 0{day} Feb".encode())
            ids.append(store.add_bytes(inbox, data.replace(b"abc", str(day).encode())).id)
        assert [m.id for m in store.messages(limit=2)] == [ids[0], ids[2]]


def test_uncommitted_delivery_stays_in_tmp_and_is_cleaned(tmp_path: Path) -> None:
    p = paths(tmp_path)
    store = Store.open(p)
    inbox = store.folder("acct", "INBOX")
    store.commit()
    store.add_bytes(inbox, MSG, commit=False)
    # the process dies here: no commit
    store.conn.close()
    store = Store.open(p)
    inbox = store.folder("acct", "INBOX")
    assert len(inbox.maildir.tmp_names()) == 1
    assert store.recover(inbox) == 0
    assert inbox.maildir.tmp_names() == []
    assert store.messages() == []
    store.close()


def test_committed_but_not_renamed_is_delivered_by_recover(tmp_path: Path) -> None:
    p = paths(tmp_path)
    store = Store.open(p)
    inbox = store.folder("acct", "INBOX")
    store.add_bytes(inbox, MSG, flags={"\\Seen"}, commit=False)
    # simulate a crash between the index commit and the renames
    store._pending.deliver.clear()
    store.commit()
    store.close()
    store = Store.open(p)
    inbox = store.folder("acct", "INBOX")
    (m,) = store.messages()
    with pytest.raises(StoreError):
        store.path(m)
    assert store.recover(inbox) == 1
    assert store.read_bytes(m) == MSG
    assert store.path(m).name.endswith(":2,S")
    store.close()


def test_foreign_tmp_files_are_left_alone(tmp_path: Path) -> None:
    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        (inbox.path / "tmp" / "1700000000.12345_1.otherhost").write_bytes(b"mutt writing")
        store.recover(inbox)
        assert inbox.maildir.tmp_names() == ["1700000000.12345_1.otherhost"]


def test_schema_version_and_newer_index_refused(tmp_path: Path) -> None:
    p = paths(tmp_path)
    Store.open(p).close()
    conn = sqlite3.connect(p.index_file)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer mailbag"):
        Store.open(p)


def test_damaged_index_is_explained(tmp_path: Path) -> None:
    p = paths(tmp_path)
    p.index_file.parent.mkdir(parents=True)
    p.index_file.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as info:
        Store.open(p)
    assert info.value.hint and "nothing is downloaded twice" in info.value.hint


def test_other_program_changes_are_visible_in_a_scan(tmp_path: Path) -> None:
    md = Maildir(tmp_path / "box")
    md.create()
    key, fh = md.open_tmp()
    fh.write(MSG)
    fh.close()
    entry = md.deliver(key, ())
    assert entry.subdir == "new"
    # mutt reads it: moves to cur with S, then flags it
    os.rename(entry.path, md.root / "cur" / f"{key}:2,FS")
    (found,) = md.scan().values()
    assert found.flags == {"\\Seen", "\\Flagged"}
    # set_flags keeps letters it does not know (e.g. Dovecot keywords a-z)
    moved = md.set_flags(found, {"\\Seen"})
    os.rename(moved.path, md.root / "cur" / f"{key}:2,Sa")
    again = md.set_flags(md.scan()[key], {"\\Seen", "\\Answered"})
    assert again.name == f"{key}:2,RSa"


def test_recover_leaves_a_live_writers_tmp_file_alone(tmp_path: Path) -> None:
    """Another mailbag process writing into tmp/ right now is not crash debris."""
    import subprocess
    import sys

    from mailbag.store.maildir import Maildir

    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        writer = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(30)"],
        )
        try:
            key = Maildir.new_key().replace(f"P{os.getpid()}Q", f"P{writer.pid}Q")
            inbox.maildir.tmp_path(key).write_bytes(b"being written")
            store.recover(inbox)
            assert inbox.maildir.tmp_names() == [key]  # its writer is alive
        finally:
            writer.kill()
            writer.wait()
        store.recover(inbox)
        assert inbox.maildir.tmp_names() == []  # now it is debris


def test_remove_account_forgets_rows_and_files_of_that_account_only(tmp_path: Path) -> None:
    p = paths(tmp_path)
    with Store.open(p) as store:
        for account in ("gone", "kept"):
            inbox = store.folder(account, "INBOX")
            store.add_bytes(inbox, MSG)
            store.add_bytes(store.folder(account, "Work/Deep", delimiter="/"), MSG)
        assert store.remove_account("gone") == 2
        assert store.accounts() == ["kept"]
        assert [m.account for m in store.messages()] == ["kept", "kept"]
        assert not (p.mail_dir / "gone").exists()
        assert (p.mail_dir / "kept" / "INBOX" / "cur").is_dir()
        assert store.remove_account("never-there") == 0


@pytest.mark.parametrize("remover", ["rm", "thread"])
def test_discard_takes_a_message_out_and_the_store_removes_it_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, remover: str
) -> None:
    import mailbag.store.maildir as maildir

    if remover == "thread":  # (a system without an `rm` program)
        monkeypatch.setattr(maildir, "_RM", None)
    else:
        assert maildir._RM is not None
    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        kept = store.add_bytes(inbox, MSG, flags={"\\Seen"})
        gone = store.add_bytes(inbox, MSG.replace(b"abc@", b"def@"), flags={"\\Seen"})
        entries = inbox.maildir.scan()
        moved = inbox.maildir.discard(entries[gone.key])
        assert moved is not None and os.path.dirname(moved) == str(inbox.path / "tmp")
        # out of the folder at once (no reader looks in tmp/), under a name of our own
        assert set(inbox.maildir.scan()) == {kept.key}
        assert inbox.maildir.tmp_names() == [os.path.basename(moved)]
        assert os.path.basename(moved) != gone.key
        store.remove_later(moved)
        store.finish_removals()
        assert inbox.maildir.tmp_names() == []
        # a file gone already: nothing to remove later
        assert inbox.maildir.discard(entries[gone.key]) is None
        # the store keeps removing after a wait
        again = inbox.maildir.discard(inbox.maildir.scan()[kept.key])
        assert again is not None
        store.remove_later(again)
        store.start_removals()
    assert not os.path.exists(again)  # (close waits for the removals)


def test_discarded_files_a_crash_left_in_tmp_are_removed_by_recover(tmp_path: Path) -> None:
    p = paths(tmp_path)
    with Store.open(p) as store:
        inbox = store.folder("acct", "INBOX")
        m = store.add_bytes(inbox, MSG, flags={"\\Seen"})
    # another process takes the file out, then dies before removing it
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from mailbag.store.maildir import Maildir\n"
        "md = Maildir(Path(sys.argv[1]))\n"
        "md.discard(md.scan()[sys.argv[2]])\n"
        "os._exit(0)\n"
    )
    python_words(code, str(inbox.path), m.key)
    with Store.open(p) as store:
        inbox = store.folder("acct", "INBOX")
        assert len(inbox.maildir.tmp_names()) == 1
        assert store.recover(inbox) == 0
        assert inbox.maildir.tmp_names() == []


def test_dir_watch_reports_names_added_and_removed_since_each_watch(tmp_path: Path) -> None:
    import sys

    from mailbag.store.maildir import DirWatch

    watch = DirWatch.open()
    if not sys.platform.startswith("linux"):
        assert watch is None
        return
    assert watch is not None
    md = Maildir(tmp_path / "box")
    md.create()
    (md.root / "new" / "a").write_bytes(b"x")
    try:
        cur, new = watch.watch(md.root / "cur"), watch.watch(md.root / "new")
        assert cur is not None and new is not None and cur != new
        os.rename(md.root / "new" / "a", md.root / "cur" / "a:2,S")
        os.rename(md.root / "cur" / "a:2,S", md.root / "cur" / "a:2,FS")
        (md.root / "tmp" / "b").write_bytes(b"y")  # (tmp/ is not watched)
        os.rename(md.root / "tmp" / "b", md.root / "new" / "b")
        os.unlink(md.root / "new" / "b")
        assert watch.changes(cur) == [(True, "a:2,S"), (False, "a:2,S"), (True, "a:2,FS")]
        assert watch.changes(new) == [(False, "a"), (True, "b"), (False, "b")]
        # watched again: changes count from then on
        assert watch.watch(md.root / "cur") == cur
        assert watch.changes(cur) == []
        # a directory removed: what happened in it is no longer known
        os.unlink(md.root / "cur" / "a:2,FS")
        os.rmdir(md.root / "cur")
        assert watch.changes(cur) is None
        assert watch.changes(new) == [(False, "a"), (True, "b"), (False, "b")]
        assert watch.watch(tmp_path / "missing") is None
    finally:
        watch.close()
    # closed (the sync closes it once its checks are done): nothing is known any more
    assert watch.changes(new) is None


def test_a_savepoint_undoes_its_own_part_of_the_transaction_only(tmp_path: Path) -> None:
    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        store.commit()
        before = store.add_bytes(inbox, MSG, commit=False)
        with store.savepoint():
            kept = store.add_bytes(inbox, MSG.replace(b"abc@", b"kept@"), commit=False)
        with pytest.raises(StoreError), store.savepoint():
            store.add_bytes(inbox, MSG.replace(b"abc@", b"undone@"), commit=False)
            raise StoreError("this part fails")
        assert store.conn.in_transaction  # the rest waits for the caller's commit
        assert len(inbox.maildir.tmp_names()) == 2  # (the undone delivery's file is gone)
        store.commit()
        got = {m.message_id for m in store.messages()}
        assert got == {"<abc@example.org>", "<kept@example.org>"}
        assert {e.key for e in inbox.maildir.scan().values()} == {before.key, kept.key}


def test_a_savepoint_that_begins_the_transaction_is_the_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No SAVEPOINT (whose page copies SQLite keeps in a temporary file) when nothing
    came before it: a failure rolls the whole transaction back, success leaves it open."""
    statements: list[str] = []
    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        store.commit()
        store.conn.set_trace_callback(statements.append)
        with pytest.raises(StoreError), store.savepoint():
            store.add_bytes(inbox, MSG.replace(b"abc@", b"undone@"), commit=False)
            raise StoreError("this part fails")
        assert not store.conn.in_transaction  # all of it undone: it was all there was
        assert inbox.maildir.tmp_names() == []  # (and its delivery's file gone)
        with store.savepoint():
            kept = store.add_bytes(inbox, MSG.replace(b"abc@", b"kept@"), commit=False)
        assert store.conn.in_transaction  # it waits for the caller's commit
        store.commit()
        store.conn.set_trace_callback(None)
        assert not [s for s in statements if "SAVEPOINT" in s or "RELEASE" in s]
        assert {m.message_id for m in store.messages()} == {"<kept@example.org>"}
        assert {e.key for e in inbox.maildir.scan().values()} == {kept.key}


@pytest.mark.parametrize("remover", ["rm", "thread"])
def test_settled_removals_complete_even_when_the_process_dies(tmp_path: Path, remover: str) -> None:
    import time

    p = paths(tmp_path)
    with Store.open(p) as store:
        inbox = store.folder("acct", "INBOX")
        m = store.add_bytes(inbox, MSG, flags={"\\Seen"})
    # another process takes the file out, settles its removal and dies at once
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "import mailbag.store.maildir as maildir\n"
        "from mailbag.store.index import Store\n"
        "from mailbag.paths import Paths\n"
        "if sys.argv[3] == 'thread':\n"
        "    maildir._RM = None\n"
        "t = Path(sys.argv[1])\n"
        "store = Store.open(Paths(config_dir=t, data_dir=t / 'data', state_dir=t / 'state'))\n"
        "md = store.folder('acct', 'INBOX').maildir\n"
        "store.remove_later(md.discard(md.scan()[sys.argv[2]]))\n"
        "store.settle_removals()\n"
        "os._exit(0)\n"
    )
    python_words(code, str(tmp_path), m.key, remover)
    deadline = time.monotonic() + 10
    while inbox.maildir.tmp_names() and time.monotonic() < deadline:
        time.sleep(0.01)  # (an `rm` may still be at work)
    assert inbox.maildir.tmp_names() == []
    assert inbox.maildir.scan() == {}


def test_removals_of_a_few_files_wait_for_one_rm_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`flush` starts an `rm` only for a batch worth its start (`FLUSH_MIN`); the few
    removals of a typical sync go in one `rm` when the store closes."""
    import mailbag.store.maildir as maildir

    assert maildir._RM is not None
    spawned: list[int] = []
    real_spawn = os.posix_spawn

    def spawn(path: str, argv: list[str], *args: object, **kwargs: object) -> int:
        spawned.append(len(argv) - 3)  # ("rm", "-f", "--", paths...)
        return real_spawn(path, argv, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "posix_spawn", spawn)
    monkeypatch.setattr(maildir.Unlinker, "FLUSH_MIN", 5)
    files = [tmp_path / f"f{i}" for i in range(8)]
    for f in files:
        f.write_bytes(b"x")
    unlinker = maildir.Unlinker()
    for f in files[:3]:
        unlinker.put(str(f))
    unlinker.flush()
    assert spawned == []  # three are not worth a process yet
    for f in files[3:]:
        unlinker.put(str(f))
    unlinker.flush()
    assert spawned == [8]  # now all waiting go together
    extra = tmp_path / "late"
    extra.write_bytes(b"x")
    unlinker.put(str(extra))
    unlinker.flush()
    assert spawned == [8]
    unlinker.close()  # starts the rest and waits
    assert spawned == [8, 1]
    assert not any(f.exists() for f in [*files, extra])


def test_forget_many_drops_rows_and_tells_the_hooks_that_need_it(tmp_path: Path) -> None:
    from mailbag.store.index import Message

    told: list[int] = []

    class Counting:
        def message_added(self, store: Store, message: Message, path: Path) -> None:
            pass

        def message_removed(self, store: Store, message_id: int) -> None:
            told.append(message_id)

    with Store.open(paths(tmp_path)) as store:
        assert any(getattr(h, "rows_followed", False) for h in store.hooks)  # full text
        store.hooks.append(Counting())
        inbox = store.folder("acct", "INBOX")
        rows = [
            store.add_bytes(inbox, MSG.replace(b"abc@", f"m{i}@".encode())).id for i in range(4)
        ]
        store.commit()
        store.conn.execute("DELETE FROM fulltext_gone")
        store.forget_many(rows[1:3])
        store.forget_many([])
        store.commit()
        left = [r for (r,) in store.conn.execute("SELECT id FROM messages ORDER BY id")]
        assert left == [rows[0], rows[3]]
        assert told == rows[1:3]  # the hook without triggers of its own, once each
        gone = [r for (r,) in store.conn.execute("SELECT id FROM fulltext_gone ORDER BY id")]
        assert gone == rows[1:3]  # the full-text index learnt it from its triggers
        store.record_flags_many([(rows[0], "\\Flagged \\Seen")])
        store.commit()
        got = store.get(rows[0])
        assert got is not None and got.flags == frozenset({"\\Flagged", "\\Seen"})
        (synced,) = store.conn.execute(
            "SELECT synced_flags FROM messages WHERE id = ?", (rows[0],)
        ).fetchone()
        assert synced == "\\Flagged \\Seen"
