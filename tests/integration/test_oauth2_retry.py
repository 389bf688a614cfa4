"""Every place that logs in with an access token goes through `mailbag.auth.login`: a token
the server refuses although our cache thinks it valid is refreshed once and the login
succeeds; a revoked sign-in ends in "sign in again: mailbag account login NAME", with one
refresh attempt per login and no loop. Real token validation: Dovecot's oauth2 passdb and
the sandbox SMTP server ask the local authorization server."""

from __future__ import annotations

import _thread
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mailbag import auth
from mailbag.auth import tokens
from mailbag.config import save_account
from mailbag.config.model import Account, Protocol
from mailbag.diagnose import test_account as run_account_test
from mailbag.diagnose.steps import StepStatus
from mailbag.errors import AuthError, MailbagError
from mailbag.paths import Paths
from mailbag.protocols.trace import NO_TRACE
from mailbag.record import replace
from mailbag.sandbox import Sandbox
from mailbag.store.outbox import OutboxRecord, OutboxState
from mailbag.sync import sending, watch

pytestmark = pytest.mark.sandbox

USER = "carol"


def _browser(url: str) -> bool:
    assert httpx2.get(url, follow_redirects=True).status_code == 200
    return True


def _never(*args: object) -> str:
    raise AssertionError("an OAuth2 login must not ask for a password")


@pytest.fixture
def signed_in(
    oauth_sandbox: Sandbox, mailbag_home: Path, memory_keyring: Any
) -> Iterator[tuple[Sandbox, Account, Paths]]:
    sb = oauth_sandbox
    account = sb.account(USER, name=f"retry-{uuid.uuid4().hex[:6]}", oauth2=True)
    paths = Paths.from_env()
    save_account(paths, account)
    auth.sign_in(account, paths=paths, open_browser=_browser)
    yield sb, account, paths
    tokens._memory.clear()
    tokens._refused.clear()


def _refreshes(sb: Sandbox) -> int:
    assert sb.oauth2 is not None
    return sb.oauth2.stats.token_requests.get("refresh_token", 0)


def _server_refuses_cached_token(sb: Sandbox, account: Account) -> int:
    """The server stops accepting the access token our cache still thinks valid."""
    assert sb.oauth2 is not None
    auth.get_access_token(account)  # cached, locally valid for an hour
    sb.oauth2.expire_access_tokens(account.email)
    return _refreshes(sb)


def _revoke(sb: Sandbox, account: Account) -> int:
    assert sb.oauth2 is not None
    sb.oauth2.revoke_user(account.email)
    return _refreshes(sb)


def _is_reauth(exc: MailbagError, account: Account) -> bool:
    return (
        isinstance(exc, AuthError)
        and exc.fields.get("cause") == "reauth"
        and exc.hint == f"sign in again: mailbag account login {account.name}"
    )


# --- account test (diagnose) -------------------------------------------------------------


def test_account_test_refreshes_a_refused_token_once(
    signed_in: tuple[Sandbox, Account, Paths],
) -> None:
    sb, account, _ = signed_in
    before = _server_refuses_cached_token(sb, account)
    report = run_account_test(account, send=False, secret=_never)
    assert report.ok, [(s.name, s.detail) for s in report.steps]
    login = report.step("login")
    assert "AUTHENTICATE OAUTHBEARER" in login.detail or "AUTHENTICATE XOAUTH2" in login.detail
    assert report.step("smtp-login").status is StepStatus.OK
    # the incoming login refreshed; the SMTP login reused the fresh token
    assert _refreshes(sb) == before + 1


def test_account_test_after_revocation_asks_to_sign_in_again(
    signed_in: tuple[Sandbox, Account, Paths],
) -> None:
    sb, account, _ = signed_in
    before = _revoke(sb, account)
    report = run_account_test(account, send=False, secret=_never)
    for name in ("login", "smtp-login"):
        step = report.step(name)
        assert step.status is StepStatus.FAILED
        assert step.hint == f"sign in again: mailbag account login {account.name}"
    assert report.step("inbox").status is StepStatus.SKIPPED
    # one refresh attempt per login step, no more
    assert _refreshes(sb) == before + 2


# --- watch ---------------------------------------------------------------------------------


def test_watch_connection_refreshes_a_refused_token_once(
    signed_in: tuple[Sandbox, Account, Paths],
) -> None:
    sb, account, paths = signed_in
    before = _server_refuses_cached_token(sb, account)
    client = watch._open_idle_client(account, paths, NO_TRACE, watch._NewMail())
    try:
        assert client.authenticated and client.selected == "INBOX"
    finally:
        client.logout()
    assert _refreshes(sb) == before + 1


def test_watch_stops_once_when_the_sign_in_ended(
    signed_in: tuple[Sandbox, Account, Paths],
) -> None:
    sb, account, paths = signed_in
    before = _revoke(sb, account)
    errors: list[MailbagError] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=watch.watch_account,
        kwargs={
            "account": account,
            "paths": paths,
            "on_new": lambda messages: None,
            "on_error": errors.append,
            "stop": stop,
            "options": watch.WatchOptions(wake_every=0.2, max_backoff=0.2),
        },
        daemon=True,
    )
    thread.start()
    thread.join(timeout=15)
    stop.set()
    alive = thread.is_alive()
    thread.join(timeout=5)
    assert not alive, "watch kept retrying a revoked sign-in"
    assert len(errors) == 1 and _is_reauth(errors[0], account), errors
    assert _refreshes(sb) == before + 1


def test_watch_cli_reports_the_ended_sign_in_and_fails(
    signed_in: tuple[Sandbox, Account, Paths], cli: Any
) -> None:
    sb, account, _ = signed_in
    _revoke(sb, account)
    started = time.monotonic()
    # should the watch keep retrying, Ctrl-C it (cmd_watch then returns 0) instead of hanging
    guard = threading.Timer(20, _thread.interrupt_main)
    guard.start()
    try:
        code, _out, err = cli("watch", account.name, "--wake-every", "0.2")
    finally:
        guard.cancel()
    assert code == 1, err
    assert time.monotonic() - started < 15
    assert "stopped watching it" in err
    assert f"mailbag account login {account.name}" in err
    assert "retrying" not in err


# --- sending: SMTP submission and the Sent copy ---------------------------------------------


def _record(account: Account) -> OutboxRecord:
    return OutboxRecord(
        id=uuid.uuid4().hex,
        account=account.name,
        state=OutboxState.SENT,
        message_id=f"<{uuid.uuid4().hex}@sandbox.test>",
        envelope_from=account.email,
        recipients=[account.email],
    )


def test_submission_and_sent_copy_refresh_a_refused_token_once(
    signed_in: tuple[Sandbox, Account, Paths],
) -> None:
    sb, account, paths = signed_in
    before = _server_refuses_cached_token(sb, account)
    session = sending.open_smtp(account, _never, NO_TRACE)
    try:
        assert session.client.authenticated
    finally:
        session.close()
    assert _refreshes(sb) == before + 1

    record = _record(account)
    subject = f"sent copy {uuid.uuid4().hex}"
    data = (
        f"From: {account.email}\r\nTo: {account.email}\r\nSubject: {subject}\r\n"
        f"Message-ID: {record.message_id}\r\n\r\nbody\r\n"
    ).encode()
    before = _server_refuses_cached_token(sb, account)
    sending.save_copy(paths, account, record, data, "sent", _never, NO_TRACE)
    assert _refreshes(sb) == before + 1
    with sb.control(USER) as control:
        assert any(subject.encode() in m for m in control.fetch_bodies("Sent").values())


def test_submission_after_revocation_asks_to_sign_in_again(
    signed_in: tuple[Sandbox, Account, Paths],
) -> None:
    sb, account, paths = signed_in
    before = _revoke(sb, account)
    with pytest.raises(AuthError) as err:
        sending.open_smtp(account, _never, NO_TRACE)
    assert _is_reauth(err.value, account)
    with pytest.raises(AuthError) as err:
        sending.save_copy(paths, account, _record(account), b"x\r\n", "sent", _never, NO_TRACE)
    assert _is_reauth(err.value, account)
    assert _refreshes(sb) == before + 2


# --- the shared connect+login itself, POP3 included ------------------------------------------


def test_open_pop3_refreshes_a_refused_token_once(
    signed_in: tuple[Sandbox, Account, Paths],
) -> None:
    sb, account, paths = signed_in
    pop_account = replace(
        account,
        protocol=Protocol.POP3,
        incoming=replace(account.incoming, port=sb.ports.pop3s),
    )
    before = _server_refuses_cached_token(sb, pop_account)
    client = auth.open_pop3(pop_account, paths=paths)
    try:
        assert client.authenticated
    finally:
        client.close()
    assert _refreshes(sb) == before + 1

    before = _revoke(sb, pop_account)
    with pytest.raises(AuthError) as err:
        auth.open_pop3(pop_account, paths=paths)
    assert _is_reauth(err.value, pop_account)
    assert _refreshes(sb) == before + 1


def test_pop3_sync_downloads_with_tokens_refreshes_once_and_asks_again_when_revoked(
    signed_in: tuple[Sandbox, Account, Paths], cli: Any
) -> None:
    import json

    sb, account, paths = signed_in
    pop_account = replace(
        account,
        name=account.name + "-pop",
        protocol=Protocol.POP3,
        incoming=replace(account.incoming, port=sb.ports.pop3s),
    )
    save_account(paths, pop_account)
    auth.sign_in(pop_account, paths=paths, open_browser=_browser)
    subject = f"pop oauth {uuid.uuid4().hex}"
    sb.deliver(USER, f"Subject: {subject}\r\n\r\nby POP3 with a token\r\n".encode())

    before = _server_refuses_cached_token(sb, pop_account)
    code, out, err = cli("sync", pop_account.name, "--json", "--quiet")
    assert code == 0, out + err
    synced = json.loads(out)["accounts"][0]
    assert synced["ok"] is True and sum(f["new"] for f in synced["folders"]) >= 1
    assert _refreshes(sb) == before + 1
    code, out, _ = cli("list", "--account", pop_account.name, "--json")
    assert code == 0 and subject in out

    before = _revoke(sb, pop_account)
    code, out, err = cli("sync", pop_account.name, "--json", "--quiet")
    assert code != 0
    assert f"sign in again: mailbag account login {pop_account.name}" in out + err
    assert _refreshes(sb) == before + 1


def test_send_after_revocation_says_sign_in_again_and_keeps_the_message(
    signed_in: tuple[Sandbox, Account, Paths], cli: Any
) -> None:
    sb, account, _ = signed_in
    before = _revoke(sb, account)
    subject = f"queued while signed out {uuid.uuid4().hex}"
    code, _out, err = cli(
        "send", "--account", account.name, "--to", sb.address("bob"),
        "--subject", subject, "--body", "hello",
    )  # fmt: skip
    assert code != 0
    assert "stays in the outbox" in err
    assert f"sign in again: mailbag account login {account.name}" in err
    assert _refreshes(sb) == before + 1  # one attempt, no loop
    with sb.control("bob") as bob:
        assert not any(subject.encode() in m for m in bob.fetch_bodies("INBOX").values())
