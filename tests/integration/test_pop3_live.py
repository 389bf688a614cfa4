"""POP3 through mailbag's own client against Dovecot: STLS and SSL, pipelining, a
connection dropped mid-RETR, POP turned off, and `mailbag sync` for a POP3 account."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from pop3_support import pop_account, server_bodies, take_user

from mailbag.config import PopOptions, save_account
from mailbag.config.model import Account
from mailbag.errors import NetworkError
from mailbag.paths import Paths
from mailbag.protocols.trace import Transcript
from mailbag.protocols.transport import Security
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from mailbag.store.pop_ledger import PopLedger, server_key
from mailbag.sync.pop3 import PopWire, open_pop3, partial_report, sync_pop3_account


def home(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")


def local_bodies(paths: Paths, account: str) -> list[bytes]:
    with Store.open(paths) as store:
        return sorted(store.read_bytes(m) for m in store.messages(account=account))


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
def test_download_over_ssl_and_stls_pipelined_byte_exact(
    pop_sandbox: Sandbox, tmp_path: Path, security: Security
) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, 60)
    paths = home(tmp_path)
    trace = tmp_path / "trace.log"
    transcript = Transcript(trace)
    report = sync_pop3_account(
        pop_account(sb, user, security=security), paths, transcript=transcript
    )
    transcript.close()
    assert report.new == 60
    assert local_bodies(paths, user) == sorted(server_bodies(sb, user))
    text = trace.read_text()
    if security is Security.STARTTLS:
        assert "C: STLS" in text
    # Dovecot offers PIPELINING: several RETRs go out before the first answer is read
    lines = [ln.split(" ", 2)[2] for ln in text.splitlines()]
    first_retr = next(i for i, ln in enumerate(lines) if ln.startswith("C: RETR"))
    assert lines[first_retr + 1].startswith("C: RETR")
    assert sb.password(user) not in text


class _DropMidMessage:
    """A sink that has the server drop the connection once 1 MB of a message is here."""

    def __init__(self, fh: BinaryIO, drop: Callable[[], None]) -> None:
        self.fh, self.drop, self.dropped = fh, drop, False

    def write(self, data: bytes) -> int:
        n = self.fh.write(data)
        if not self.dropped and self.fh.tell() > 1_000_000:
            self.dropped = True
            self.drop()
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


def _small_then_big(sb: Sandbox, user: str) -> tuple[bytes, bytes]:
    small = b"From: a@example.org\r\nSubject: small\r\n\r\nsmall\r\n"
    line = b"0123456789" * 9 + b"\r\n"
    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + line * 400_000  # ~37 MB
    with sb.control(user) as imap:
        imap.append("INBOX", small)
        imap.append("INBOX", big)
    return small, big


def _dropping_connect(
    sb: Sandbox, user: str, sinks: list[_DropMidMessage]
) -> Callable[[Account, str, Transcript], PopWire]:
    """`open_pop3` whose connection the server drops 1 MB into a message's RETR."""

    def connect(account: Account, password: str, transcript: Transcript) -> PopWire:
        wire = open_pop3(account, password, transcript)
        retr_into = wire.retr_into

        def dropping(
            numbers: Sequence[int], open_sink: Callable[[int], BinaryIO]
        ) -> Iterator[tuple[int, str | None]]:
            def sink(n: int) -> BinaryIO:
                s = _DropMidMessage(open_sink(n), lambda: sb.drop_connections(user))
                sinks.append(s)
                return s  # type: ignore[return-value]

            return retr_into(numbers, sink)

        wire.retr_into = dropping  # type: ignore[method-assign]
        return wire

    return connect


def test_connection_dropped_mid_retr_discards_the_partial_message(
    pop_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb, user = pop_sandbox, take_user()
    small, big = _small_then_big(sb, user)
    paths = home(tmp_path)
    acct = pop_account(sb, user)
    tmp_dir = paths.mail_dir / user / "INBOX" / "tmp"
    sinks: list[_DropMidMessage] = []
    with pytest.raises(NetworkError) as err:
        sync_pop3_account(acct, paths, connect=_dropping_connect(sb, user, sinks))
    assert [s.dropped for s in sinks] == [False, True]  # the drop came mid-way through `big`
    # the error tells what was stored before it
    done = partial_report(err.value)
    assert done is not None and (done.new, done.removed) == (1, 0)
    assert done.bytes == len(small)
    # the complete message is kept, the partial one is gone without a trace
    assert local_bodies(paths, user) == [small]
    assert list(tmp_dir.glob("*")) == []
    with PopLedger.open(paths.index_file, user, server_key(sb.address(user), sb.host)) as led:
        assert len(led.entries()) == 1
    # the next run fetches it whole
    assert sync_pop3_account(acct, paths).new == 1
    assert local_bodies(paths, user) == sorted([small, big])


def test_mailbag_sync_says_what_a_dropped_pop3_session_stored_before(
    pop_sandbox: Sandbox, mailbag_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailbag.sync.pop3 as pop3

    sb, user = pop_sandbox, take_user()
    _small_then_big(sb, user)
    save_account(Paths.from_env(), pop_account(sb, user, name="pop"), make_default=True)
    sinks: list[_DropMidMessage] = []
    monkeypatch.setattr(pop3, "open_pop3", _dropping_connect(sb, user, sinks))
    code, out, err = cli("sync", "--json")
    assert code == 1
    (account,) = json.loads(out)["accounts"]
    assert account["ok"] is False and account["error"]
    (inbox,) = account["folders"]
    assert (inbox["new"], inbox["deleted"], inbox["error"]) == (1, 0, account["error"])
    assert "pop: INBOX (POP3): done before that (kept): 1 new" in err
    assert "the rest comes with the next sync" in err
    # a session that failed before storing anything reports the error alone, as before
    sinks.clear()
    code, out, err = cli("sync", "--json")
    assert code == 1 and [s.dropped for s in sinks] == [True]
    (account,) = json.loads(out)["accounts"]
    assert account["ok"] is False and account["folders"] == []
    assert "done before that" not in err
    monkeypatch.setattr(pop3, "open_pop3", open_pop3)
    code, _, err = cli("sync")
    assert code == 0 and "1 new" in err  # the big one, whole


def test_pop_turned_off_is_explained(tmp_path: Path) -> None:
    with Sandbox(services={"imap", "lmtp", "smtp"}) as sb:
        acct = pop_account(sb, "alice")
        with pytest.raises(NetworkError) as err:
            sync_pop3_account(acct, home(tmp_path))
        assert err.value.fields["cause"] == "pop-disabled"
        assert "POP" in err.value.message and "refused" in err.value.message
        assert err.value.hint and "turned off" in err.value.hint


def test_mailbag_sync_handles_pop3_accounts(
    pop_sandbox: Sandbox, mailbag_home: Path, cli: Any
) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, 12)
    paths = Paths.from_env()
    save_account(paths, pop_account(sb, user, name="pop"), make_default=True)
    code, out, err = cli("sync", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc == {
        "accounts": [
            {
                "name": "pop",
                "ok": True,
                "folders": [
                    {"name": "INBOX", "new": 12, "updated": 0, "deleted": 0, "uploaded": 0}
                ],
                "error": None,
            }
        ],
        "outbox": [],  # nothing queued to send
    }
    code, out, _ = cli("list", "--account", "pop", "--json")
    assert code == 0 and len(json.loads(out)) == 12
    code, out, err = cli("sync")
    assert code == 0 and "0 new" in err


def test_mailbag_sync_reports_pop_turned_off(mailbag_home: Path, cli: Any) -> None:
    with Sandbox(services={"imap", "lmtp", "smtp"}) as sb:
        save_account(Paths.from_env(), pop_account(sb, "alice", name="pop"), make_default=True)
        code, out, err = cli("sync", "--json")
    assert code == 1
    account = json.loads(out)["accounts"][0]
    assert account["ok"] is False and "POP3 is not available" in account["error"]
    assert "turned off" in err


def test_mailbag_delete_then_sync_removes_the_server_copy(
    pop_sandbox: Sandbox, mailbag_home: Path, cli: Any
) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, 5)
    paths = Paths.from_env()
    acct = pop_account(sb, user, name="pop", pop=PopOptions(delete_when_deleted_here=True))
    save_account(paths, acct, make_default=True)
    assert cli("sync")[0] == 0
    code, out, _ = cli("list", "--account", "pop", "--folder", "INBOX", "--json")
    listed = json.loads(out)
    assert code == 0 and len(listed) == 5
    # one to the local Trash, one deleted for good
    assert cli("delete", listed[0]["id"])[0] == 0
    assert cli("delete", "--expunge", listed[1]["id"])[0] == 0
    # moving a message to another local folder is not deleting it
    with Store.open(paths) as store:
        store.folder("pop", "Keep")
        store.commit()
    assert cli("move", listed[2]["id"], "Keep")[0] == 0
    code, out, _ = cli("sync", "--json")
    assert code == 0
    assert json.loads(out)["accounts"][0]["folders"][0]["deleted"] == 2
    left = server_bodies(sb, user)
    assert len(left) == 3
    code, out, _ = cli("folders", "--json")
    names = {(f["name"], f["role"]) for f in json.loads(out)}
    assert ("INBOX", "inbox") in names and ("Trash", "trash") in names
