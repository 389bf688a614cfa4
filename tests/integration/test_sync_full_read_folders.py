"""Several folders read whole, against a Dovecot without CONDSTORE/QRESYNC (every
re-sync of a synced folder is one `UID FETCH 1:* (UID FLAGS)`), over one connection:
the next folder's SELECT and listing are sent while the folder before is read
(`_Pipeline`), so the server never waits for a command between folders; a plan that
needs the server after all selects its folder again first; and the folders whose plans
only take over the server's changes share one commit (`_Held`), with every rename made
durable before it and a failing folder undoing its own part alone.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mailbag.sync.apply as apply_module
import mailbag.sync.imap as engine
from durability import assert_renames_durable_before_commit, record
from mailbag.errors import StoreError
from mailbag.protocols.trace import Transcript
from mailbag.sandbox import Sandbox
from mailbag.store.index import Folder, Store, flags_text
from mailbag.store.maildir import flags_to_info
from mailbag.sync.events import AccountReport
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
USERS = [f"pipe{i}" for i in range(16)]
_next_user = iter(USERS)
# biggest first: the order the folders are synced in
FOLDERS = {"INBOX": 14, "Work": 10, "Lists": 7, "Family": 4}


@pytest.fixture(scope="module")
def plain() -> Iterator[Sandbox]:
    with Sandbox(
        users={u: f"{u}-secret" for u in USERS},
        services={"imap"},
        imap_without={"CONDSTORE", "QRESYNC"},
    ) as sb:
        yield sb


@pytest.fixture
def user() -> str:
    return next(_next_user)


def _nothing_left(t: Target, home: Path) -> None:
    """One more sync (one connection) succeeds and changes nothing: converged."""
    again = sync(t, home, connections=1)
    assert_ok(again)
    assert sum(totals(again).values()) == 0


def _settled(plain: Sandbox, user: str, home: Path) -> Target:
    for n, (name, count) in enumerate(FOLDERS.items()):
        plain.fill(user, count, name, seed=300 + n, seen_ratio=0.5)
    t = target(plain, user)
    assert_ok(sync(t, home, connections=1))
    time.sleep(0.1)  # (directory times older than a clock tick: trusted)
    assert_ok(sync(t, home, connections=1))
    time.sleep(0.1)
    return t


def _server_changes(plain: Sandbox, user: str) -> None:
    """Flags changed and a message expunged in every folder (nothing new)."""
    with plain.control(user) as c:
        for name in FOLDERS:
            uids = c.uids(name)
            c.store(name, uids[:2], "+FLAGS", ["\\Flagged"])
            c.store(name, uids[2:3], "-FLAGS", ["\\Seen"])
            c.expunge(name, uids[3:4])


def _traced(t: Target, home: Path, trace: Path) -> tuple[AccountReport, list[str]]:
    """A sync over one connection, and the lines it sent and received, in order."""
    transcript = Transcript(trace)
    try:
        report = sync(t, home, connections=1, transcript=transcript)
    finally:
        transcript.close()
    lines = [x.split(" ", 2)[2] for x in trace.read_text().splitlines() if " imap " in x]
    trace.unlink()
    return report, lines


def _tag_of(lines: list[str], command: str) -> str:
    """The tag of the first command sent that ends with `command`."""
    return next(x.split()[1] for x in lines if x.startswith("C: ") and x.endswith(command))


def _index_rows(home: Path, user: str, name: str) -> dict[int, str]:
    """UID -> flags last synced, of the folder's live rows."""
    with Store.open(home_paths(home)) as store:
        folder = store.folder(user, name)
        return {
            m.uid: flags_text(m.synced_flags or frozenset())
            for m in store.folder_messages(folder)
            if m.uid is not None
        }


def _server_rows(plain: Sandbox, user: str, name: str) -> dict[int, str]:
    return {uid: flags_text(flags) for uid, (_, flags) in server_state(plain, user)[name].items()}


def test_the_next_folder_is_asked_for_while_one_is_read(
    plain: Sandbox, user: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    _server_changes(plain, user)
    report, lines = _traced(t, home, tmp_path / "trace")
    assert_ok(report)
    assert totals(report)["deleted"] == len(FOLDERS)
    names = list(FOLDERS)
    for here, after in itertools.pairwise(names):
        select_here = lines.index(next(x for x in lines if x.endswith(f"SELECT {here}")))
        fetch_tag = lines[select_here + 1].split()[1]  # (sent with its SELECT)
        assert lines[select_here + 1].endswith("UID FETCH 1:* (UID FLAGS)")
        fetched = next(i for i, x in enumerate(lines) if x.startswith(f"S: {fetch_tag} OK"))
        next_select = lines.index(next(x for x in lines if x.endswith(f"SELECT {after}")))
        # sent before this folder's listing had all come: no round trip between folders
        assert select_here < next_select < fetched, (here, after)
    # each folder selected once
    assert sum(1 for x in lines if x.startswith("C: ") and " SELECT " in x) == len(FOLDERS)
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - len(FOLDERS)
    again, lines = _traced(t, home, tmp_path / "trace")
    assert_ok(again)
    assert sum(totals(again).values()) == 0


def test_a_plan_that_needs_the_server_after_all_selects_its_folder_again(
    plain: Sandbox, user: str, tmp_path: Path
) -> None:
    # A message gone here (file and row) but for the UIDs the server still has: nothing
    # here shows a change to push and UIDNEXT is as recorded, so the next folder is
    # asked for; the plan then downloads the message: its answers are read and kept,
    # the folder selected again. The next folder (one such too) is planned from what
    # was kept, and selected again for its download.
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    gone: dict[str, int] = {}
    with Store.open(home_paths(home)) as store:
        for name in ("INBOX", "Work"):
            folder = store.folder(user, name)
            m = max(store.folder_messages(folder), key=lambda m: m.uid or 0)
            entry = folder.maildir.find(m.key)
            assert entry is not None and m.uid is not None
            entry.path.unlink()
            store.forget_many([m.id])
            gone[name] = m.uid
        store.commit()
    report, lines = _traced(t, home, tmp_path / "trace")
    assert_ok(report)
    by_name = {f.name: f for f in report.folders}
    assert by_name["INBOX"].new == by_name["Work"].new == 1
    assert by_name["Lists"].new == 0
    sent = [x for x in lines if x.startswith("C: ")]
    selects = [x.split(" SELECT ")[1] for x in sent if " SELECT " in x]
    assert selects == ["INBOX", "Work", "INBOX", "Work", "Lists", "Family"], selects
    # Work's listing was read once (before INBOX was selected again), not asked again
    assert sum(1 for x in sent if x.endswith("UID FETCH 1:* (UID FLAGS)")) == len(FOLDERS)
    assert assert_same(plain, user, home) == sum(FOLDERS.values())
    for name, uid in gone.items():
        assert uid in _index_rows(home, user, name)
    _nothing_left(t, home)


def _flushing_threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The directories a sync fsyncs, and the thread each was fsynced in (last)."""
    import threading

    import mailbag.store.index as index_module

    flushed_by: dict[str, str] = {}
    real = index_module.fsync_dir

    def fsync_dir(path: str | Path) -> None:
        flushed_by[str(path)] = threading.current_thread().name
        real(path)

    monkeypatch.setattr(index_module, "fsync_dir", fsync_dir)
    return flushed_by


def test_folders_taken_over_from_the_server_share_one_commit(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one flush for the four folders' changes (was one each), every directory their
    # renames and removals changed made durable before it
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    _server_changes(plain, user)
    # (however slow a loaded machine makes the server, the index is not committed early)
    monkeypatch.setattr(engine, "_HOLD_WAIT", 60.0)
    seam = record(monkeypatch)
    flushed_by = _flushing_threads(monkeypatch)
    report = sync(t, home, connections=1)
    monkeypatch.undo()
    assert_ok(report)
    assert totals(report)["deleted"] == len(FOLDERS)
    assert totals(report)["updated"] >= 2 * len(FOLDERS)
    # each folder's directories made durable in a helper thread while the next folders
    # were read (`Store.flush_dirs_ahead`), not all at the commit
    assert flushed_by and set(flushed_by.values()) == {"mailbag-flush"}, flushed_by
    commits = sum(1 for what, _ in seam.events if what == "commit")
    # the folders' changes, with their re-armed directory times (`_rearm`)
    assert commits == 1, seam.events
    checked = assert_renames_durable_before_commit(seam)
    assert len(checked) >= len(FOLDERS)  # (each folder's cur/)
    states = _states(home, user)
    assert all(s is not None and " list=" in s for s in states.values()), states
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - len(FOLDERS)
    for name in FOLDERS:
        assert _index_rows(home, user, name) == _server_rows(plain, user, name)
    _nothing_left(t, home)


def test_a_failing_folder_keeps_what_the_folders_before_it_did(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Work's changes fail halfway (after its renames): its part of the shared
    # transaction is undone, INBOX's (applied before it, not committed yet) is kept, and
    # the folders after it go on
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    _server_changes(plain, user)
    real = apply_module.apply_plan  # (the driver imports it when a plan is applied)

    def apply_plan(plan: object, *, folder: Folder, **kw: object) -> None:
        real(plan, folder=folder, **kw)  # type: ignore[arg-type]
        if folder.name == "Work":
            raise StoreError("disk trouble (test)")

    monkeypatch.setattr(apply_module, "apply_plan", apply_plan)
    report = sync(t, home, connections=1)
    monkeypatch.undo()
    by_name = {f.name: f for f in report.folders}
    assert by_name["Work"].error is not None and "disk trouble" in by_name["Work"].error
    assert all(by_name[n].error is None for n in ("INBOX", "Lists", "Family"))
    for name in ("INBOX", "Lists", "Family"):
        assert _index_rows(home, user, name) == _server_rows(plain, user, name), name
    assert _index_rows(home, user, "Work") != _server_rows(plain, user, "Work")
    again = sync(t, home, connections=1)
    assert_ok(again)
    for name in FOLDERS:
        assert _index_rows(home, user, name) == _server_rows(plain, user, name), name
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - len(FOLDERS)
    last = sync(t, home, connections=1)
    assert_ok(last)
    assert sum(totals(last).values()) == 0


@pytest.mark.parametrize("point", ["local-files:1", "local-files:3"])
def test_sigkill_before_the_shared_commit_converges(
    plain: Sandbox, user: str, tmp_path: Path, point: str
) -> None:
    # the files of the folders applied so far are changed, their rows not (they wait
    # for one commit): the next run finds the files as they are and records them
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    _server_changes(plain, user)
    crashed = sync_in_child(t, home, crash=point)
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout, crashed.stderr)
    with Store.open(home_paths(home)) as store:
        behind = [
            f.name
            for f in store.folders(user)
            if len(f.maildir.scan()) < len(list(store.folder_messages(f)))
        ]
    # (all of them unless the server was slow to answer: then what waited was committed)
    assert 1 <= len(behind) <= int(point.split(":")[1]), behind
    again = sync_in_child(t, home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - len(FOLDERS)
    for name in FOLDERS:
        assert _index_rows(home, user, name) == _server_rows(plain, user, name), name
    final = sync(t, home, connections=1)
    assert_ok(final)
    assert sum(totals(final).values()) == 0, totals(final)


def _states(home: Path, user: str) -> dict[str, str | None]:
    with Store.open(home_paths(home)) as store:
        return {f.name: f.sync_state for f in store.folders(user) if f.name in FOLDERS}


def _row_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders whose rows a sync reads (for planning), and those it plans."""
    read: list[str] = []
    real_texts = engine._IndexRows._settled_texts
    real_rows = engine._IndexRows._rows
    real_plan = engine._plan_folder

    def settled_texts(self: engine._IndexRows, after: int) -> object:
        read.append(self.folder.name)
        return real_texts(self, after)

    def rows(self: engine._IndexRows, *args: object, **kw: object) -> object:
        read.append(self.folder.name)
        return real_rows(self, *args, **kw)  # type: ignore[arg-type]

    def plan(*args: object) -> object:
        read.append("plan")
        return real_plan(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine._IndexRows, "_settled_texts", settled_texts)
    monkeypatch.setattr(engine._IndexRows, "_rows", rows)
    monkeypatch.setattr(engine, "_plan_folder", plan)
    return read


def test_a_listing_like_the_last_one_is_not_compared_with_the_rows(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the index matched the last listing (its print recorded with the directory times):
    # an equal listing of a folder unchanged here is all the sync needs, no row is read
    # and nothing planned; any change there (flags only: same count, same UIDNEXT) makes
    # another print, and the folder is compared row by row as ever
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    states = _states(home, user)
    assert all(s is not None and " list=" in s for s in states.values()), states
    read = _row_reads(monkeypatch)
    quiet = sync(t, home, connections=1)
    assert_ok(quiet)
    assert sum(totals(quiet).values()) == 0
    assert read == []
    assert _states(home, user) == states  # (nothing written)
    with plain.control(user) as c:
        c.store("Work", c.uids("Work")[4:5], "+FLAGS", ["$Later"])
    changed = sync(t, home, connections=1)
    assert_ok(changed)
    by_name = {f.name: f for f in changed.folders}
    assert by_name["Work"].updated == 1
    assert set(read) == {"Work", "plan"}
    monkeypatch.undo()
    after = _states(home, user)
    assert after["Work"] != states["Work"] and " list=" in (after["Work"] or "")
    assert assert_same(plain, user, home) == sum(FOLDERS.values())


def test_pushing_to_the_server_forgets_the_last_listing(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a change made here and pushed changes the server's listing: the print is dropped
    # with the folder's first changes, before the push (killed right after it, the
    # index does not still say "as listed"); the next sync compares the rows and records
    # a new one
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    with Store.open(home_paths(home)) as store:
        lists = store.folder(user, "Lists")
        m = next(m for m in store.folder_messages(lists) if "\\Flagged" not in m.flags)
    entry = lists.maildir.find(m.key)
    assert entry is not None
    info = flags_to_info(entry.flags | {"\\Flagged"})
    entry.path.rename(entry.root / "cur" / f"{m.key}:2,{info}")  # (as mutt marks it)
    crashed = sync_in_child(t, home, crash="local-files:1")  # (after the push)
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout, crashed.stderr)
    assert "\\Flagged" in server_state(plain, user)["Lists"][m.uid or 0][1]
    states = _states(home, user)
    assert " list=" not in (states["Lists"] or "")
    assert all(" list=" in (s or "") for n, s in states.items() if n != "Lists"), states
    read = _row_reads(monkeypatch)
    again = sync(t, home, connections=1)
    assert_ok(again)
    assert set(read) == {"Lists", "plan"}  # compared with the rows, then recorded
    monkeypatch.undo()
    assert " list=" in (_states(home, user)["Lists"] or "")
    assert assert_same(plain, user, home) == sum(FOLDERS.values())
    time.sleep(0.1)  # (directory times older than a clock tick: trusted)
    read = _row_reads(monkeypatch)
    last = sync(t, home, connections=1)
    assert_ok(last)
    assert sum(totals(last).values()) == 0 and read == []


def _copy_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """The folders whose settled rows a sync reads from the index, and those it takes
    from the copy of the last listing (`_ListingCopy`)."""
    from_index: list[str] = []
    from_copy: list[str] = []
    real_texts = engine._IndexRows._settled_texts
    real_load = engine._ListingCopy.load

    def settled_texts(self: engine._IndexRows, after: int) -> object:
        from_index.append(self.folder.name)
        return real_texts(self, after)

    def load(self: engine._ListingCopy, *args: object) -> object:
        early = real_load(self, *args)  # type: ignore[arg-type]
        if early is not None:
            from_copy.append(self.folder_id)  # type: ignore[arg-type]
        return early

    monkeypatch.setattr(engine._IndexRows, "_settled_texts", settled_texts)
    monkeypatch.setattr(engine._ListingCopy, "load", load)
    return from_index, from_copy


def _keyword_and_expunge(plain: Sandbox, user: str) -> None:
    """In every folder: a keyword toggled on its first message, its last expunged."""
    with plain.control(user) as c:
        for name in FOLDERS:
            uids = c.uids(name)
            flags = server_state(plain, user)[name][uids[0]][1]
            c.store(name, uids[:1], "-FLAGS" if "$Later" in flags else "+FLAGS", ["$Later"])
            c.expunge(name, uids[-1:])


def test_a_changed_listing_is_compared_with_a_copy_of_the_last_one(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the index matched the last listing, kept beside it: when the server changed flags
    # and expunged (the listing differs), the folders clean here take their settled
    # rows from that copy instead of reading them from the index; the result is what
    # reading them gives. A copy that does not check out (damaged, or of another
    # listing) is not taken: the rows are read from the index, as ever.
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    with Store.open(home_paths(home)) as store:
        ids = {f.name: f.id for f in store.folders(user) if f.name in FOLDERS}
    listings = home / "data" / "listings"

    def copies() -> dict[int, Path]:
        found = {int(p.name.split(".", 1)[0]): p for p in listings.iterdir()}
        assert len(found) == len(list(listings.iterdir()))  # (one a folder)
        return found

    assert set(copies()) == set(ids.values())
    _keyword_and_expunge(plain, user)
    from_index, from_copy = _copy_reads(monkeypatch)
    changed = sync(t, home, connections=1)
    assert_ok(changed)
    assert totals(changed)["deleted"] == len(FOLDERS)
    assert totals(changed)["updated"] == len(FOLDERS)
    assert from_index == []
    assert sorted(from_copy) == sorted(ids.values())
    monkeypatch.undo()
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - len(FOLDERS)
    for name in FOLDERS:
        assert _index_rows(home, user, name) == _server_rows(plain, user, name)
    # a damaged copy (one bit of a flag set's number), and a copy of an earlier listing
    # under the name of the last one's
    stale = copies()[ids["Work"]].read_bytes()
    time.sleep(0.1)  # (directory times older than a clock tick: trusted)
    _keyword_and_expunge(plain, user)
    sync(t, home, connections=1)
    inbox = copies()[ids["INBOX"]]
    damaged = bytearray(inbox.read_bytes())
    damaged[-1] ^= 0x01
    inbox.write_bytes(bytes(damaged))
    copies()[ids["Work"]].write_bytes(stale)
    time.sleep(0.1)
    _keyword_and_expunge(plain, user)
    from_index, from_copy = _copy_reads(monkeypatch)
    last = sync(t, home, connections=1)
    assert_ok(last)
    assert sorted(set(from_index)) == ["INBOX", "Work"]
    assert sorted(from_copy) == sorted([ids["Lists"], ids["Family"]])
    monkeypatch.undo()
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - 3 * len(FOLDERS)
    for name in FOLDERS:
        assert _index_rows(home, user, name) == _server_rows(plain, user, name)


def test_the_first_folder_is_asked_for_with_the_folder_list(
    plain: Sandbox, user: str, tmp_path: Path
) -> None:
    # the biggest folder read whole (the one synced first) has its SELECT and listing
    # sent behind the LIST: the server works on it while the folders are settled here
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    _server_changes(plain, user)
    report, lines = _traced(t, home, tmp_path / "trace")
    assert_ok(report)
    assert totals(report)["deleted"] == len(FOLDERS)
    list_tag = next(x.split()[1] for x in lines if x.startswith("C: ") and ' LIST "" *' in x)
    listed = next(i for i, x in enumerate(lines) if x.startswith(f"S: {list_tag} "))
    select_inbox = next(i for i, x in enumerate(lines) if x.endswith("SELECT INBOX"))
    assert select_inbox < listed
    assert lines[select_inbox + 1].endswith("UID FETCH 1:* (UID FLAGS)")
    assert sum(1 for x in lines if x.startswith("C: ") and " SELECT " in x) == len(FOLDERS)
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - len(FOLDERS)
    _nothing_left(t, home)


def test_answers_sent_with_the_list_are_kept_while_a_move_is_made(
    plain: Sandbox, user: str, tmp_path: Path
) -> None:
    # a move made here goes to the server before the folders are synced: the first
    # folder's answers, sent with the LIST, are read and kept first; the folder is then
    # planned from them (its changes taken over), not selected and listed again
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    _server_changes(plain, user)
    with Store.open(home_paths(home)) as store:
        work = store.folder(user, "Work")
        m = next(iter(store.folder_messages(work)))
        store.move(m, store.folder(user, "Lists"))
    report, lines = _traced(t, home, tmp_path / "trace")
    assert_ok(report)
    sent = [x for x in lines if x.startswith("C: ")]
    selects = [x.split(" SELECT ")[1] for x in sent if " SELECT " in x]
    assert selects[:2] == ["INBOX", "Work"], selects  # (INBOX with the LIST; Work: the move)
    assert selects.count("INBOX") == 1, selects
    assert sum(1 for x in sent if x.endswith("UID FETCH 1:* (UID FLAGS)")) == len(FOLDERS)
    by_name = {f.name: f for f in report.folders}
    assert by_name["INBOX"].deleted == 1
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - len(FOLDERS)
    _nothing_left(t, home)


def _recorded_prints(home: Path, user: str) -> dict[int, str | None]:
    """Folder id -> the print of the listing its index rows are recorded to match."""
    with Store.open(home_paths(home)) as store:
        return {
            f.id: (f.sync_state or "").partition(" list=")[2] or None
            for f in store.folders(user)
            if f.name in FOLDERS
        }


def _copies_match_and_are_taken(
    plain: Sandbox, user: str, home: Path, t: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copies beside the index are one per folder, those of the prints it records,
    and the next sync after a change on the server takes them all; its result is the
    server's. (Two syncs with a change before each have run on the settled folders.)"""
    prints = _recorded_prints(home, user)
    assert None not in prints.values()
    listings = home / "data" / "listings"
    assert {p.name for p in listings.iterdir()} == {f"{fid}.{p}" for fid, p in prints.items()}
    time.sleep(0.1)  # (directory times older than a clock tick: trusted)
    _keyword_and_expunge(plain, user)
    from_index, from_copy = _copy_reads(monkeypatch)
    last = sync(t, home, connections=1)
    assert_ok(last)
    assert from_index == []
    assert sorted(from_copy) == sorted(prints)
    monkeypatch.undo()
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - 2 * len(FOLDERS)
    for name in FOLDERS:
        assert _index_rows(home, user, name) == _server_rows(plain, user, name)


def test_a_crash_before_the_old_copies_are_removed_converges(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a folder's new copy is written before the commit that records its print; its old
    # one goes with the sync's other removals, at the end (`Store.remove_later`). Killed
    # in between, both are there and the index records the old print: the next run
    # reads the folders whole (their files changed), records new prints and copies, and
    # the old ones go; the copies left are those the run after takes
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    listings = home / "data" / "listings"
    before = {p.name for p in listings.iterdir()}
    prints = _recorded_prints(home, user)
    assert before == {f"{fid}.{p}" for fid, p in prints.items()}
    _keyword_and_expunge(plain, user)
    crashed = sync_in_child(t, home, crash="local-files:2")
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout, crashed.stderr)
    after = {p.name for p in listings.iterdir()}
    assert before < after, (before, after)  # (the first folder's new copy, the old kept)
    assert _recorded_prints(home, user) == prints
    again = sync_in_child(t, home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert assert_same(plain, user, home) == sum(FOLDERS.values()) - len(FOLDERS)
    _copies_match_and_are_taken(plain, user, home, t, monkeypatch)


def test_a_big_folders_copy_is_written_aside_and_in_place_at_its_commit(
    plain: Sandbox, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the copy of a big folder's listing (here: every folder, by a low threshold) is
    # written in a helper thread while the sync goes on; the commit that records the
    # folder's print waits for it: at every commit, each print being recorded has its
    # copy in place (a crash right after the commit finds the copy it records)
    home = tmp_path / "home"
    t = _settled(plain, user, home)
    listings = home / "data" / "listings"
    monkeypatch.setattr(engine, "_COPY_AHEAD_MIN", 1, raising=False)
    writers: list[str] = []
    real_save = engine._ListingCopy.save

    def save(self: engine._ListingCopy, *args: object) -> None:
        writers.append(threading.current_thread().name)
        time.sleep(0.05)  # (a slow disk: the commit must still wait for it)
        real_save(self, *args)  # type: ignore[arg-type]

    missing: list[str] = []
    commits: list[int] = []
    real_end = Store._end

    def end(self: Store, statement: str) -> None:
        if statement == "COMMIT" and self.conn.in_transaction:
            commits.append(1)
            for fid, state in self.conn.execute("SELECT id, sync_state FROM folders"):
                printed = (state or "").partition(" list=")[2]
                if printed and not (listings / f"{fid}.{printed}").exists():
                    missing.append(f"{fid}.{printed}")
        real_end(self, statement)

    monkeypatch.setattr(engine._ListingCopy, "save", save)
    monkeypatch.setattr(Store, "_end", end)
    _keyword_and_expunge(plain, user)
    changed = sync(t, home, connections=1)
    assert_ok(changed)
    assert commits and missing == []
    assert writers == ["mailbag-copy"] * len(FOLDERS)
    monkeypatch.undo()
    _copies_match_and_are_taken(plain, user, home, t, monkeypatch)
