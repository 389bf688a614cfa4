"""Two-way IMAP sync against the real Dovecot: every "never lose mail" promise of issue 4.

Each test has a sandbox of its own (it starts in about 0.1 s), so tests that break
the server or wipe state never disturb others.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbag.errors import SyncError
from mailbag.protocols.trace import Transcript
from mailbag.sandbox import Sandbox
from mailbag.store.index import Folder, Store
from mailbag.sync.events import AccountReport, Progress
from mailbag.sync.imap import sync_lock
from synctools import (
    SIZE,
    Target,
    assert_nothing_left,
    assert_ok,
    assert_same,
    home_paths,
    killed_at,
    local_state,
    rerun_in_child,
    server_state,
    sync,
    sync_in_child,
    target,
    totals,
)

pytestmark = pytest.mark.sandbox
USERS = [f"sync{i}" for i in range(60)]
_next_user = iter(USERS)


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    """One Dovecot for this module; every test gets a user of its own."""
    with Sandbox(users={u: f"{u}-secret" for u in USERS}, services={"imap", "smtp"}) as box:
        yield box


@pytest.fixture
def user() -> str:
    return next(_next_user)


@pytest.fixture
def sb(shared: Sandbox) -> Sandbox:
    return shared


@pytest.fixture
def own() -> Iterator[Sandbox]:
    """A sandbox of its own, for tests that stop or restart the server."""
    with Sandbox(users={u: f"{u}-secret" for u in USERS}, services={"imap"}) as box:
        yield box


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def fill(sb: Sandbox, user: str, n: int = SIZE) -> None:
    sb.fill(user, n, "INBOX", seed=1)
    sb.fill(user, max(3, n // 4), "Work/Projects", seed=2)
    sb.fill(user, max(2, n // 8), "Archive", seed=3)


def test_initial_sync_is_byte_exact_and_a_second_run_does_nothing(
    sb: Sandbox, user: str, home: Path
) -> None:
    fill(sb, user)
    t = target(sb, user)
    report = sync(t, home)
    assert_ok(report)
    n = assert_same(sb, user, home)
    assert totals(report)["new"] == n > 0
    # Maildir layout: nested folders as nested Maildirs, unseen mail in new/
    mail = home_paths(home).mail_dir / user
    assert (mail / "Work" / "Projects" / "cur").is_dir()
    assert any((mail / "INBOX" / "new").iterdir())
    again = sync(t, home)
    assert_ok(again)
    assert all(v == 0 for v in totals(again).values()), totals(again)
    assert all(f.skipped for f in again.folders)


def test_changes_on_both_sides_converge(sb: Sandbox, user: str, home: Path) -> None:
    fill(sb, user, 20)
    t = target(sb, user)
    assert_ok(sync(t, home))
    with sb.control(user) as c:
        uids = c.uids("INBOX")
        c.store("INBOX", uids[:3], "+FLAGS", ["\\Flagged"])
        c.store("INBOX", uids[3:5], "+FLAGS", ["$Important"])
        c.expunge("INBOX", uids[5:7])
        new_uid = c.append("INBOX", b"Subject: from the server\r\nMessage-ID: <s1@x>\r\n\r\nhi\r\n")
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        msgs = {m.uid: m for m in store.folder_messages(inbox)}
        # another Maildir program marks one answered (renames the file) and deletes another
        entry = inbox.maildir.scan()[msgs[uids[10]].key]
        os.rename(entry.path, entry.root / "cur" / f"{entry.key}:2,RS")
        inbox.maildir.remove(inbox.maildir.scan()[msgs[uids[11]].key])
        # mailbag itself flags one and stores a draft
        store.set_flags(msgs[uids[12]], msgs[uids[12]].flags | {"\\Flagged", "todo"})
        drafts = store.folder(user, "Drafts")
        store.add_bytes(
            drafts, b"Subject: draft\r\nMessage-ID: <d1@x>\r\n\r\nlater\r\n", flags={"\\Draft"}
        )
    report = sync(t, home)
    assert_ok(report)
    tot = totals(report)
    assert tot["new"] == 1 and tot["uploaded"] == 1 and tot["deleted"] == 3, tot
    assert_same(sb, user, home)
    server = server_state(sb, user)
    assert "\\Answered" in server["INBOX"][uids[10]][1]
    assert uids[11] not in server["INBOX"]
    assert {"\\Flagged", "todo"} <= server["INBOX"][uids[12]][1]
    assert new_uid in server["INBOX"]
    assert any(b"later" in data for data, _ in server["Drafts"].values())
    assert_nothing_left(t, home)


def test_flag_conflict_merges_three_ways(sb: Sandbox, user: str, home: Path) -> None:
    sb.fill(user, 3, "INBOX", seed=5, seen_ratio=1.0)
    t = target(sb, user)
    assert_ok(sync(t, home))
    uid = 1
    with sb.control(user) as c:
        c.store("INBOX", [uid], "+FLAGS", ["\\Answered"])  # added there
    with Store.open(home_paths(home)) as store:
        m = next(x for x in store.folder_messages(store.folder(user, "INBOX")) if x.uid == uid)
        store.set_flags(m, (m.flags - {"\\Seen"}) | {"\\Flagged"})  # unseen + flagged here
    assert_ok(sync(t, home))
    assert_same(sb, user, home)
    flags = server_state(sb, user)["INBOX"][uid][1]
    assert "\\Answered" in flags and "\\Flagged" in flags and "\\Seen" not in flags


def test_uidvalidity_reset_deletes_nothing_and_downloads_nothing(
    sb: Sandbox, user: str, home: Path
) -> None:
    fill(sb, user, 20)
    t = target(sb, user)
    assert_ok(sync(t, home))
    before = {k: dict(v) for k, v in local_state(home, user).items()}
    sb.reset_uidvalidity(user, "INBOX")
    report = sync(t, home)
    assert_ok(report)
    inbox = next(f for f in report.folders if f.name == "INBOX")
    assert inbox.new == 0 and inbox.deleted == 0 and inbox.uploaded == 0
    assert inbox.paired == len(before["INBOX"])
    assert any("UIDVALIDITY" in n for n in inbox.notes)
    assert_same(sb, user, home)


def test_missing_local_folder_is_downloaded_again_not_deleted_on_server(
    sb: Sandbox, user: str, home: Path
) -> None:
    sb.fill(user, 80, "INBOX")
    t = target(sb, user, threshold=10)
    assert_ok(sync(t, home))
    shutil.rmtree(home_paths(home).mail_dir / user / "INBOX")
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["restored"] == 80 and totals(report)["deleted"] == 0
    assert len(server_state(sb, user)["INBOX"]) == 80
    assert_same(sb, user, home)


def test_emptied_local_folder_stops_and_force_carries_it_out(
    sb: Sandbox, user: str, home: Path
) -> None:
    sb.fill(user, 30, "INBOX")
    t = target(sb, user, threshold=10)
    assert_ok(sync(t, home))
    inbox_dir = home_paths(home).mail_dir / user / "INBOX"
    for sub in ("cur", "new"):
        for f in (inbox_dir / sub).iterdir():
            f.unlink()
    time.sleep(0.1)  # old enough for the no-op fast path to trust the directory times
    report = sync(t, home)
    inbox = next(f for f in report.folders if f.name == "INBOX")
    assert inbox.error and "--force" in inbox.error and "30 of 30" in inbox.error
    assert len(server_state(sb, user)["INBOX"]) == 30  # nothing deleted there
    forced = sync(t, home, force=True)
    assert_ok(forced)
    assert server_state(sb, user)["INBOX"] == {}


def test_a_sync_leaves_its_wal_and_the_next_one_checkpoints_it(
    sb: Sandbox, user: str, home: Path, tmp_path: Path
) -> None:
    """The index is not checkpointed at the end of a sync (`Store.close`): its commits are
    durable in the WAL, which every reader sees; the next sync moves them into the
    database file while it logs in (`Store.checkpoint_ahead`)."""
    import sqlite3

    fill(sb, user, 12)
    t = target(sb, user)
    assert_ok(sync(t, home))
    index = home_paths(home).index_file
    wal = Path(f"{index}-wal")
    assert wal.exists() and wal.stat().st_size > 0
    with sqlite3.connect(index) as conn:
        (synced,) = conn.execute("SELECT count(*) FROM messages").fetchone()
    conn.close()
    assert synced == assert_same(sb, user, home)
    assert_ok(sync(t, home))  # nothing to do: it checkpoints what the first one left
    copy = tmp_path / "alone.sqlite3"
    shutil.copyfile(index, copy)  # the database file by itself, without its WAL
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (synced,)
    conn.close()


def test_wiped_index_pairs_instead_of_duplicating(sb: Sandbox, user: str, home: Path) -> None:
    fill(sb, user, 20)
    t = target(sb, user, threshold=5)
    assert_ok(sync(t, home))
    index = home_paths(home).index_file
    for suffix in ("", "-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    report = sync(t, home)
    assert_ok(report)
    tot = totals(report)
    assert tot["new"] == 0 and tot["uploaded"] == 0 and tot["deleted"] == 0, tot
    assert tot["paired"] == assert_same(sb, user, home)


def test_server_folder_suddenly_empty_stops(sb: Sandbox, user: str, home: Path) -> None:
    sb.fill(user, 30, "INBOX")
    t = target(sb, user, threshold=10)
    assert_ok(sync(t, home))
    with sb.control(user) as c:
        c.expunge("INBOX", c.uids("INBOX"))
    report = sync(t, home)
    inbox = next(f for f in report.folders if f.name == "INBOX")
    assert inbox.error and "--force" in inbox.error
    assert len(local_state(home, user)["INBOX"]) == 30  # all kept here
    assert not report.ok


def test_server_side_folder_rename_and_delete_and_local_create(
    sb: Sandbox, user: str, home: Path
) -> None:
    sb.fill(user, 5, "Old", seed=7)
    sb.fill(user, 4, "Doomed", seed=8)
    t = target(sb, user)
    assert_ok(sync(t, home))
    with sb.control(user) as c:
        c.rename("Old", "New")
        c.delete_mailbox("Doomed")
    with Store.open(home_paths(home)) as store:
        mine = store.folder(user, "Made here")
        store.add_bytes(mine, b"Subject: local\r\nMessage-ID: <l@x>\r\n\r\nx\r\n")
    report = sync(t, home)
    assert_ok(report)
    assert_same(sb, user, home)
    names = set(server_state(sb, user))
    assert {"New", "Made here"} <= names and "Doomed" not in names and "Old" not in names
    mail = home_paths(home).mail_dir / user
    assert (mail / "New").is_dir() and not (mail / "Old").exists()
    assert not (mail / "Doomed").exists()
    assert totals(report)["new"] == 0  # the renamed folder was not downloaded again


def test_local_move_is_a_server_move(sb: Sandbox, user: str, home: Path) -> None:
    sb.fill(user, 5, "INBOX", seed=9)
    t = target(sb, user)
    assert_ok(sync(t, home))
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        m = next(iter(store.folder_messages(inbox)))
        store.move(m, store.folder(user, "Archive"))
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["uploaded"] == 0 and totals(report)["new"] == 0
    assert_same(sb, user, home)
    assert len(server_state(sb, user)["Archive"]) == 1


def test_another_client_changing_things_during_a_sync_converges(
    sb: Sandbox, user: str, home: Path
) -> None:
    sb.fill(user, max(60, SIZE), "INBOX", seed=11)
    t = target(sb, user)
    disturbed = threading.Event()

    def disturb(event: Progress) -> None:
        if event.kind == "message" and not disturbed.is_set():
            disturbed.set()
            with sb.control(user) as c:
                uids = c.uids("INBOX")
                c.store("INBOX", uids[:10], "+FLAGS", ["\\Flagged"])
                c.expunge("INBOX", uids[-5:])
                c.append("INBOX", b"Subject: during\r\nMessage-ID: <during@x>\r\n\r\n.\r\n")

    assert_ok(sync(t, home, on_progress=disturb, connections=1))
    assert disturbed.is_set()
    assert_ok(sync(t, home))
    assert_same(sb, user, home)
    assert sum(totals(sync(t, home)).values()) == 0


def test_two_syncs_at_once_the_second_refuses(sb: Sandbox, user: str, home: Path) -> None:
    sb.fill(user, 5, "INBOX")
    t = target(sb, user)
    with sync_lock(home_paths(home), t.account().name), pytest.raises(SyncError) as info:
        sync(t, home)
    assert "another `mailbag sync`" in info.value.message and info.value.hint
    # for real: two processes at once; whatever the order, the result is exact
    procs = [sync_in_child(t, home) for _ in range(1)]
    assert procs[0].returncode == 0, procs[0].stderr
    assert_same(sb, user, home)


def test_two_processes_at_once_never_corrupt(sb: Sandbox, user: str, home: Path) -> None:
    import subprocess
    import sys

    import synctools

    sb.fill(user, max(80, SIZE), "INBOX")
    t = target(sb, user)
    import json

    spec = json.dumps({"target": t.__dict__, "home": str(home)})
    children = [
        subprocess.Popen(
            [sys.executable, synctools.__file__, spec],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [c.communicate(timeout=120) for c in children]
    codes = sorted(c.returncode for c in children)
    assert codes[0] == 0, outs
    if codes[1] != 0:  # the second one refused (it did not wait)
        assert any("another `mailbag sync`" in (o + e) for o, e in outs), outs
    assert_same(sb, user, home)


@pytest.mark.parametrize(
    "point", ["download:1", "download:7", "download:13", "upload:1", "upload:3"]
)
def test_sigkill_at_any_point_loses_and_duplicates_nothing(
    sb: Sandbox, user: str, home: Path, point: str
) -> None:
    fill(sb, user, SIZE)
    t = target(sb, user)
    if point.startswith("upload"):
        assert_ok(sync(t, home))
        with Store.open(home_paths(home)) as store:
            drafts = store.folder(user, "Drafts")
            for i in range(6):
                store.add_bytes(
                    drafts, f"Subject: d{i}\r\nMessage-ID: <d{i}@x>\r\n\r\n{i}\r\n".encode()
                )
    killed_at(t, home, point)
    rerun_in_child(t, home)
    n = assert_same(sb, user, home)
    assert n >= SIZE
    assert_nothing_left(t, home)


@pytest.mark.parametrize("point", ["local-files:1", "local-files:3"])
def test_sigkill_between_local_file_changes_and_their_commit_converges(
    sb: Sandbox, user: str, home: Path, point: str
) -> None:
    # the server changed flags and expunged messages; the sync renames and removes the
    # files, then dies before the index records it (in the first or the last folder)
    fill(sb, user, 24)
    t = target(sb, user)
    _settled(t, home)
    with sb.control(user) as c:
        for box in ("INBOX", "Work/Projects", "Archive"):
            uids = c.uids(box)
            c.store(box, uids[:2], "+FLAGS", ["\\Flagged"])
            c.expunge(box, uids[2:3])
    killed_at(t, home, point)
    # the files of the folders applied so far are changed, their rows not (the folders
    # changed only on the server share one transaction)
    with Store.open(home_paths(home)) as store:
        behind = [
            f.name
            for f in store.folders(user)
            if len(f.maildir.scan()) < len(list(store.folder_messages(f)))
        ]
    assert 1 <= len(behind) <= int(point.split(":")[1]), behind
    rerun_in_child(t, home)
    assert_same(sb, user, home)  # (and nothing left in any tmp/)
    assert_nothing_left(t, home)


def test_repeated_kills_during_a_big_download(sb: Sandbox, user: str, home: Path) -> None:
    fill(sb, user, SIZE * 2)
    t = target(sb, user)
    for k in (3, 5, 8, 2):
        proc = sync_in_child(t, home, crash=f"download:{k}")
        assert proc.returncode in (-9, 0), proc.stderr
    assert sync_in_child(t, home).returncode == 0
    assert_same(sb, user, home)


def test_dropped_connection_mid_fetch_resumes_without_downloading_again(
    sb: Sandbox, user: str, home: Path
) -> None:
    n = max(120, SIZE * 3)
    sb.fill(user, n, "INBOX", seed=4)
    t = target(sb, user)
    received = 0
    dropped = threading.Event()
    retries: list[str] = []

    def progress(event: Progress) -> None:
        nonlocal received
        if event.kind == "message":
            received += 1
            if received == n // 3 and not dropped.is_set():
                dropped.set()
                sb.drop_connections(user)
        elif event.kind == "retry":
            retries.append(event.detail)

    report = sync(t, home, on_progress=progress, connections=1)
    assert_ok(report)
    assert dropped.is_set() and retries
    # what was complete when the connection dropped was kept: nothing came twice
    assert received == n
    assert totals(report)["new"] == n
    assert_same(sb, user, home)


def test_server_restart_mid_sync_is_retried(own: Sandbox, user: str, home: Path) -> None:
    own.fill(user, 60, "INBOX")
    t = target(own, user)
    restarted = threading.Event()

    def progress(event: Progress) -> None:
        if event.kind == "message" and not restarted.is_set():
            restarted.set()
            own.restart_dovecot()

    report = sync(t, home, on_progress=progress, connections=1)
    assert_ok(report)
    assert restarted.is_set()
    assert_same(own, user, home)


def test_unreachable_server_says_what_it_could_not_do(own: Sandbox, user: str, home: Path) -> None:
    t = target(own, user)
    own.stop_service("dovecot")
    report = sync(t, home, retries=0)
    assert not report.ok and report.error and "refused" in report.error


def test_cli_sync_json_and_folders(
    sb: Sandbox,
    user: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from mailbag.cli.main import main

    sb.fill(user, 7, "INBOX")
    home = tmp_path / "cli-home"
    home.mkdir()
    monkeypatch.setenv("MAILBAG_HOME", str(home))
    from mailbag.config import save_account
    from mailbag.paths import Paths

    save_account(Paths.from_env(), sb.account(user, name="sync", password_command=True))
    code = main(["sync", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads(out.out)
    (acc,) = doc["accounts"]
    assert acc["name"] == "sync" and acc["ok"] is True and acc["error"] is None
    inbox = next(f for f in acc["folders"] if f["name"] == "INBOX")
    assert {k: inbox[k] for k in ("new", "updated", "deleted", "uploaded")} == {
        "new": 7,
        "updated": 0,
        "deleted": 0,
        "uploaded": 0,
    }
    assert main(["folders", "--json"]) == 0
    folders = json.loads(capsys.readouterr().out)
    row = next(f for f in folders if f["name"] == "INBOX")
    assert {"account": "sync", "name": "INBOX", "role": "inbox", "messages": 7}.items() <= (
        row.items()
    )
    assert 0 <= row["unread"] <= 7 and row["last_sync"] > time.time() - 600
    assert main(["folders", "--account", "nobody", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["folders", "--account", "sync"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if " INBOX " in x)
    assert line.startswith("sync  INBOX") and "7 messages" in line and line.endswith("(inbox)")


def test_fast_no_op_path_still_sees_changes_made_by_other_programs(
    sb: Sandbox, user: str, home: Path
) -> None:
    sb.fill(user, 6, "INBOX", seed=12, seen_ratio=0.0)
    t = target(sb, user)
    assert_ok(sync(t, home))
    time.sleep(0.25)
    assert_ok(sync(t, home))  # records the directory stamp (old enough now)
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        assert inbox.sync_state and inbox.sync_state.startswith("dirs=")
        entry = next(iter(inbox.maildir.scan().values()))
    # mutt reads a message: new/ -> cur/ with the S flag
    os.rename(entry.path, entry.root / "cur" / f"{entry.key}:2,S")
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["updated"] == 1
    assert_same(sb, user, home)


def _settled(t: Target, home: Path) -> None:
    """Sync until the fast no-change path is armed: the directory stamps are recorded
    only once the last change is older than a file-system timestamp tick."""
    assert_ok(sync(t, home))
    time.sleep(0.25)
    assert_ok(sync(t, home))


def _dir_times(folder_path: Path) -> tuple[int, int]:
    return (folder_path / "cur").stat().st_mtime_ns, (folder_path / "new").stat().st_mtime_ns


def test_no_op_sync_selects_nothing_and_opens_one_connection(
    sb: Sandbox, user: str, home: Path, tmp_path: Path
) -> None:
    fill(sb, user, 8)
    t = target(sb, user)
    _settled(t, home)
    trace = tmp_path / "trace.txt"
    transcript = Transcript(trace)
    try:
        report = sync(t, home, transcript=transcript, connections=4)
    finally:
        transcript.close()
    assert_ok(report)
    assert report.folders and all(f.skipped for f in report.folders)
    sent = [line for line in trace.read_text().splitlines() if " C: " in line]
    commands = [line.split(" C: ", 1)[1].split()[1].upper() for line in sent]
    assert commands.count("AUTHENTICATE") + commands.count("LOGIN") == 1, commands
    assert not {"SELECT", "EXAMINE", "FETCH", "UID"} & set(commands), commands
    # one round trip after the login: ENABLE and LIST-STATUS leave before any answer
    lines = trace.read_text().splitlines()
    enable = next(i for i, x in enumerate(lines) if " C: " in x and " ENABLE " in x)
    tag = lines[enable].split(" C: ", 1)[1].split()[0]
    answered = next(i for i, x in enumerate(lines) if f" S: {tag} OK" in x)
    assert "RETURN (" in lines[enable + 1] and " LIST " in lines[enable + 1]
    assert enable + 1 < answered


def test_a_small_re_sync_of_several_folders_uses_one_connection(
    sb: Sandbox, user: str, home: Path, tmp_path: Path
) -> None:
    fill(sb, user, 12)
    t = target(sb, user)
    _settled(t, home)
    with sb.control(user) as c:
        c.store("INBOX", c.uids("INBOX")[:2], "+FLAGS", ["\\Flagged"])
        c.expunge("Archive", c.uids("Archive")[:1])
        c.append("Work/Projects", b"Subject: one more\r\nMessage-ID: <more@x>\r\n\r\nhi\r\n")
    trace = tmp_path / "trace.txt"
    transcript = Transcript(trace)
    try:
        report = sync(t, home, transcript=transcript, connections=4)
    finally:
        transcript.close()
    assert_ok(report)
    assert totals(report)["deleted"] == 1 and totals(report)["new"] == 1
    assert totals(report)["updated"] == 2
    assert trace.read_text().count(" AUTHENTICATE ") == 1
    assert_same(sb, user, home)


def test_fast_path_sees_a_change_made_only_in_the_index(sb: Sandbox, user: str, home: Path) -> None:
    # a keyword flag set here renames no file: only the index row says it is pending
    sb.fill(user, 4, "INBOX", seed=31)
    t = target(sb, user)
    _settled(t, home)
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        before = _dir_times(inbox.path)
        m = next(x for x in store.folder_messages(inbox) if x.uid is not None)
        store.set_flags(m, m.flags | {"$Important"})
        uid = m.uid
    assert _dir_times(inbox.path) == before  # the directory times cannot tell
    report = sync(t, home)
    assert_ok(report)
    assert not next(f for f in report.folders if f.name == "INBOX").skipped
    with sb.control(user) as c:
        assert "$Important" in c.flags("INBOX")[uid]
    assert_same(sb, user, home)


def test_fast_path_sees_files_added_and_deleted_by_other_programs(
    sb: Sandbox, user: str, home: Path
) -> None:
    sb.fill(user, 5, "INBOX", seed=32)
    sb.fill(user, 3, "Archive", seed=33)
    t = target(sb, user)
    _settled(t, home)
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        archive = store.folder(user, "Archive")
        victim = next(iter(archive.maildir.scan().values()))
    # a delivery agent drops a message into INBOX/new; mutt deletes one in Archive
    (inbox.path / "new" / "1700000000.P1Q1.otherhost").write_bytes(
        b"From: a@example.org\r\nSubject: from elsewhere\r\n"
        b"Message-ID: <elsewhere-1@example.org>\r\n\r\nhello\r\n"
    )
    victim.path.unlink()
    report = sync(t, home)
    assert_ok(report)
    got = {f.name: f for f in report.folders}
    assert got["INBOX"].uploaded == 1 and got["Archive"].deleted == 1
    assert_same(sb, user, home)
    with sb.control(user) as c:
        assert len(c.uids("INBOX")) == 6 and len(c.uids("Archive")) == 2
    time.sleep(0.25)
    assert_nothing_left(t, home)


def _sync_states(home: Path, user: str) -> dict[str, str | None]:
    with Store.open(home_paths(home)) as store:
        return {f.name: f.sync_state for f in store.folders(user)}


def _traced_sync(t: Target, home: Path, tmp_path: Path) -> tuple[AccountReport, list[str]]:
    """A sync and the lines of its protocol trace."""
    trace = tmp_path / "trace.txt"
    transcript = Transcript(trace)
    try:
        report = sync(t, home, transcript=transcript)
    finally:
        transcript.close()
    return report, trace.read_text().splitlines()


def _full_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the folders the sync reads whole (each time)."""
    import mailbag.sync.imap as engine

    reads: list[str] = []
    full_read = engine._read_local
    monkeypatch.setattr(
        engine,
        "_read_local",
        lambda store, folder: reads.append(folder.name) or full_read(store, folder),
    )
    return reads


def test_server_changes_are_synced_from_the_qresync_delta_alone(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(sb, user, 16)
    t = target(sb, user)
    _settled(t, home)
    reads = _full_reads(monkeypatch)
    with sb.control(user) as c:
        inbox = c.uids("INBOX")
        c.store("INBOX", inbox[:3], "+FLAGS", ["\\Flagged"])
        c.store("INBOX", inbox[3:4], "-FLAGS", ["\\Seen"])
        c.expunge("INBOX", inbox[5:7])
        c.append("INBOX", b"Subject: new\r\nMessage-ID: <delta-new@x>\r\n\r\nhi\r\n")
        c.expunge("Archive", c.uids("Archive")[:1])
    report = sync(t, home)
    assert_ok(report)
    assert reads == []  # no folder was read whole: the delta was enough
    assert totals(report)["deleted"] == 3 and totals(report)["new"] == 1
    assert totals(report)["updated"] >= 3  # (the -Seen one may have been unseen already)
    assert_same(sb, user, home)
    # the run checked its own changes against the directories and re-armed the fast path
    states = _sync_states(home, user)
    assert states["INBOX"] and states["Archive"], states
    assert all(f.skipped for f in sync(t, home).folders)
    # and a change by another program after that is still seen (the times moved on)
    with Store.open(home_paths(home)) as store:
        folder = store.folder(user, "INBOX")
        entry = next(e for e in folder.maildir.scan().values() if "\\Seen" not in e.flags)
        other = next(m.uid for m in store.folder_messages(folder) if m.key != entry.key)
    os.rename(entry.path, entry.root / "cur" / f"{entry.key}:2,S")
    with sb.control(user) as c:
        c.store("INBOX", [other], "+FLAGS", ["\\Answered"])
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["updated"] == 2 and reads == ["INBOX"]
    assert_same(sb, user, home)
    # read whole and changed by this run: checked against every row, and re-armed
    assert _sync_states(home, user)["INBOX"]


def test_folders_changed_only_on_the_server_are_selected_in_one_round_trip(
    sb: Sandbox, user: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(sb, user, 24)
    t = target(sb, user)
    _settled(t, home)
    reads = _full_reads(monkeypatch)
    # every commit is a file-system flush: server-only changes of a folder (flags,
    # expunges) are recorded with the folder's new state in one transaction
    commits: list[int] = []
    real_commit = Store.commit

    def counting_commit(self: Store, *, fsync: bool = True) -> None:
        if self.conn.in_transaction:
            commits.append(1)
        real_commit(self, fsync=fsync)

    monkeypatch.setattr(Store, "commit", counting_commit)
    with sb.control(user) as c:
        for box in ("INBOX", "Work/Projects", "Archive"):
            uids = c.uids(box)
            c.store(box, uids[:2], "+FLAGS", ["\\Flagged"])
            c.store(box, uids[:1], "-FLAGS", ["\\Seen"])
            c.expunge(box, uids[2:3])
    report, lines = _traced_sync(t, home, tmp_path)
    assert_ok(report)
    assert totals(report)["deleted"] == 3 and totals(report)["updated"] >= 6
    assert reads == []
    # one for all: the folders' changes with their re-armed directory stamps
    assert len(commits) == 1, len(commits)
    monkeypatch.setattr(Store, "commit", real_commit)
    selects = [i for i, x in enumerate(lines) if " C: " in x and " SELECT " in x]
    assert len(selects) == 3, selects  # each folder once: no second SELECT to apply it
    assert all("QRESYNC" in lines[i] for i in selects)
    first_tag = lines[selects[0]].split(" C: ", 1)[1].split()[0]
    answered = next(i for i, x in enumerate(lines) if f" S: {first_tag} OK" in x)
    assert selects[-1] < answered  # all three sent before the first answer came
    assert_same(sb, user, home)
    assert all(f.skipped for f in sync(t, home).folders)  # and the fast path is re-armed


def _ahead_events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """In order: "answer" when a SELECT's answer has been read, "apply" when a folder's
    plan is applied, "commit" when the index commits changes."""
    from mailbag.protocols.imap.client import ImapClient
    from mailbag.sync import apply

    events: list[str] = []
    real_finish, real_apply, real_commit = ImapClient.finish_select, apply.apply_plan, Store.commit

    def finish(self: ImapClient, *args: Any, **kwargs: Any) -> Any:
        result = real_finish(self, *args, **kwargs)
        events.append("answer")
        return result

    def apply_plan(*args: Any, **kwargs: Any) -> None:
        events.append("apply")
        real_apply(*args, **kwargs)

    def commit(self: Store, *, fsync: bool = True) -> None:
        if self.conn.in_transaction:
            events.append("commit")
        real_commit(self, fsync=fsync)

    monkeypatch.setattr(ImapClient, "finish_select", finish)
    monkeypatch.setattr(apply, "apply_plan", apply_plan)
    monkeypatch.setattr(Store, "commit", commit)
    return events


def _ahead_case(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Target, list[str]]:
    """Three folders synced, then changed on the server only; `_ahead_events` recording."""
    fill(sb, user, 24)
    t = target(sb, user)
    _settled(t, home)
    _server_changes(sb, user, ("INBOX", "Work/Projects", "Archive"))
    return t, _ahead_events(monkeypatch)


def _ahead_converged(
    sb: Sandbox, user: str, home: Path, t: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording stopped, the local store is the server's, and the fast path re-armed."""
    monkeypatch.undo()
    assert_same(sb, user, home)
    assert all(f.skipped for f in sync(t, home).folders)


def test_a_folder_selected_ahead_is_applied_while_the_server_answers_for_the_next(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t, events = _ahead_case(sb, user, home, monkeypatch)
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["deleted"] == 3 and totals(report)["updated"] == 6
    # each folder as its answer comes; one commit for all (the answers came quickly)
    assert events == ["answer", "apply"] * 3 + ["commit"], events
    _ahead_converged(sb, user, home, t, monkeypatch)


def test_a_folder_with_many_changes_selected_ahead_begins_a_transaction_of_its_own(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the others are applied in savepoints of one transaction (their page copies kept in
    # memory); one with more changes than _SAVEPOINT_MAX gets what came before committed
    # first and is applied as a transaction's first part, without a savepoint
    from mailbag.sync import imap as engine

    t, events = _ahead_case(sb, user, home, monkeypatch)
    monkeypatch.setattr(engine, "_SAVEPOINT_MAX", 2)  # each folder has 3 changes
    statements: list[str] = []
    real_open = engine._open_store

    def open_store(paths: Any) -> Store:
        store = real_open(paths)
        store.conn.set_trace_callback(statements.append)
        return store

    monkeypatch.setattr(engine, "_open_store", open_store)
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["deleted"] == 3 and totals(report)["updated"] == 6
    # (each answer is read before what came earlier is committed)
    assert events == ["answer", "apply", *(["answer", "commit", "apply"] * 2), "commit"], events
    assert not [x for x in statements if x.startswith(("SAVEPOINT", "RELEASE"))]
    assert "PRAGMA temp_store = DEFAULT" in statements  # (as it was, for the usual path)
    _ahead_converged(sb, user, home, t, monkeypatch)


def test_a_slow_answer_is_not_waited_for_with_the_index_locked(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no answer comes within the wait: what was applied is committed (with its stamps)
    # before the sync waits on, so other programs can write to the index meanwhile
    from mailbag.protocols.stream import LineStream

    t, events = _ahead_case(sb, user, home, monkeypatch)
    monkeypatch.setattr(LineStream, "wait_readable", lambda self, timeout: False)
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["deleted"] == 3 and totals(report)["updated"] == 6
    assert events == ["answer", "apply", "commit"] * 3, events
    _ahead_converged(sb, user, home, t, monkeypatch)


def test_a_folder_selected_ahead_that_needs_more_goes_the_usual_way(
    sb: Sandbox, user: str, home: Path, tmp_path: Path
) -> None:
    # Archive: many expunges (the mass-deletion guard must see the whole folder);
    # Work/Projects: flags only, applied from the pipelined SELECT
    fill(sb, user, 40)
    t = target(sb, user, threshold=3)
    _settled(t, home)
    with sb.control(user) as c:
        archive = c.uids("Archive")
        c.expunge("Archive", archive[:4])
        work = c.uids("Work/Projects")
        c.store("Work/Projects", work[:2], "+FLAGS", ["\\Answered"])
        c.store("INBOX", c.uids("INBOX")[:1], "+FLAGS", ["\\Flagged"])
    report, lines = _traced_sync(t, home, tmp_path)
    got = {f.name: f for f in report.folders}
    assert got["Archive"].error and "limit" in got["Archive"].error
    assert got["Work/Projects"].error is None and got["Work/Projects"].updated == 2
    assert got["INBOX"].updated == 1
    sent = [x for x in lines if " C: " in x and " SELECT " in x]
    assert sum('"Archive"' in x or " Archive " in x for x in sent) == 2  # ahead, then usual
    with Store.open(home_paths(home)) as store:
        assert len(list(store.folder_messages(store.folder(user, "Archive")))) == len(archive)
    assert_ok(sync(t, home, force=True))
    assert_same(sb, user, home)


def test_a_folder_failing_in_the_shared_transaction_is_undone_alone(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the folders changed only on the server are applied in one transaction; one that
    # fails there (a file that cannot be removed) is rolled back alone, the others kept
    fill(sb, user, 24)
    t = target(sb, user)
    _settled(t, home)
    with sb.control(user) as c:
        gone_uid = c.uids("Work/Projects")[2]  # (expunged below: its local file goes)
    _server_changes(sb, user, ("INBOX", "Work/Projects", "Archive"))
    with Store.open(home_paths(home)) as store:
        work = store.folder(user, "Work/Projects")
        (doomed,) = [m for m in store.folder_messages(work) if m.uid == gone_uid]
    from mailbag.errors import StoreError
    from mailbag.store.maildir import Maildir, MaildirEntry

    real_discard = Maildir.discard

    def stuck(self: Maildir, entry: MaildirEntry) -> str | None:
        if entry.key == doomed.key:  # (the usual path's attempt fails too: reported)
            raise StoreError(f"cannot remove {entry.path}: Device or resource busy")
        return real_discard(self, entry)

    monkeypatch.setattr(Maildir, "discard", stuck)
    reads = _full_reads(monkeypatch)
    report = sync(t, home)
    assert "INBOX" not in reads and "Archive" not in reads  # applied ahead, kept
    got = {f.name: f for f in report.folders}
    assert got["Work/Projects"].error, got["Work/Projects"]
    assert got["INBOX"].error is None and got["INBOX"].deleted == 1
    assert got["Archive"].error is None and got["Archive"].deleted == 1
    with Store.open(home_paths(home)) as store:
        work = store.folder(user, "Work/Projects")
        assert any(m.uid == gone_uid for m in store.folder_messages(work))  # undone
        with sb.control(user) as c:
            for box in ("INBOX", "Archive"):  # recorded (and committed)
                rows = store.folder_messages(store.folder(user, box))
                assert sorted(m.uid for m in rows) == sorted(c.uids(box)), box
    monkeypatch.setattr(Maildir, "discard", real_discard)
    assert_ok(sync(t, home))
    assert_same(sb, user, home)


def test_a_change_by_another_program_during_a_delta_sync_is_not_papered_over(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb.fill(user, 12, "INBOX", seed=41, seen_ratio=0.0)
    t = target(sb, user)
    _settled(t, home)
    import mailbag.sync.apply as apply

    real_apply = apply.apply_plan
    renamed: list[str] = []

    def apply_then_mutt(plan: object, **kw: object) -> None:
        real_apply(plan, **kw)  # type: ignore[arg-type]
        folder = kw["folder"]
        entry = next(e for e in folder.maildir.scan().values() if e.subdir == "new")  # type: ignore[attr-defined]
        os.rename(entry.path, entry.root / "cur" / f"{entry.key}:2,S")  # read in mutt, now
        renamed.append(entry.key)

    monkeypatch.setattr(apply, "apply_plan", apply_then_mutt)
    with sb.control(user) as c:
        c.store("INBOX", c.uids("INBOX")[:1], "+FLAGS", ["\\Flagged"])
    assert_ok(sync(t, home))
    assert renamed
    # the directories no longer match what this run did: the fast path stays off ...
    assert _sync_states(home, user)["INBOX"] is None
    monkeypatch.setattr(apply, "apply_plan", real_apply)
    # ... so the next run reads the folder and pushes mutt's change
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["updated"] == 1
    assert_same(sb, user, home)


def _listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders whose cur/ and new/ the sync lists (each time)."""
    import mailbag.sync.imap as engine

    listed: list[str] = []
    real = engine._listing_print

    def listing(folder: Folder) -> tuple[int, int] | None:
        listed.append(folder.name)
        return real(folder)

    monkeypatch.setattr(engine, "_listing_print", listing)
    return listed


def _server_changes(sb: Sandbox, user: str, boxes: tuple[str, ...]) -> None:
    with sb.control(user) as c:
        for box in boxes:
            uids = c.uids(box)
            c.store(box, uids[:2], "+FLAGS", ["\\Flagged"])
            c.expunge(box, uids[2:3])


def test_a_delta_sync_checks_its_own_changes_without_listing_the_folders(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the kernel reports what changed in cur/ and new/ since the delta began: the run
    # compares that with the rows it changed, and re-arms the fast path without a listing
    # (here though the folders are small enough to be listed: see the next test)
    fill(sb, user, 24)
    t = target(sb, user)
    _settled(t, home)
    import mailbag.sync.imap as engine

    monkeypatch.setattr(engine, "_LIST_MAX", 0)
    listed = _listings(monkeypatch)
    _server_changes(sb, user, ("INBOX", "Archive"))
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["deleted"] == 2 and totals(report)["updated"] == 4
    assert listed == []
    states = _sync_states(home, user)
    assert states["INBOX"] and states["Archive"], states
    assert_same(sb, user, home)
    assert all(f.skipped for f in sync(t, home).folders)


@pytest.mark.parametrize("check", ["watch", "listing"])
@pytest.mark.parametrize("how", ["rename", "create", "delete"])
def test_a_change_by_another_program_right_after_the_syncs_own_is_still_seen(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch, how: str, check: str
) -> None:
    # another Maildir program changes a file after the sync's own changes, within the
    # same clock tick, before the run checks them: the directory times the run then
    # reads already include the change, so only what the watch saw (or a listing made
    # after the times were read, for a small folder) can tell
    sb.fill(user, 12, "INBOX", seed=43, seen_ratio=0.0)
    t = target(sb, user)
    _settled(t, home)
    import mailbag.sync.imap as engine

    if check == "watch":
        monkeypatch.setattr(engine, "_LIST_MAX", 0)
    listed = _listings(monkeypatch)
    real_times_stamp = engine._times_stamp
    done: list[str] = []

    def other_program_then_times(folder: Folder) -> str | None:
        if not done and folder.name == "INBOX":
            root, new = folder.path, folder.path / "new"
            key = sorted(os.listdir(new))[0]
            if how == "rename":  # read in mutt
                os.rename(new / key, root / "cur" / f"{key}:2,S")
            elif how == "create":  # delivered by another program (no Message-ID known)
                (root / "tmp" / "x.other").write_bytes(b"Subject: other\r\n\r\nhi\r\n")
                os.rename(root / "tmp" / "x.other", new / "x.other")
            else:  # deleted in mutt
                os.unlink(new / key)
            done.append(key)
        return real_times_stamp(folder)

    monkeypatch.setattr(engine, "_times_stamp", other_program_then_times)
    with sb.control(user) as c:
        c.store("INBOX", c.uids("INBOX")[-1:], "+FLAGS", ["\\Flagged"])
    assert_ok(sync(t, home))
    assert done
    assert ("INBOX" in listed) == (check == "listing")
    assert _sync_states(home, user)["INBOX"] is None  # not re-armed over the change
    monkeypatch.setattr(engine, "_times_stamp", real_times_stamp)
    report = sync(t, home)  # reads the folder and pushes the other program's change
    assert_ok(report)
    inbox = next(f for f in report.folders if f.name == "INBOX")
    assert not inbox.skipped
    assert (inbox.updated, inbox.uploaded, inbox.deleted) == {
        "rename": (1, 0, 0),
        "create": (0, 1, 0),
        "delete": (0, 0, 1),
    }[how]
    assert_same(sb, user, home)


@pytest.mark.parametrize("lost", ["no-inotify", "watch-lost-track"])
def test_without_a_usable_watch_the_delta_is_checked_by_listing(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch, lost: str
) -> None:
    import mailbag.sync.imap as engine
    from mailbag.store.maildir import DirWatch

    fill(sb, user, 24)
    t = target(sb, user)
    _settled(t, home)
    monkeypatch.setattr(engine, "_LIST_MAX", 0)  # (folders big enough to be watched)
    listed = _listings(monkeypatch)
    if lost == "no-inotify":
        monkeypatch.setattr(DirWatch, "open", classmethod(lambda cls: None))
    else:  # (as after a queue overflow)
        monkeypatch.setattr(DirWatch, "changes", lambda self, wd: None)
    _server_changes(sb, user, ("INBOX", "Work/Projects"))
    assert_ok(sync(t, home))
    assert sorted(set(listed)) == ["INBOX", "Work/Projects"]
    states = _sync_states(home, user)
    assert states["INBOX"] and states["Work/Projects"], states  # re-armed all the same
    assert_same(sb, user, home)
    # and a later change by another program is seen
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        entry = next(e for e in inbox.maildir.scan().values() if "\\Flagged" not in e.flags)
    os.rename(entry.path, entry.root / "cur" / f"{entry.key}:2,FS")
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["updated"] == 1
    assert_same(sb, user, home)


def test_a_small_run_checks_its_changes_by_listing_and_opens_no_watch(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a watch loads ctypes (~8M instructions): folders of _LIST_MAX files in all are
    # listed instead (before and after); past that the run opens its watch after all
    import mailbag.sync.imap as engine
    from mailbag.store.maildir import DirWatch

    fill(sb, user, 24)  # INBOX 24, Work/Projects 6, Archive 3
    t = target(sb, user)
    _settled(t, home)
    real_open = DirWatch.open.__func__  # type: ignore[attr-defined]
    opened: list[bool] = []

    def open_watch(cls: type[DirWatch]) -> DirWatch | None:
        watch = real_open(cls)
        opened.append(watch is not None)
        return watch

    monkeypatch.setattr(DirWatch, "open", classmethod(open_watch))
    listed = _listings(monkeypatch)
    _server_changes(sb, user, ("INBOX", "Archive"))
    assert_ok(sync(t, home))
    assert opened == []
    assert sorted(listed) == ["Archive", "Archive", "INBOX", "INBOX"]  # before and after
    states = _sync_states(home, user)
    assert states["INBOX"] and states["Archive"], states  # re-armed
    assert_same(sb, user, home)
    # past _LIST_MAX the run opens its watch (one for the run; the folders are selected
    # together, and it may open while they are, before either is looked at)
    monkeypatch.setattr(engine, "_LIST_MAX", 25)
    listed.clear()
    _server_changes(sb, user, ("INBOX", "Work/Projects"))
    assert_ok(sync(t, home))
    assert opened == [True]
    assert len(listed) in (0, 2) and len(set(listed)) <= 1, listed  # one folder at most
    states = _sync_states(home, user)
    assert states["INBOX"] and states["Work/Projects"], states
    assert_same(sb, user, home)


def test_a_big_folder_is_shared_between_connections(sb: Sandbox, user: str, home: Path) -> None:
    sb.fill(user, 150, "INBOX", seed=21)
    sb.fill(user, 5, "Small", seed=22)
    t = target(sb, user)
    threads: set[str] = set()

    def progress(event: Progress) -> None:
        if event.kind == "message" and event.folder == "INBOX":
            threads.add(threading.current_thread().name)

    report = sync(t, home, connections=3, share_chunk=20, on_progress=progress)
    assert_ok(report)
    assert totals(report)["new"] == 155
    assert len(threads) >= 2  # INBOX came in over more than one connection
    assert_same(sb, user, home)


def test_a_shared_folder_is_selected_once_per_connection(
    sb: Sandbox, user: str, home: Path, tmp_path: Path
) -> None:
    # a SELECT costs the server a pass over the whole folder: a connection that helps
    # with piece after piece of a big folder must not select it again for each
    sb.fill(user, 200, "INBOX", seed=29)
    t = target(sb, user)
    threads: set[str] = set()

    def progress(event: Progress) -> None:
        if event.kind == "message":
            threads.add(threading.current_thread().name)

    trace = tmp_path / "trace.txt"
    transcript = Transcript(trace)
    try:
        report = sync(
            t, home, connections=3, share_chunk=20, transcript=transcript, on_progress=progress
        )
    finally:
        transcript.close()
    assert_ok(report)
    assert totals(report)["new"] == 200
    assert len(threads) >= 2, threads  # the folder was shared out
    sent = [x.split(" C: ", 1)[1] for x in trace.read_text().splitlines() if " C: " in x]
    selects = [x for x in sent if " SELECT " in x and "INBOX" in x]
    assert len(selects) <= 3, selects  # at most once on each of the 3 connections
    assert_same(sb, user, home)


def test_a_big_folder_is_cut_into_a_few_pieces_per_connection(
    sb: Sandbox, user: str, home: Path, tmp_path: Path
) -> None:
    # each piece is a FETCH of its own, and a server may pay for each in proportion to
    # the folder (Dovecot re-reads its uidlist in every other process): a few pieces
    # per connection, however big the folder
    sb.fill(user, 400, "INBOX", seed=31)
    t = target(sb, user)
    trace = tmp_path / "trace.txt"
    transcript = Transcript(trace)
    try:
        report = sync(t, home, connections=2, share_chunk=20, transcript=transcript)
    finally:
        transcript.close()
    assert_ok(report)
    assert totals(report)["new"] == 400
    sent = [x.split(" C: ", 1)[1] for x in trace.read_text().splitlines() if " C: " in x]
    fetches = [x for x in sent if " FETCH " in x and "BODY.PEEK[]" in x]
    assert 2 <= len(fetches) <= 4 * 2, fetches
    assert_same(sb, user, home)


def test_dropped_connections_while_sharing_a_folder(sb: Sandbox, user: str, home: Path) -> None:
    sb.fill(user, 150, "INBOX", seed=23)
    t = target(sb, user)
    received = 0

    def progress(event: Progress) -> None:
        nonlocal received
        if event.kind == "message":
            received += 1
            if received == 60:
                sb.drop_connections(user)

    report = sync(t, home, connections=3, share_chunk=20, on_progress=progress)
    assert_ok(report)
    assert_same(sb, user, home)
    assert sum(totals(sync(t, home)).values()) == 0
