"""A folder's report after its sync failed part way, against the real Dovecot: what the
tries before committed (downloaded batches, uploads, a UIDVALIDITY re-pairing) is in the
report of the try that finished, and of a folder that never finished, with the error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.config import save_account
from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from mailbag.sync import events
from mailbag.sync.events import AccountReport, FolderReport, Progress
from synctools import assert_ok, assert_same, home_paths, sync, target, totals

pytestmark = pytest.mark.sandbox
USERS = [f"retry{i}" for i in range(12)]
_next_user = iter(USERS)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """One Dovecot for this module; every test gets a user of its own."""
    with Sandbox(users={u: f"{u}-secret" for u in USERS}, services={"imap", "smtp"}) as box:
        yield box


@pytest.fixture
def own() -> Iterator[Sandbox]:
    """A Dovecot of its own, for the tests that stop it."""
    with Sandbox(users={u: f"{u}-secret" for u in USERS}, services={"imap", "smtp"}) as box:
        yield box


@pytest.fixture
def user() -> str:
    return next(_next_user)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _inbox(report: AccountReport) -> FolderReport:
    return next(f for f in report.folders if f.name == "INBOX")


def _stored(paths: Paths, account: str) -> int:
    """The messages of INBOX in the index here."""
    with Store.open(paths) as store:
        return sum(1 for _ in store.folder_messages(store.folder(account, "INBOX")))


def _synced_with_mail_here(
    box: Sandbox,
    user: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """INBOX synced by `mailbag sync` (account `user`, MAILBAG_HOME `home`), then three
    messages added here, which the next sync uploads."""
    from mailbag.cli.main import main

    monkeypatch.setenv("MAILBAG_HOME", str(home))
    paths = Paths.from_env()
    save_account(paths, box.account(user, name=user, password_command=True))
    assert main(["sync", "--folder", "INBOX"]) == 0
    with Store.open(paths) as store:
        inbox = store.folder(user, "INBOX")
        for i in range(3):
            data = f"Subject: here {i}\r\nMessage-ID: <here{i}@x>\r\n\r\nhi\r\n"
            store.add_bytes(inbox, data.encode())


# (share_chunk=20: the downloads go in pieces of 20-30 messages, one FETCH each, and
# are committed 10 at a time; a dropped connection fails the next piece's FETCH at the
# latest, after some batches were committed)


@pytest.mark.parametrize("connections", [1, 3])
def test_the_report_counts_what_each_try_downloaded(
    sb: Sandbox, user: str, home: Path, connections: int
) -> None:
    n = 240  # (in pieces of 20 on 3 connections: 12; of 60 on 1: 4)
    sb.fill(user, n, "INBOX", seed=31)
    t = target(sb, user)
    received = 0
    retries: list[str] = []

    def progress(event: Progress) -> None:
        nonlocal received
        if event.kind == "message":
            received += 1
            if received == 35:
                sb.drop_connections(user)
        elif event.kind == "retry" and event.folder == "INBOX":
            retries.append(event.detail)

    report = sync(t, home, connections=connections, share_chunk=20, on_progress=progress)
    assert_ok(report)
    assert retries, "the connection was not dropped during INBOX's downloads"
    # every message downloaded once, over both tries, and all of them reported
    assert received == n
    assert _inbox(report).new == n, _inbox(report)
    assert totals(report)["new"] == n
    assert_same(sb, user, home)


def test_sync_json_keeps_a_re_pairing_committed_before_the_connection_dropped(
    sb: Sandbox,
    user: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mailbag.cli.main import main

    sb.fill(user, 20, "INBOX", seed=32)
    _synced_with_mail_here(sb, user, home, monkeypatch)
    sb.reset_uidvalidity(user, "INBOX")
    capsys.readouterr()
    uploads = 0

    def progress(event: Progress) -> None:
        # the pairings are committed before the first upload; the connection goes
        # after it, so the second APPEND fails and the folder is tried again
        nonlocal uploads
        if event.kind == "message" and event.folder == "INBOX":
            uploads += 1
            if uploads == 1:
                sb.drop_connections(user)

    monkeypatch.setattr(events, "no_progress", progress)
    code = main(["sync", "--json", "--folder", "INBOX", "--connections", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    (account,) = json.loads(out.out)["accounts"]
    inbox_json = next(f for f in account["folders"] if f["name"] == "INBOX")
    assert uploads == 3
    assert inbox_json["error"] is None
    assert {k: inbox_json[k] for k in ("new", "uploaded", "deleted", "paired_again")} == {
        "new": 0,
        "uploaded": 3,
        "deleted": 0,
        "paired_again": 20,
    }, inbox_json
    assert any("UIDVALIDITY changed" in n for n in inbox_json["notes"]), inbox_json["notes"]
    assert "20 paired again after a UIDVALIDITY change" in out.err.splitlines()[-1], out.err
    assert_same(sb, user, home)


def test_a_folder_that_never_finishes_reports_the_committed_batches_and_the_error(
    own: Sandbox, user: str, home: Path
) -> None:
    n = 120
    own.fill(user, n, "INBOX", seed=33)
    t = target(own, user)
    received = 0

    def progress(event: Progress) -> None:
        nonlocal received
        if event.kind == "message":
            received += 1
            if received == 35:
                own.drop_connections(user)
                own.stop_service("dovecot")

    report = sync(
        t, home, connections=1, share_chunk=20, retries=1, folders=("INBOX",), on_progress=progress
    )
    inbox = _inbox(report)
    assert inbox.error is not None and "after 2 tries" in inbox.error, inbox
    assert not report.ok
    kept = _stored(home_paths(home), t.account().name)
    assert 35 <= kept < n
    assert inbox.new == kept, inbox
    assert report.to_json()["folders"] == [inbox.to_json()]
    assert inbox.to_json()["new"] == kept
    # the next run downloads the rest, and says so
    own.start_service("dovecot")
    again = sync(t, home, folders=("INBOX",))
    assert_ok(again)
    assert _inbox(again).new == n - kept
    assert_same(own, user, home)


def test_sync_says_what_it_did_and_what_it_could_not_do(
    own: Sandbox,
    user: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mailbag.cli.main import main

    own.fill(user, 6, "INBOX", seed=34)
    _synced_with_mail_here(own, user, home, monkeypatch)
    own.fill(user, 4, "INBOX", seed=35)  # new there: downloaded after the uploads
    capsys.readouterr()

    stopped = False

    def progress(event: Progress) -> None:
        nonlocal stopped
        if event.kind == "message" and event.folder == "INBOX" and not stopped:
            # after the first upload: no try gets further
            stopped = True
            own.drop_connections(user)
            own.stop_service("dovecot")

    monkeypatch.setattr(events, "no_progress", progress)
    code = main(["sync", "--json", "--folder", "INBOX", "--connections", "1"])
    out = capsys.readouterr()
    assert code == 1, out.err
    (account,) = json.loads(out.out)["accounts"]
    assert account["ok"] is False
    inbox_json = next(f for f in account["folders"] if f["name"] == "INBOX")
    assert "tries" in inbox_json["error"], inbox_json
    assert (inbox_json["uploaded"], inbox_json["new"]) == (1, 0), inbox_json
    assert account["error"] == inbox_json["error"]
    lines = out.err.splitlines()
    assert any(x.startswith(f"mailbag: warning: {user}/INBOX: ") and "tries" in x for x in lines), (
        out.err
    )
    assert f"mailbag: warning: {user}/INBOX: done before that (kept): 1 uploaded" in lines, out.err
    assert lines[-1].endswith(
        " folders; 0 new, 0 updated, 0 deleted, 1 uploaded; 1 not finished (see above)"
    ), out.err
