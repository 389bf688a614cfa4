"""The POP3 engine against Dovecot's POP3: exactly once, byte-exact, server-copy policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from pop3_support import pop_account, server_bodies, take_user

from mailbag.config.model import Account, PopOptions
from mailbag.errors import NetworkError, SyncError
from mailbag.paths import Paths
from mailbag.protocols.trace import Transcript
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from mailbag.store.pop_ledger import LedgerState, PopLedger, server_key
from mailbag.sync.imap import sync_lock
from mailbag.sync.pop3 import PopWire, open_pop3, sync_pop3_account
from mailbag.sync.pop3_plan import DAY

T0 = 1_790_000_000.0


def home(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")


def local_bodies(paths: Paths, account: str) -> list[bytes]:
    with Store.open(paths) as store:
        msgs = [m for m in store.messages(account=account, folder="INBOX")]
        return sorted(store.read_bytes(m) for m in msgs)


def test_download_is_byte_exact_and_never_repeated(pop_sandbox: Sandbox, tmp_path: Path) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, 25)
    paths = home(tmp_path)
    acct = pop_account(sb, user)
    r1 = sync_pop3_account(acct, paths, clock=lambda: T0)
    assert r1.new == 25 and r1.removed == 0
    assert r1.folder_summary() == {
        "name": "INBOX",
        "new": 25,
        "updated": 0,
        "deleted": 0,
        "uploaded": 0,
    }
    assert local_bodies(paths, acct.name) == sorted(server_bodies(sb, user))
    # leave on server is the default: everything is still there
    assert len(server_bodies(sb, user)) == 25
    r2 = sync_pop3_account(acct, paths, clock=lambda: T0)
    assert r2.new == 0
    sb.fill(user, 3, seed=99)
    r3 = sync_pop3_account(acct, paths, clock=lambda: T0)
    assert r3.new == 3
    assert len(local_bodies(paths, acct.name)) == 28


def test_downloaded_files_are_durable_in_tmp_before_the_index_records_them(
    pop_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from durability import assert_deliveries_durable_before_commit, record

    sb, user = pop_sandbox, take_user()
    sb.fill(user, 12)
    paths = home(tmp_path)
    seam = record(monkeypatch)
    assert sync_pop3_account(pop_account(sb, user), paths, clock=lambda: T0).new == 12
    assert assert_deliveries_durable_before_commit(seam) >= 1


def test_same_content_under_two_uidls_is_stored_twice(pop_sandbox: Sandbox, tmp_path: Path) -> None:
    sb, user = pop_sandbox, take_user()
    msg = b"From: a@example.org\r\nSubject: twice\r\nMessage-ID: <same@x>\r\n\r\nsame body\r\n"
    with sb.control(user) as imap:  # APPEND keeps the bytes exactly (LMTP adds headers)
        imap.append("INBOX", msg)
        imap.append("INBOX", msg)
    paths = home(tmp_path)
    r = sync_pop3_account(pop_account(sb, user), paths)
    assert r.new == 2
    bodies = local_bodies(paths, user)
    assert bodies == [msg, msg]


def test_remove_after_n_days_with_a_controlled_clock(pop_sandbox: Sandbox, tmp_path: Path) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, 4)
    paths = home(tmp_path)
    acct = pop_account(sb, user, pop=PopOptions(delete_after_days=7))
    now = T0
    assert sync_pop3_account(acct, paths, clock=lambda: now).new == 4
    sb.fill(user, 2, seed=5)
    now = T0 + 3 * DAY
    r = sync_pop3_account(acct, paths, clock=lambda: now)
    assert (r.new, r.removed) == (2, 0)
    now = T0 + 7 * DAY - 1
    assert sync_pop3_account(acct, paths, clock=lambda: now).removed == 0
    assert len(server_bodies(sb, user)) == 6
    now = T0 + 7 * DAY  # the first four are due, the two later ones not yet
    r = sync_pop3_account(acct, paths, clock=lambda: now)
    assert (r.new, r.removed) == (0, 4)
    assert len(server_bodies(sb, user)) == 2
    now = T0 + 10 * DAY
    assert sync_pop3_account(acct, paths, clock=lambda: now).removed == 2
    assert server_bodies(sb, user) == []
    # nothing was lost here on the way
    assert len(local_bodies(paths, user)) == 6
    with PopLedger.open(paths.index_file, user, server_key(sb.address(user), sb.host)) as led:
        assert {e.state for e in led.entries().values()} == {LedgerState.REMOVED}


def test_remove_right_after_download(pop_sandbox: Sandbox, tmp_path: Path) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, 5)
    before = sorted(server_bodies(sb, user))
    paths = home(tmp_path)
    acct = pop_account(sb, user, pop=PopOptions(leave_on_server=False))
    r = sync_pop3_account(acct, paths)
    assert (r.new, r.removed) == (5, 5)
    assert server_bodies(sb, user) == []
    assert local_bodies(paths, user) == before


def test_remove_when_deleted_here(pop_sandbox: Sandbox, tmp_path: Path) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, 4)
    paths = home(tmp_path)
    acct = pop_account(sb, user, pop=PopOptions(delete_when_deleted_here=True))
    assert sync_pop3_account(acct, paths).new == 4
    with Store.open(paths) as store:
        victim = store.messages(account=user, folder="INBOX")[0]
        victim_bytes = store.read_bytes(victim)
        store.remove(victim)
    r = sync_pop3_account(acct, paths)
    assert (r.new, r.removed) == (0, 1)
    left = server_bodies(sb, user)
    assert len(left) == 3 and victim_bytes not in left
    # a lost local store is not "deleted here": nothing more goes from the server
    paths.index_file.unlink()
    for extra in ("-wal", "-shm"):
        Path(str(paths.index_file) + extra).unlink(missing_ok=True)
    r = sync_pop3_account(acct, paths)
    assert r.removed == 0
    assert len(server_bodies(sb, user)) == 3


def test_quit_never_acknowledged_leaves_removals_pending(
    pop_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, 3)
    paths = home(tmp_path)
    acct = pop_account(sb, user, pop=PopOptions(leave_on_server=False))

    def dropping_connect(account: Account, password: str, transcript: Transcript) -> PopWire:
        wire = open_pop3(account, password, transcript)

        def quit_dropped() -> None:
            wire.close()  # the line dies before QUIT: the server commits nothing
            raise NetworkError("connection dropped", cause="dropped")

        wire.quit = quit_dropped  # type: ignore[method-assign]
        return wire

    with pytest.raises(NetworkError):
        sync_pop3_account(acct, paths, connect=dropping_connect)
    assert len(server_bodies(sb, user)) == 3
    key = server_key(sb.address(user), sb.host)
    with PopLedger.open(paths.index_file, user, key) as led:
        assert {e.state for e in led.entries().values()} == {LedgerState.DELE_SENT}
    # the next session sees them still listed, keeps them stored and removes them for real
    r = sync_pop3_account(acct, paths)
    assert (r.new, r.removed) == (0, 3)
    assert server_bodies(sb, user) == []
    assert len(local_bodies(paths, user)) == 3


def test_a_second_sync_of_the_same_account_is_refused(pop_sandbox: Sandbox, tmp_path: Path) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, 2)
    paths = home(tmp_path)
    acct = pop_account(sb, user)
    with sync_lock(paths, acct.name):
        with pytest.raises(SyncError) as err:
            sync_pop3_account(acct, paths)
        assert err.value.fields["cause"] == "locked"
    assert sync_pop3_account(acct, paths).new == 2
