"""OAuth2 end to end: real Dovecot (oauth2 passdb) and the sandbox SMTP server checking
tokens at the local authorization server's introspection endpoint."""

from __future__ import annotations

import base64
import poplib
import smtplib
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from mailbag import auth
from mailbag.auth import tokens
from mailbag.auth.login import token_responses
from mailbag.config.model import Account
from mailbag.errors import AuthError
from mailbag.paths import Paths
from mailbag.protocols import sasl
from mailbag.protocols.imap.client import ImapClient
from mailbag.sandbox import Sandbox

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _clean_caches() -> Iterator[None]:
    yield
    tokens._memory.clear()
    tokens._refused.clear()


def browser(url: str) -> bool:
    resp = httpx2.get(url, follow_redirects=True)
    assert resp.status_code == 200, resp.text
    return True


def imap(sb: Sandbox) -> ImapClient:
    client = ImapClient(sb.account("carol").incoming.endpoint(sb.ca_file))
    client.connect()
    return client


def imap_token_login(sb: Sandbox, mech: sasl.Mechanism, user: str, token: str) -> ImapClient:
    client = imap(sb)
    try:
        client.authenticate(mech.value, token_responses(mech, user, token, sb.host, sb.ports.imaps))
    except BaseException:
        client.close()
        raise
    return client


# --- the servers validate tokens for real ---------------------------------------------------


@pytest.mark.parametrize("mech", [sasl.Mechanism.XOAUTH2, sasl.Mechanism.OAUTHBEARER])
def test_imap_accepts_valid_tokens(oauth_sandbox: Sandbox, mech: sasl.Mechanism) -> None:
    sb = oauth_sandbox
    assert sb.oauth2 is not None
    token = sb.oauth2.issue(sb.address("carol"))
    client = imap(sb)
    assert {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER"} <= client.capabilities
    client.authenticate(
        mech.value,
        token_responses(mech, sb.address("carol"), token.access_token, sb.host, sb.ports.imaps),
    )
    assert client.authenticated
    assert client.select("INBOX") is not None
    client.logout()


@pytest.mark.parametrize("mech", [sasl.Mechanism.XOAUTH2, sasl.Mechanism.OAUTHBEARER])
def test_imap_refuses_bad_tokens(oauth_sandbox: Sandbox, mech: sasl.Mechanism) -> None:
    sb = oauth_sandbox
    assert sb.oauth2 is not None
    carol = sb.address("carol")
    expired = sb.oauth2.issue(carol, ttl=-1)
    revoked = sb.oauth2.issue(carol)
    httpx2.post(
        sb.oauth2.revocation_url,
        data={"token": revoked.access_token, "client_id": sb.oauth2.client_id},
    ).raise_for_status()
    someone_else = sb.oauth2.issue(sb.address("bob"))
    for user, token in [
        (carol, "not-a-token"),
        (carol, expired.access_token),
        (carol, revoked.access_token),
        (carol, someone_else.access_token),  # bob's token does not open carol's mailbox
    ]:
        with pytest.raises(AuthError) as err:
            imap_token_login(sb, mech, user, token)
        assert "AUTHENTICATIONFAILED" in str(err.value.fields.get("server_code")), token


def test_default_sandbox_offers_no_oauth(sandbox: Sandbox) -> None:
    client = ImapClient(sandbox.account("carol").incoming.endpoint(sandbox.ca_file))
    client.connect()
    try:
        assert "AUTH=XOAUTH2" not in client.capabilities
        assert sandbox.oauth2 is None
    finally:
        client.close()


def test_passwords_still_work_with_oauth_on(oauth_sandbox: Sandbox) -> None:
    client = imap(oauth_sandbox)
    client.login_sasl(oauth_sandbox.address("carol"), oauth_sandbox.password("carol"))
    assert client.authenticated
    client.logout()


def _smtp(sb: Sandbox) -> smtplib.SMTP_SSL:
    ctx = ssl.create_default_context(cafile=str(sb.ca_file))
    s = smtplib.SMTP_SSL(sb.host, sb.smtps_port, context=ctx, timeout=10)
    s.ehlo()
    return s


def _smtp_authenticate(s: smtplib.SMTP) -> auth.login.Authenticate:
    def authenticate(mech: str, responses: list[bytes]) -> None:
        first, after_error = responses
        code, reply = s.docmd("AUTH", f"{mech} {base64.b64encode(first).decode()}")
        if code == 334:  # the error challenge: answer, then read the refusal
            code, reply = s.docmd(base64.b64encode(after_error).decode())
        if code != 235:
            raise AuthError(f"SMTP AUTH refused: {code} {reply.decode()}")

    return authenticate


@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
def test_smtp_validates_tokens(oauth_sandbox: Sandbox, mech: str) -> None:
    sb = oauth_sandbox
    assert sb.oauth2 is not None
    good = sb.oauth2.issue(sb.address("carol"))
    m = sasl.Mechanism(mech)
    with _smtp(sb) as s:
        assert {"XOAUTH2", "OAUTHBEARER"} <= set(s.esmtp_features["auth"].split())
        with pytest.raises(AuthError) as err:
            _smtp_authenticate(s)(
                mech, token_responses(m, sb.address("carol"), "forged", sb.host, sb.smtps_port)
            )
        assert "535" in err.value.message
    with _smtp(sb) as s:
        _smtp_authenticate(s)(
            mech,
            token_responses(m, sb.address("carol"), good.access_token, sb.host, sb.smtps_port),
        )
        # authenticated: the server now lets us submit
        code, _ = s.docmd("MAIL", f"FROM:<{sb.address('carol')}>")
        assert code == 250


# --- the account's own sign-in, through the shared login glue --------------------------------


@pytest.fixture
def signed_in(
    oauth_sandbox: Sandbox,
    memory_keyring,  # type: ignore[no-untyped-def]
    mailbag_home: Path,
) -> tuple[Sandbox, Account, Paths]:
    account = oauth_sandbox.account("carol", name=f"carol-{uuid.uuid4().hex[:6]}", oauth2=True)
    paths = Paths.from_env()
    auth.sign_in(account, paths=paths, open_browser=browser)
    return oauth_sandbox, account, paths


def test_login_imap_signs_in_refreshes_and_asks_again_when_revoked(
    signed_in: tuple[Sandbox, Account, Paths],
) -> None:
    sb, account, paths = signed_in
    assert sb.oauth2 is not None
    client = imap(sb)
    auth.login_imap(client, account, paths=paths)
    assert client.authenticated
    client.logout()

    # the server refuses the token before our clock says it expired: one refresh, one retry
    refreshes = sb.oauth2.stats.token_requests.get("refresh_token", 0)
    sb.oauth2.expire_access_tokens(account.email)
    client = imap(sb)
    auth.login_imap(client, account, paths=paths)
    assert client.authenticated
    assert sb.oauth2.stats.token_requests["refresh_token"] == refreshes + 1
    client.logout()

    # "sign out everywhere" at the provider: a clear request to sign in again, no loop
    sb.oauth2.revoke_user(account.email)
    client = imap(sb)
    try:
        with pytest.raises(AuthError) as err:
            auth.login_imap(client, account, paths=paths)
    finally:
        client.close()
    assert err.value.hint == f"sign in again: mailbag account login {account.name}"
    assert sb.oauth2.stats.token_requests["refresh_token"] == refreshes + 2


def test_pop3_with_oauth(signed_in: tuple[Sandbox, Account, Paths]) -> None:
    sb, account, paths = signed_in
    ctx = ssl.create_default_context(cafile=str(sb.ca_file))
    pop = poplib.POP3_SSL(sb.host, sb.ports.pop3s, context=ctx, timeout=10)
    try:
        offered = set(pop.capa()["SASL"])

        def authenticate(mech: str, responses: list[bytes]) -> None:
            try:
                pop._shortcmd(f"AUTH {mech} {base64.b64encode(responses[0]).decode()}")
            except poplib.error_proto as exc:
                raise AuthError(f"POP3 AUTH refused: {exc}") from exc

        used = auth.sasl_token_login(account, account.incoming, offered, authenticate, paths=paths)
        assert used is sasl.Mechanism.OAUTHBEARER
        count, _ = pop.stat()
        assert count >= 0
    finally:
        pop.quit()


def test_smtp_send_with_oauth_arrives(signed_in: tuple[Sandbox, Account, Paths]) -> None:
    sb, account, paths = signed_in
    subject = f"oauth2 {uuid.uuid4().hex}"
    message = (
        f"From: {account.email}\r\nTo: {sb.address('bob')}\r\nSubject: {subject}\r\n"
        "Message-ID: <" + uuid.uuid4().hex + "@sandbox.test>\r\n\r\nsent with a token\r\n"
    ).encode()
    with _smtp(sb) as s:
        offered = set(s.esmtp_features["auth"].split())
        auth.sasl_token_login(account, account.smtp, offered, _smtp_authenticate(s), paths=paths)
        s.sendmail(account.email, [sb.address("bob")], message)
    with sb.control("bob") as control:
        bodies = control.fetch_bodies("INBOX")
    assert any(subject.encode() in body for body in bodies.values())


def test_pop3_and_smtp_clients_log_in_with_tokens(
    signed_in: tuple[Sandbox, Account, Paths],
) -> None:
    from mailbag.config.model import Protocol
    from mailbag.protocols.pop3 import Pop3Client
    from mailbag.protocols.smtp import SmtpClient
    from mailbag.record import replace

    sb, account, paths = signed_in
    assert sb.oauth2 is not None
    pop_account = replace(
        account,
        protocol=Protocol.POP3,
        incoming=replace(account.incoming, port=sb.ports.pop3s),
    )
    pop = Pop3Client(pop_account.incoming.endpoint(sb.ca_file))
    pop.connect()
    try:
        auth.login_pop3(pop, pop_account, paths=paths)
        assert pop.authenticated
    finally:
        pop.close()

    # the SMTP server refuses the cached token: refreshed once, then the send goes through
    refreshes = sb.oauth2.stats.token_requests.get("refresh_token", 0)
    sb.oauth2.expire_access_tokens(account.email)
    smtp = SmtpClient(account.smtp.endpoint(sb.ca_file))
    smtp.connect()
    smtp.ehlo()
    try:
        auth.login_smtp(smtp, account, paths=paths)
        assert smtp.authenticated
        assert sb.oauth2.stats.token_requests["refresh_token"] == refreshes + 1
        subject = f"smtp client oauth2 {uuid.uuid4().hex}"
        smtp.send(
            account.email,
            [sb.address("bob")],
            (
                f"From: {account.email}\r\nTo: {sb.address('bob')}\r\n"
                f"Subject: {subject}\r\n\r\nhi\r\n"
            ).encode(),
        )
    finally:
        smtp.close()
    with sb.control("bob") as control:
        assert any(subject.encode() in b for b in control.fetch_bodies("INBOX").values())
