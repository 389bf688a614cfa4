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
from mailbag.sync.events import AccountReport
from synctools import (
    Target,
    assert_nothing_left,
    assert_ok,
    assert_same,
    assert_same_but_line_ends,
    home_paths,
    server_state,
    sync,
    sync_in_child,
    target,
    totals,
)

pytestmark = pytest.mark.sandbox
USERS = [f"uidv{i}" for i in range(20)]
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


def _bare(subject: str, body: str, extra: str = "") -> bytes:
    """A message without a (usable) Message-ID, as cron and scripts send them."""
    return (
        f"From: robot@sandbox.test\r\nTo: someone@sandbox.test\r\nSubject: {subject}\r\n"
        f"Date: Tue, 3 Mar 2026 09:00:00 +0000\r\n{extra}\r\n{body}\r\n"
    ).encode()


# Messages without a Message-ID: u1-u3 of one size (other headers), t1/t2 the same
# header block and size with other bodies, g1/g2 a garbage Message-ID ("<>") of one
# size; n1 new there and h1 new here, both of u1's size with other headers.
UNNAMED = {
    "u1": _bare("unnamed 1", "first body"),
    "u2": _bare("unnamed 2", "other body"),
    "u3": _bare("unnamed 3", "third body"),
    "t1": _bare("disk alert", "disk 1 is full"),
    "t2": _bare("disk alert", "disk 2 is full"),
    "g1": _bare("garbage a", "gg", "Message-ID: <>\r\n"),
    "g2": _bare("garbage b", "gg", "Message-ID: <>\r\n"),
}
NEW_THERE, NEW_HERE = _bare("unnamed 9", "fresh body"), _bare("unnamed 8", "local body")


def _migrated(sb: Sandbox, user: str, home: Path) -> Target:
    """Synced mail, then changes on both sides while the server's folders get new
    UIDVALIDITYs (and some messages new UIDs in another order), then new mail there.
    INBOX holds messages without a Message-ID too (`UNNAMED`)."""
    sb.fill(user, 24, "INBOX", seed=11, seen_ratio=0.5)
    sb.fill(user, 6, "Archive", seed=12)
    with sb.control(user) as c:
        for data in UNNAMED.values():
            c.append("INBOX", data)
    t = target(sb, user)
    assert_ok(sync(t, home))
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        first = min(store.folder_messages(inbox), key=lambda m: m.uid or 0)
        store.set_flags(first, first.flags | {"\\Flagged", "$todo"})  # not pushed yet
        u1 = next(m for m in store.folder_messages(inbox) if m.subject == "unnamed 1")
        store.set_flags(u1, u1.flags | {"\\Flagged"})
        store.add_bytes(inbox, b"Subject: here only\r\nMessage-ID: <here@x>\r\n\r\nhi\r\n")
        store.add_bytes(inbox, NEW_HERE)
    with sb.control(user) as c:
        uids = c.uids("INBOX")
        by_bytes = {data: uid for uid, data in c.fetch_bodies("INBOX").items()}
        # gone there: the copies here are kept (uploaded)
        c.expunge("INBOX", [uids[2], by_bytes[UNNAMED["u2"]]])
        c.create("Moving")
        for uid in reversed(c.uids("INBOX")[-9:]):  # new UIDs, in the reverse order
            c.move("INBOX", [uid], "Moving")
        c.move("Moving", c.uids("Moving"), "INBOX")
        c.delete_mailbox("Moving")
    sb.reset_uidvalidity(user, "INBOX")
    sb.reset_uidvalidity(user, "Archive")
    # (after the reset: Dovecot may rebuild a Maildir's flags from its file names then)
    with sb.control(user) as c:
        c.store("INBOX", [c.uids("INBOX")[1]], "+FLAGS", ["\\Answered"])
        by_bytes = {data: uid for uid, data in c.fetch_bodies("INBOX").items()}
        c.store("INBOX", [by_bytes[UNNAMED["t2"]]], "+FLAGS", ["\\Seen", "$alert"])
        c.append("INBOX", NEW_THERE)  # really new
    sb.fill(user, 3, "INBOX", seed=13)  # really new
    return t


#: INBOX after the sync: 24 + 7 there, 2 expunged, 4 new there, 4 uploaded; Archive 6
AFTER = 24 + 7 - 2 + 4 + 4 + 6


def _server_flags_of(sb: Sandbox, user: str, data: bytes) -> frozenset[str]:
    (flags,) = [f for d, f in server_state(sb, user)["INBOX"].values() if d == data]
    return flags


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
    # nothing downloaded again that was here (only the 4 new there), nothing deleted
    assert (inbox.paired, inbox.new, inbox.uploaded, inbox.deleted) == (29, 4, 4, 0)
    assert (inbox.paired_again, inbox.paired_by_hash) == (29, 6)
    assert (archive.paired, archive.new, archive.uploaded, archive.deleted) == (6, 0, 0, 0)
    assert (archive.paired_again, archive.paired_by_hash) == (6, 0)
    assert inbox.updated == 4  # the flags added here and there, now on both sides
    assert any(
        "UIDVALIDITY changed" in n
        and "29 messages paired again (23 by Message-ID and size, 6 without one by size and "
        "header hash), 4 new there to download, 4 only here to upload; nothing was deleted"
        in n
        for n in inbox.notes
    ), inbox.notes
    # the same messages (bytes, flags) on both sides, none twice on either (by content)
    assert assert_same(sb, user, home) == AFTER
    flags = [f for _, f in server_state(sb, user)["INBOX"].values()]  # (the same here)
    assert sum(1 for f in flags if {"\\Flagged", "$todo"} <= f) == 1
    assert sum(1 for f in flags if "\\Answered" in f) == 1
    assert "\\Flagged" in _server_flags_of(sb, user, UNNAMED["u1"])
    assert {"\\Seen", "$alert"} <= _server_flags_of(sb, user, UNNAMED["t2"])
    assert "$alert" not in _server_flags_of(sb, user, UNNAMED["t1"])
    for data in [*UNNAMED.values(), NEW_THERE, NEW_HERE]:
        _server_flags_of(sb, user, data)  # each there once
    again = sync(t, home)
    assert_ok(again)
    assert sum(totals(again).values()) == 0, totals(again)


def test_the_sync_summary_tells_how_many_were_paired_again(
    sb: Sandbox,
    user: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from mailbag.cli.main import main
    from mailbag.config import save_account
    from mailbag.config.model import SecretRef, SecretSource
    from mailbag.paths import Paths
    from mailbag.record import replace

    t = _migrated(sb, user, home)
    monkeypatch.setenv("MAILBAG_HOME", str(home))
    account = t.account()  # (the one the first sync used, its password from a command)
    secret = SecretRef(SecretSource.COMMAND, f"echo '{t.password}'")
    account = replace(
        account,
        incoming=replace(account.incoming, secret=secret),
        smtp=replace(account.smtp, secret=secret),
    )
    save_account(Paths.from_env(), account)
    assert main(["sync", "--json"]) == 0
    out = capsys.readouterr()
    assert out.err.splitlines()[-1].endswith(
        " folders; 4 new, 4 updated, 0 deleted, 4 uploaded; 35 paired again after a "
        "UIDVALIDITY change (6 without a Message-ID, by size and header hash)"
    ), out.err
    (account,) = json.loads(out.out)["accounts"]
    inbox = next(f for f in account["folders"] if f["name"] == "INBOX")
    assert {k: inbox[k] for k in ("new", "uploaded", "deleted", "paired")} == {
        "new": 4,
        "uploaded": 4,
        "deleted": 0,
        "paired": 29,
    }
    assert (inbox["paired_again"], inbox["paired_by_hash"]) == (29, 6)
    # and once all is paired, no such part
    assert main(["sync"]) == 0
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.endswith("0 new, 0 updated, 0 deleted, 0 uploaded"), last


@pytest.mark.parametrize(
    "point", ["paired:1", "local-files:1", "upload:1", "upload:3", "download:2"]
)
def test_a_sync_killed_while_pairing_again_converges(
    sb: Sandbox, user: str, home: Path, point: str
) -> None:
    t = _migrated(sb, user, home)
    crashed = sync_in_child(t, home, crash=point)
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout, crashed.stderr)
    again = sync_in_child(t, home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert assert_same(sb, user, home) == AFTER  # nothing lost or doubled
    final = sync(t, home)
    assert_ok(final)
    assert sum(totals(final).values()) == 0, totals(final)


def test_a_message_without_a_message_id_is_not_uploaded_twice_after_a_crash(
    sb: Sandbox, user: str, home: Path
) -> None:
    # (no UIDVALIDITY change: a sync killed between a draft's APPEND and its record;
    # the same as a server that gives no UID for an APPEND, without UIDPLUS)
    with sb.control(user) as c:
        c.append("INBOX", UNNAMED["u1"])
    t = target(sb, user)
    assert_ok(sync(t, home))
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        store.add_bytes(inbox, NEW_HERE)  # (u1's size, other headers)
        store.add_bytes(inbox, UNNAMED["u2"])
    crashed = sync_in_child(t, home, crash="upload:1")
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout, crashed.stderr)
    again = sync(t, home)
    assert_ok(again)
    # the copy the killed sync appended is paired (by size and header digest), not doubled
    assert totals(again) == {
        "new": 0,
        "updated": 0,
        "deleted": 0,
        "uploaded": 1,
        "paired": 1,
        "restored": 0,
    }, totals(again)
    assert assert_same(sb, user, home) == 3
    final = sync(t, home)
    assert_ok(final)
    assert sum(totals(final).values()) == 0, totals(final)


def test_rows_a_server_kept_under_a_new_uidvalidity_are_checked_not_rewritten(
    sb: Sandbox, user: str, home: Path
) -> None:
    # Dovecot keeps its UIDs when only the UIDVALIDITY changes: the rows paired again
    # with the UID and flags they had are left as they are (two UPDATE passes over
    # every row before); those with a change on either side are written
    sb.fill(user, 12, "INBOX", seed=21, seen_ratio=0.5)
    t = target(sb, user)
    assert_ok(sync(t, home))
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        ms = sorted(store.folder_messages(inbox), key=lambda m: m.uid or 0)
        store.set_flags(ms[0], ms[0].flags | {"\\Flagged"})  # changed here, not pushed
        store.conn.execute("CREATE TABLE test_uid_writes(row INTEGER)")
        store.conn.execute(
            "CREATE TRIGGER test_count_uid_writes AFTER UPDATE OF uid ON messages "
            "BEGIN INSERT INTO test_uid_writes VALUES (new.id); END"
        )
        store.commit()
    sb.reset_uidvalidity(user, "INBOX")
    with sb.control(user) as c:
        assert c.uids("INBOX")[1] == ms[1].uid  # (the same UIDs)
        c.store("INBOX", [ms[1].uid], "+FLAGS", ["\\Answered"])  # changed there
    report = sync(t, home)
    assert_ok(report)
    (inbox_report,) = [f for f in report.folders if f.name == "INBOX"]
    assert (inbox_report.paired_again, inbox_report.new, inbox_report.uploaded) == (12, 0, 0)
    assert inbox_report.updated == 2
    with Store.open(home_paths(home)) as store:
        written = {r for (r,) in store.conn.execute("SELECT row FROM test_uid_writes")}
        assert written == {ms[0].id, ms[1].id}
        store.conn.execute("DROP TRIGGER test_count_uid_writes")
        store.commit()
    assert assert_same(sb, user, home) == 12
    state = server_state(sb, user)["INBOX"]
    assert "\\Flagged" in state[ms[0].uid][1] and "\\Answered" in state[ms[1].uid][1]
    again = sync(t, home)
    assert_ok(again)
    assert sum(totals(again).values()) == 0, totals(again)


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def _lf_migrated(sb: Sandbox, user: str, home: Path) -> Target:
    """Mail delivered here by a program that writes bare LF line ends (procmail, a
    script), uploaded (the server keeps and counts it with CRLF: another size), and a
    downloaded message another program rewrote with bare LFs; then a UIDVALIDITY
    change, and new there a message of the first one's Message-ID, other content."""
    named = _lf(
        b"From: cron@sandbox.test\r\nSubject: lf named\r\nMessage-ID: <lf-1@sandbox.test>\r\n"
        b"\r\nline one\r\nline two\r\n"
    )
    unnamed = _lf(_bare("lf unnamed", "report line 1\r\nreport line 2"))
    sb.fill(user, 4, "INBOX", seed=31)
    with sb.control(user) as c:
        c.append("INBOX", _bare("rewritten", "first\r\nsecond"))
    t = target(sb, user)
    assert_ok(sync(t, home))
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        store.add_bytes(inbox, named)
        store.add_bytes(inbox, unnamed)
        (rewritten,) = [m for m in store.folder_messages(inbox) if m.subject == "rewritten"]
        entry = inbox.maildir.scan()[rewritten.key]
        entry.path.write_bytes(_lf(entry.path.read_bytes()))  # in place, same name
    report = sync(t, home)
    assert_ok(report)
    assert totals(report)["uploaded"] == 2
    assert assert_same_but_line_ends(sb, user, home) == 7
    sb.reset_uidvalidity(user, "INBOX")
    with sb.control(user) as c:
        c.append("INBOX", named.replace(b"line two", b"line 2").replace(b"\n", b"\r\n"))
    return t


def test_files_with_bare_lf_line_ends_are_paired_again_not_copied_twice(
    sb: Sandbox, user: str, home: Path
) -> None:
    # after the UIDVALIDITY change each file is paired again with its server copy
    # (compared with CRLF line ends), not downloaded again and not uploaded again; the
    # message of the same Message-ID with other content is not taken for one
    t = _lf_migrated(sb, user, home)
    report = sync(t, home)
    assert_ok(report)
    (inbox_report,) = [f for f in report.folders if f.name == "INBOX"]
    assert (inbox_report.paired_again, inbox_report.new, inbox_report.uploaded) == (7, 1, 0)
    assert inbox_report.deleted == 0
    assert assert_same_but_line_ends(sb, user, home) == 8
    again = sync(t, home)
    assert_ok(again)
    assert sum(totals(again).values()) == 0, totals(again)


@pytest.mark.parametrize("point", ["paired:1", "download:1"])
def test_a_sync_killed_while_pairing_files_with_bare_lfs_converges(
    sb: Sandbox, user: str, home: Path, point: str
) -> None:
    t = _lf_migrated(sb, user, home)
    crashed = sync_in_child(t, home, crash=point)
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout, crashed.stderr)
    again = sync_in_child(t, home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert assert_same_but_line_ends(sb, user, home) == 8  # nothing lost or doubled
    final = sync(t, home)
    assert_ok(final)
    assert sum(totals(final).values()) == 0, totals(final)


def _kept_migrated(sb: Sandbox, user: str, home: Path) -> tuple[Target, dict[str, int]]:
    """A synced folder with nothing to push here (the index is its local side), then a
    new UIDVALIDITY with the same UIDs (Dovecot keeps them), and after it changes there:
    a flag added, one expunged, one new, one new without a Message-ID."""
    sb.fill(user, 40, "INBOX", seed=41, seen_ratio=0.5)
    with sb.control(user) as c:
        c.append("INBOX", _bare("unnamed kept", "body"))
    t = target(sb, user)
    assert_ok(sync(t, home))
    sb.reset_uidvalidity(user, "INBOX")
    with sb.control(user) as c:
        uids = c.uids("INBOX")
        c.store("INBOX", [uids[3]], "+FLAGS", ["\\Flagged"])
        c.expunge("INBOX", [uids[7]])
        c.append("INBOX", b"Subject: new\r\nMessage-ID: <kept-new@sandbox.test>\r\n\r\nhi\r\n")
        c.append("INBOX", _bare("unnamed new", "other"))
    return t, {"flagged": uids[3], "expunged": uids[7]}


def test_rows_the_server_kept_are_found_by_runs_and_left_as_they_are(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbag.protocols.imap import parser

    t, changed = _kept_migrated(sb, user, home)
    with Store.open(home_paths(home)) as store:
        inbox = store.folder(user, "INBOX")
        before = {m.uid: m.id for m in store.folder_messages(inbox)}
        (unnamed,) = [m.id for m in store.folder_messages(inbox) if m.subject == "unnamed kept"]
        store.conn.execute("CREATE TABLE test_uid_writes(row INTEGER)")
        store.conn.execute(
            "CREATE TRIGGER test_count_uid_writes AFTER UPDATE OF uid, synced_flags ON "
            "messages BEGIN INSERT INTO test_uid_writes VALUES (new.id); END"
        )
        store.commit()
    runs: list[int] = []

    def counting(data: bytes, known: dict[bytes, tuple[str, ...]]) -> tuple[list[Any], int]:
        found, used = parser.scan_identity_runs(data, known)
        runs.extend(len(f.uids) for f in found if isinstance(f, parser.IdentityRun))
        return found, used

    monkeypatch.setattr(client_module, "scan_identity_runs", counting)
    report = sync(t, home)
    assert_ok(report)
    (inbox_report,) = [f for f in report.folders if f.name == "INBOX"]
    # 41 here: 39 kept as they were, the flagged one paired again (its flag taken
    # over), the unnamed one by its header hash, the expunged one uploaded again (it
    # is not deleted here), the two new ones downloaded
    assert sum(runs) >= 38
    assert (inbox_report.paired_again, inbox_report.paired_by_hash) == (40, 1)
    assert (inbox_report.new, inbox_report.uploaded, inbox_report.deleted) == (2, 1, 0)
    assert inbox_report.updated == 1
    with Store.open(home_paths(home)) as store:
        written = {r for (r,) in store.conn.execute("SELECT row FROM test_uid_writes")}
        store.conn.execute("DROP TRIGGER test_count_uid_writes")
        store.commit()
    # only the rows paired anew (or voided) were written, not the 38 the server kept,
    # nor the unnamed one paired by its header hash with the message of its own UID and
    # flags (`repair._known_uid`)
    assert written == {before[changed["flagged"]], before[changed["expunged"]]}
    with Store.open(home_paths(home)) as store:
        (row,) = [m for m in store.folder_messages(inbox) if m.id == unnamed]
        assert row.uid is not None and before[row.uid] == unnamed
    assert assert_same(sb, user, home) == 43
    assert "\\Flagged" in server_state(sb, user)["INBOX"][changed["flagged"]][1]
    again = sync(t, home)
    assert_ok(again)
    assert sum(totals(again).values()) == 0, totals(again)


@pytest.mark.parametrize("point", ["download:1", "upload:1"])
def test_a_sync_killed_after_keeping_rows_converges(
    sb: Sandbox, user: str, home: Path, point: str
) -> None:
    t, _ = _kept_migrated(sb, user, home)
    crashed = sync_in_child(t, home, crash=point)
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout, crashed.stderr)
    again = sync_in_child(t, home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert assert_same(sb, user, home) == 43  # nothing lost or doubled
    final = sync(t, home)
    assert_ok(final)
    assert sum(totals(final).values()) == 0, totals(final)


def test_new_uidvalidities_in_a_row_pair_again_and_fetch_only_what_grew(
    sb: Sandbox, user: str, home: Path
) -> None:
    # two folders get a new UIDVALIDITY twice (the second time within the same second:
    # each is a new value), and the second time one of them grew by more than a share:
    # everything is paired again, only the new messages come down (on several
    # connections), nothing is uploaded
    sb.fill(user, 30, "INBOX", seed=41)
    sb.fill(user, 30, "Archive", seed=42)
    t = target(sb, user)
    assert_ok(sync(t, home))
    sb.reset_uidvalidity(user, "INBOX")
    sb.reset_uidvalidity(user, "Archive")
    report = sync(t, home, connections=4, share_chunk=20)
    assert_ok(report)
    assert totals(report) == {**totals(report), "paired": 60, "new": 0, "uploaded": 0}
    assert assert_same(sb, user, home) == 60
    sb.fill(user, 25, "INBOX", seed=43)
    sb.reset_uidvalidity(user, "INBOX")
    sb.reset_uidvalidity(user, "Archive")
    report = sync(t, home, connections=4, share_chunk=20)
    assert_ok(report)
    assert totals(report) == {**totals(report), "paired": 60, "new": 25, "uploaded": 0}
    assert assert_same(sb, user, home) == 85
    assert_nothing_left(t, home)


def _assert_kept_paired(
    sb: Sandbox, user: str, home: Path, t: Target, report: AccountReport
) -> None:
    """`_kept_migrated`'s INBOX paired again as it should be: 40 paired (one of them by
    its header hash), the two new ones downloaded, the expunged one uploaded, nothing
    deleted; and nothing left to do."""
    (inbox_report,) = [f for f in report.folders if f.name == "INBOX"]
    assert (inbox_report.paired_again, inbox_report.paired_by_hash) == (40, 1)
    assert (inbox_report.new, inbox_report.uploaded, inbox_report.deleted) == (2, 1, 0)
    assert assert_same(sb, user, home) == 43
    again = sync(t, home)
    assert_ok(again)
    assert sum(totals(again).values()) == 0, totals(again)


def test_header_digests_are_asked_for_before_the_files_here_are_hashed(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the server reads the headers of its messages without a Message-ID while the
    # listing is compared and the files here are hashed, not after
    from mailbag.sync import digests

    t, _ = _kept_migrated(sb, user, home)
    events: list[str] = []
    submit, digest_file = client_module.ImapClient.submit, digests.digest_file

    def submitting(self: client_module.ImapClient, *args: Any) -> Any:
        if any(isinstance(a, bytes) and b"BODY.PEEK[HEADER]" in a for a in args):
            events.append("header fetch")
        return submit(self, *args)

    def hashing(path: Any, whole: bool) -> bytes | None:
        events.append("hash here")
        return digest_file(path, whole)

    monkeypatch.setattr(client_module.ImapClient, "submit", submitting)
    monkeypatch.setattr(digests, "digest_file", hashing)
    report = sync(t, home)
    assert_ok(report)
    assert "hash here" in events and "header fetch" in events, events
    assert events.index("header fetch") < events.index("hash here"), events
    _assert_kept_paired(sb, user, home, t, report)


@pytest.mark.parametrize("where", ["submit_uid_fetch", "header_answers"])
def test_a_connection_lost_with_digests_asked_for_ahead_pairs_the_same_on_a_new_one(
    sb: Sandbox, user: str, home: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # the connection is lost as the header digests are asked for ahead, or as their
    # answers are read: the folder is synced again on a new connection and pairs as it
    # would have (nothing uploaded or downloaded twice, nothing deleted)
    from mailbag.errors import NetworkError

    t, _ = _kept_migrated(sb, user, home)
    method = getattr(client_module.ImapClient, where)
    lost: list[str] = []

    def losing(self: client_module.ImapClient, *args: Any, **kwargs: Any) -> Any:
        if not lost:
            lost.append(self.selected or "")
            self.close()
            raise NetworkError("connection lost (test)")
        return method(self, *args, **kwargs)

    monkeypatch.setattr(client_module.ImapClient, where, losing)
    report = sync(t, home)
    assert_ok(report)
    assert lost == ["INBOX"]
    _assert_kept_paired(sb, user, home, t, report)


def test_a_header_block_longer_than_a_receive_buffer_is_paired_by_its_hash(
    sb: Sandbox, user: str, home: Path
) -> None:
    # its header answer, asked for ahead, is read by the general reader (hashed as it
    # comes), the short one beside it cut from the buffer: both pair
    long_head = b"".join(b"X-Trace-%d: %s\r\n" % (i, b"t" * 70) for i in range(1500))
    sb.fill(user, 5, "INBOX", seed=51)
    with sb.control(user) as c:
        c.append("INBOX", _bare("long header", "body", long_head.decode()))
        c.append("INBOX", _bare("short header", "body"))
    t = target(sb, user)
    assert_ok(sync(t, home))
    sb.reset_uidvalidity(user, "INBOX")
    report = sync(t, home)
    assert_ok(report)
    (inbox_report,) = [f for f in report.folders if f.name == "INBOX"]
    assert (inbox_report.paired_again, inbox_report.paired_by_hash) == (7, 2)
    assert (inbox_report.new, inbox_report.uploaded, inbox_report.deleted) == (0, 0, 0)
    assert assert_same(sb, user, home) == 7
