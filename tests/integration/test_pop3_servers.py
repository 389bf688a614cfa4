"""POP3 servers that lack things: no UIDL (header-hash fallback), no TOP, size limits."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from mailbag.config.model import (
    Account,
    PopOptions,
    Protocol,
    SecretRef,
    SecretSource,
    Server,
    SmtpServer,
)
from mailbag.errors import AuthError, SyncError
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.sandbox.fakepop3 import FakePop3
from mailbag.store.index import Store
from mailbag.sync.pop3 import sync_pop3_account
from mailbag.sync.pop3_plan import OversizeAction


def msg(n: int, body: bytes = b"hello\r\n") -> bytes:
    return f"From: a@example.org\r\nSubject: m{n}\r\nMessage-ID: <{n}@x>\r\n\r\n".encode() + body


def fake_account(srv: FakePop3, pop: PopOptions | None = None) -> Account:
    secret = SecretRef(SecretSource.COMMAND, "echo pass")
    return Account(
        name="fake",
        email="user@example.org",
        protocol=Protocol.POP3,
        incoming=Server(srv.host, srv.port, Security.SSL, "user", secret=secret),
        smtp=SmtpServer(srv.host, 1, Security.SSL, "user", secret=secret),
        ca_file=srv.ca_file,
        pop=pop or PopOptions(),
    )


def home(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")


def stored(paths: Paths) -> list[bytes]:
    with Store.open(paths) as store:
        return sorted(store.read_bytes(m) for m in store.messages(account="fake"))


def test_server_without_uidl_falls_back_to_header_hashes_with_a_warning(tmp_path: Path) -> None:
    twin = msg(7)
    with FakePop3(tmp_path / "srv", [msg(1), twin, msg(2), twin], uidl=False) as srv:
        paths = home(tmp_path / "home")
        warnings: list[str] = []
        r = sync_pop3_account(fake_account(srv), paths, password="pass", warn=warnings.append)
        assert r.uidl_fallback and r.new == 4
        assert any("UIDL" in w for w in warnings)
        assert stored(paths) == sorted([msg(1), twin, msg(2), twin])
        assert "UIDL" in srv.commands and "TOP 1 0" in srv.commands
        # the second session recognises all four, and a new one is fetched
        srv.add(msg(3))
        r2 = sync_pop3_account(fake_account(srv), paths, password="pass")
        assert r2.new == 1
        assert len(stored(paths)) == 5


def test_server_without_uidl_or_top_is_refused_before_any_download(tmp_path: Path) -> None:
    with FakePop3(tmp_path / "srv", [msg(1)], uidl=False, top=False) as srv:
        with pytest.raises(SyncError) as err:
            sync_pop3_account(fake_account(srv), home(tmp_path / "h"), password="pass")
        assert err.value.hint
        assert not any(c.startswith(("RETR", "DELE")) for c in srv.commands)


@pytest.mark.parametrize("action", [OversizeAction.SKIP, OversizeAction.HEADERS])
def test_size_limit_skips_or_keeps_headers_and_never_removes_the_big_one(
    tmp_path: Path, action: OversizeAction
) -> None:
    big = msg(2, b"x" * 5000 + b"\r\n")
    with FakePop3(tmp_path / "srv", [msg(1), big]) as srv:
        pop = PopOptions(leave_on_server=False, max_size=1000)
        paths = home(tmp_path / "h")
        r = sync_pop3_account(fake_account(srv, pop), paths, password="pass", oversize=action)
        assert r.new == 1 and r.removed == 1
        assert srv.messages == [big]  # only the small one was removed from the server
        if action is OversizeAction.SKIP:
            assert (r.skipped, r.headers_only) == (1, 0)
            assert stored(paths) == [msg(1)]
        else:
            assert (r.skipped, r.headers_only) == (0, 1)
            head = big.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            assert stored(paths) == sorted([msg(1), head])
        # and a second session does not fetch the big one again
        r2 = sync_pop3_account(fake_account(srv, pop), paths, password="pass", oversize=action)
        assert (r2.new, r2.headers_only, r2.removed) == (0, 0, 0)


def test_cap_per_session(tmp_path: Path) -> None:
    with FakePop3(tmp_path / "srv", [msg(i) for i in range(5)]) as srv:
        paths = home(tmp_path / "h")
        acct = fake_account(srv)
        r = sync_pop3_account(acct, paths, password="pass", max_per_session=2)
        assert (r.new, r.deferred) == (2, 3)
        assert stored(paths) == sorted([msg(0), msg(1)])
        r = sync_pop3_account(acct, paths, password="pass", max_per_session=2)
        r = sync_pop3_account(acct, paths, password="pass", max_per_session=2)
        assert (r.new, r.deferred) == (1, 0)
        assert len(stored(paths)) == 5


def test_login_refused_because_pop_is_off_is_explained(tmp_path: Path) -> None:
    refusal = b"-ERR [SYS/PERM] POP access is disabled for this account"
    with FakePop3(tmp_path / "srv", [msg(1)], password="", login_refusal=refusal) as srv:
        with pytest.raises(AuthError) as err:
            sync_pop3_account(fake_account(srv), home(tmp_path / "h"), password="pass")
        assert err.value.fields["cause"] == "pop-disabled"
        assert "POP access is disabled" in err.value.message
        assert err.value.hint and "turned off" in err.value.hint
        assert not any(c.startswith("RETR") for c in srv.commands)


def test_a_storing_failure_keeps_index_and_ledger_in_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbag.errors import StoreError
    from mailbag.store.pop_ledger import PopLedger

    real = PopLedger.record_stored
    calls = 0

    def failing(self: PopLedger, uidl: str, **kw: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise StoreError("disk trouble")
        real(self, uidl, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(PopLedger, "record_stored", failing)
    with FakePop3(tmp_path / "srv", [msg(i) for i in range(5)]) as srv:
        paths = home(tmp_path / "h")
        with pytest.raises(StoreError):
            sync_pop3_account(fake_account(srv), paths, password="pass")
        # nothing of the failed batch is half-stored: no index row without a ledger row
        assert stored(paths) == []
        monkeypatch.setattr(PopLedger, "record_stored", real)
        assert sync_pop3_account(fake_account(srv), paths, password="pass").new == 5
        assert stored(paths) == sorted(msg(i) for i in range(5))


@pytest.mark.parametrize("pipelining", [False, True])
def test_retr_is_pipelined_only_when_offered(tmp_path: Path, pipelining: bool) -> None:
    from mailbag.protocols.trace import Transcript

    with FakePop3(tmp_path / "srv", [msg(i) for i in range(6)], pipelining=pipelining) as srv:
        paths = home(tmp_path / "h")
        trace = tmp_path / "trace.log"
        transcript = Transcript(trace)
        r = sync_pop3_account(fake_account(srv), paths, password="pass", transcript=transcript)
        transcript.close()
        assert r.new == 6 and stored(paths) == sorted(msg(i) for i in range(6))
    lines = [ln.split(" ", 2)[2] for ln in trace.read_text().splitlines()]
    retr = [i for i, ln in enumerate(lines) if ln.startswith("C: RETR")]
    back_to_back = any(b == a + 1 for a, b in itertools.pairwise(retr))
    assert back_to_back is pipelining


def test_apop_is_used_on_an_unencrypted_connection_that_offers_it(tmp_path: Path) -> None:
    from mailbag.record import replace

    with FakePop3(tmp_path / "srv", [msg(1)], tls=False, apop=True) as srv:
        acct = fake_account(srv)
        acct = replace(acct, incoming=replace(acct.incoming, security=Security.NONE))
        r = sync_pop3_account(acct, home(tmp_path / "h"), password="pass")
        assert r.new == 1
        assert any(c.startswith("APOP user ") for c in srv.commands)
        assert not any(c.startswith(("USER", "PASS")) for c in srv.commands)
