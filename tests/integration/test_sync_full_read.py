"""Full folder reads against a Dovecot without CONDSTORE/QRESYNC (every re-sync of a
folder is one `UID FETCH 1:* (UID FLAGS)` compared with the index): a re-sync that
changed files checks afterwards only the rows and names it changed (watched by the
kernel from before the changes), not the whole folder, and still never records the
folder as clean over a change another Maildir program made meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mailbag.sync.imap as engine
from mailbag.cli.main import main
from mailbag.config import save_account
from mailbag.paths import Paths
from mailbag.protocols.trace import Transcript
from mailbag.sandbox import Sandbox
from mailbag.store.index import Folder, Store
from mailbag.sync.events import AccountReport
from synctools import (
    Target,
    assert_nothing_left,
    assert_ok,
    assert_same,
    home_paths,
    sync,
    target,
    totals,
)

pytestmark = pytest.mark.sandbox
USERS = [f"full{i}" for i in range(16)]
_next_user = iter(USERS)


@pytest.fixture(scope="module")
def plain() -> Iterator[Sandbox]:
    with Sandbox(
        users={u: f"{u}-secret" for u in USERS},
        services={"imap", "smtp"},  # (smtp: for `Sandbox.account`)
        imap_without={"CONDSTORE", "QRESYNC"},
    ) as sb:
        yield sb


@pytest.fixture
def user() -> str:
    return next(_next_user)


@pytest.fixture(autouse=True)
def watched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The folders here are watched however small (`_LIST_MAX`: a run changing
    folders of a few hundred files in all lists them instead, as without inotify)."""
    monkeypatch.setattr(engine, "_LIST_MAX", 0)


def _settled(t: Target, home: Path) -> None:
    """Sync until the folders' directory times are recorded (they are once the last
    change is older than a file-system timestamp tick)."""
    assert_ok(sync(t, home, connections=1))
    time.sleep(0.25)
    assert_ok(sync(t, home, connections=1))
    assert all(_sync_states(home, t.user.split("@")[0]).values())


def _sync_states(home: Path, user: str) -> dict[str, str | None]:
    with Store.open(home_paths(home)) as store:
        return {f.name: f.sync_state for f in store.folders(user)}


def _whole_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders whose files and rows the sync compares whole (each time)."""
    checked: list[str] = []
    real = engine._matches_index

    def matches(store: Store, folder: Folder) -> bool:
        checked.append(folder.name)
        return real(store, folder)

    monkeypatch.setattr(engine, "_matches_index", matches)
    return checked


def _server_changes(sb: Sandbox, user: str) -> None:
    with sb.control(user) as c:
        uids = c.uids("INBOX")
        c.store("INBOX", uids[:3], "+FLAGS", ["\\Flagged"])
        c.store("INBOX", uids[3:5], "-FLAGS", ["\\Seen"])
        c.expunge("INBOX", uids[5:7])
    sb.fill(user, 2, "INBOX", seed=77)


def test_a_full_read_checks_only_what_it_changed(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain.fill(user, 30, "INBOX", seed=71, seen_ratio=1.0)
    plain.fill(user, 5, "Work", seed=72)
    t = target(plain, user)
    home = tmp_path / "home"
    _settled(t, home)
    checked = _whole_checks(monkeypatch)
    _server_changes(plain, user)
    report = sync(t, home, connections=1)
    assert_ok(report)
    assert (totals(report)["new"], totals(report)["deleted"]) == (2, 2)
    assert totals(report)["updated"] == 5
    assert checked == []  # the watch and the changed rows told: no folder compared whole
    assert _sync_states(home, user)["INBOX"]  # re-armed: the next run trusts the index
    assert assert_same(plain, user, home) == 35
    reads: list[bool] = []
    real_read = engine._read_local

    def read_local(store: Store, folder: Folder) -> engine._LocalSide:
        side = real_read(store, folder)
        reads.append(side.trusted)
        return side

    monkeypatch.setattr(engine, "_read_local", read_local)
    assert_nothing_left(t, home, connections=1)
    assert reads and all(reads)  # every folder's index taken as its local side


def _mutt(folder_path: Path, how: str, avoid: str = "") -> None:
    """What another Maildir program does: mark a message read (rename), deliver one,
    or delete one (not the message whose key is `avoid`)."""
    cur, new = folder_path / "cur", folder_path / "new"
    if how == "create":
        tmp = folder_path / "tmp" / "x.other"
        tmp.write_bytes(b"Message-ID: <other@example.org>\r\nSubject: other\r\n\r\nhi\r\n")
        os.rename(tmp, new / "x.other")
        return
    files = [new / n for n in sorted(os.listdir(new))] + [cur / n for n in sorted(os.listdir(cur))]
    path = next(p for p in files if not p.name.startswith(avoid + ":") and p.name != avoid)
    if how == "delete":
        os.unlink(path)
    elif path.parent == new:
        os.rename(path, cur / f"{path.name}:2,S")
    else:
        key, _, info = path.name.partition(":2,")
        assert "S" not in info
        os.rename(path, cur / f"{key}:2,{''.join(sorted(info + 'S'))}")


_PUSHED = {"rename": (1, 0, 0), "create": (0, 1, 0), "delete": (0, 0, 1)}


def _pushed(plain: Sandbox, user: str, t: Target, home: Path, how: str) -> None:
    """The next run reads the folder and pushes the other program's change."""
    assert _sync_states(home, user)["INBOX"] is None  # not recorded over the change
    report = sync(t, home, connections=1)
    assert_ok(report)
    inbox = next(f for f in report.folders if f.name == "INBOX")
    assert (inbox.updated, inbox.uploaded, inbox.deleted) == _PUSHED[how], inbox
    assert_same(plain, user, home)


@pytest.mark.parametrize("how", sorted(_PUSHED))
@pytest.mark.parametrize("when", ["after-planning", "after-applying", "before-the-times"])
def test_a_change_by_another_program_during_a_full_read_is_still_seen(
    plain: Sandbox,
    user: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    when: str,
) -> None:
    # after-planning: between the index being trusted and the watch being set up (the
    # directory times have moved: no baseline, the whole folder is compared);
    # after-applying: among the sync's own changes (the watch sees a name the rows do
    # not account for); before-the-times: right before the run reads the directory
    # times to record, within the same clock tick as its own changes (only the watch
    # can tell)
    plain.fill(user, 12, "INBOX", seed=73, seen_ratio=0.0)
    t = target(plain, user)
    home = tmp_path / "home"
    _settled(t, home)
    with Store.open(home_paths(home)) as store:
        folder = store.folder(user, "INBOX")
        last = max(store.folder_messages(folder), key=lambda m: m.uid or 0)
    done: list[bool] = []

    def other_program() -> None:
        if not done:
            _mutt(folder.path, how, avoid=last.key)
            done.append(True)

    if when == "after-planning":
        real_with_entries = engine._with_entries

        def with_entries(store: Store, folder: Folder, *args: object) -> object:
            rows = real_with_entries(store, folder, *args)  # type: ignore[arg-type]
            other_program()
            return rows

        monkeypatch.setattr(engine, "_with_entries", with_entries)
    elif when == "after-applying":
        real_apply = engine._apply_and_record

        def apply(*args: object, **kw: object) -> None:
            real_apply(*args, **kw)  # type: ignore[arg-type]
            other_program()

        monkeypatch.setattr(engine, "_apply_and_record", apply)
    else:
        real_times = engine._times_stamp

        def times(folder: Folder) -> str | None:
            if folder.name == "INBOX":
                other_program()
            return real_times(folder)

        monkeypatch.setattr(engine, "_times_stamp", times)
    with plain.control(user) as c:
        assert c.uids("INBOX")[-1] == last.uid
        c.store("INBOX", [last.uid], "+FLAGS", ["\\Flagged"])
    assert_ok(sync(t, home, connections=1))
    assert done
    monkeypatch.undo()
    _pushed(plain, user, t, home, how)


def test_without_inotify_the_whole_folder_is_compared(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbag.store.maildir import DirWatch

    plain.fill(user, 20, "INBOX", seed=74, seen_ratio=1.0)
    t = target(plain, user)
    home = tmp_path / "home"
    _settled(t, home)
    monkeypatch.setattr(DirWatch, "open", classmethod(lambda cls: None))
    checked = _whole_checks(monkeypatch)
    _server_changes(plain, user)
    assert_ok(sync(t, home, connections=1))
    assert checked == ["INBOX"]
    assert _sync_states(home, user)["INBOX"]  # re-armed all the same
    assert_same(plain, user, home)
    monkeypatch.undo()
    with Store.open(home_paths(home)) as store:
        _mutt(store.folder(user, "INBOX").path, "rename")
    report = sync(t, home, connections=1)
    assert_ok(report)
    assert totals(report)["updated"] == 1
    assert_same(plain, user, home)


#: what a re-sync that reads a folder whole and finds nothing to do must not load
NOT_ON_A_NO_OP_FULL_READ = (
    "email",
    "mailbag.store.envelope",  # (~6 ms: only for files the index does not know)
    "mailbag.sync.apply",  # (nothing to apply)
    "dataclasses",
    "inspect",
    "ast",
    "tokenize",
)


def test_a_no_op_full_read_loads_only_what_it_needs(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MAILBAG_HOME", str(home))
    save_account(Paths.from_env(), plain.account(user, name="full", password_command=True))
    plain.fill(user, 8, "INBOX", seed=75)
    assert main(["sync", "-q"]) == 0
    time.sleep(0.25)  # directory times old enough to be trusted
    assert main(["sync", "-q"]) == 0
    code = (
        "import sys\n"
        "import mailbag.sync.imap as engine\n"
        "read = engine._read_local\n"
        "sides = []\n"
        "engine._read_local = lambda *a: sides.append(read(*a)) or sides[-1]\n"
        "from mailbag.cli.main import main\n"
        "assert main(['sync', '-q']) == 0\n"
        "assert sides and all(s.trusted for s in sides), sides\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {"MAILBAG_HOME": str(home), "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # the mailbag this test imported
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert res.returncode == 0, res.stderr
    loaded = set(res.stdout.split())
    assert "mailbag.sync.plan" in loaded  # it did read the folder whole
    heavy = sorted(
        m for m in loaded if any(m == h or m.startswith(h + ".") for h in NOT_ON_A_NO_OP_FULL_READ)
    )
    assert heavy == []


def test_a_no_op_full_read_writes_nothing(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nothing changed on either side: the index is neither written nor flushed (a flush
    # per folder was 1-5 ms each), as for a folder STATUS shows unchanged
    plain.fill(user, 10, "INBOX", seed=76)
    plain.fill(user, 4, "Work", seed=77)
    t = target(plain, user)
    home = tmp_path / "home"
    _settled(t, home)
    with Store.open(home_paths(home)) as store:
        before = {f.name: f for f in store.folders(user)}
    writes: list[str] = []
    real_begin = Store._begin

    def begin(self: Store) -> None:
        if not self.conn.in_transaction:
            writes.append("BEGIN")
        real_begin(self)

    monkeypatch.setattr(Store, "_begin", begin)
    assert_nothing_left(t, home, connections=1)
    assert writes == []
    monkeypatch.undo()
    with Store.open(home_paths(home)) as store:
        assert {f.name: f for f in store.folders(user)} == before
    # and a change on the server afterwards is recorded as ever
    with plain.control(user) as c:
        c.store("Work", c.uids("Work")[:1], "+FLAGS", ["\\Flagged"])
    plain.fill(user, 1, "Work", seed=78)
    report = sync(t, home, connections=1)
    assert_ok(report)
    assert (totals(report)["new"], totals(report)["updated"]) == (1, 1)
    with Store.open(home_paths(home)) as store:
        work = store.folder(user, "Work")
        assert work.messages == 5 and work.uidnext == before["Work"].uidnext + 1  # type: ignore[operator]
        assert (work.last_sync or 0) > (before["Work"].last_sync or 0)
    assert_same(plain, user, home)


def _traced(t: Target, home: Path, trace: Path) -> tuple[AccountReport, list[str]]:
    """A sync over one connection, and the commands it sent."""
    transcript = Transcript(trace)
    try:
        report = sync(t, home, connections=1, transcript=transcript)
    finally:
        transcript.close()
    sent = [x.split(" C: ", 1)[1] for x in trace.read_text().splitlines() if " C: " in x]
    trace.unlink()
    return report, sent


def _asked(sent: list[str], verb: str) -> set[str]:
    """The folders named in the commands `verb` (STATUS, SELECT) sent."""
    out = set()
    for line in sent:
        rest = line.partition(" ")[2]  # (after the tag)
        if rest.startswith(verb + " "):
            out.add(rest[len(verb) + 1 :].split(" (")[0].strip('"'))
    return out


def test_a_folder_read_whole_is_not_asked_its_status(
    plain: Sandbox, user: str, tmp_path: Path
) -> None:
    # without CONDSTORE a synced folder with mail is read whole whatever STATUS says,
    # and Dovecot makes a pass over the folder for a STATUS as for the SELECT: only the
    # new folders and the empty ones (skipped when STATUS shows them still empty) are
    # asked, in the round trip of the LIST
    plain.fill(user, 10, "INBOX", seed=79)
    plain.fill(user, 4, "Work", seed=80)
    with plain.control(user) as c:
        c.imap.create("Empty")
    t = target(plain, user)
    home = tmp_path / "home"
    _settled(t, home)
    plain.fill(user, 2, "Fresh", seed=81)
    plain.fill(user, 1, "Work", seed=82)
    report, sent = _traced(t, home, tmp_path / "trace.txt")
    assert_ok(report)
    assert totals(report)["new"] == 3
    status, selected = _asked(sent, "STATUS"), _asked(sent, "SELECT")
    assert "INBOX" not in status and "Work" not in status
    assert {"Empty", "Fresh"} <= status
    assert {"INBOX", "Work", "Fresh"} <= selected and "Empty" not in selected
    assert not any(
        " RETURN (STATUS" in line or "RETURN (SPECIAL-USE STATUS" in line for line in sent
    )
    assert assert_same(plain, user, home) == 17
    report, sent = _traced(t, home, tmp_path / "trace.txt")
    assert_ok(report)
    assert sum(totals(report).values()) == 0
    assert "Fresh" not in _asked(sent, "STATUS") and "Empty" in _asked(sent, "STATUS")
    skipped = {f.name for f in report.folders if f.skipped}
    assert "Empty" in skipped
