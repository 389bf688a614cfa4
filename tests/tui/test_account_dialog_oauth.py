"""OAuth2 sign-in in the account dialog, driven by Textual's Pilot against the OAuth2
sandbox (a real authorization server; Dovecot and the SMTP server check its tokens).

The test plays the browser: `MAILBAG_OPENER` (the opener the app uses for
attachments too) is a small script that fetches the authorization URL with httpx
and follows the redirect to the dialog's loopback listener, as a browser would
after the user accepts. Discovery finds the servers and the `<oAuth2>` block in
autoconfig served by a local HTTPS server, resolved by a local DNS server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from textual.widgets import Checkbox, Input, Select, Static

from mailbag.auth import tokens
from mailbag.auth.flows import TokenSet
from mailbag.auth.setup import ClientChoice, keep_sign_in, with_client
from mailbag.auth.tokens import obtain_tokens
from mailbag.config import AuthMethod, load_config, save_account
from mailbag.config.schema import keyring_key
from mailbag.paths import Paths
from mailbag.record import replace
from mailbag.sandbox import Sandbox
from mailbag.sandbox.discovery import LocalDns, LocalHttps
from mailbag.sandbox.oauth2 import TEST_CLIENT_ID
from mailbag.tui.account_dialog import AccountDialog
from mailbag.tui.app import MailbagApp
from mailbag.tui.view import MailView

pytestmark = pytest.mark.sandbox

AUTOCONFIG = "/mail/config-v1.1.xml"
ISSUER = "sign-in.sandbox.test"
USER = "carol"

BROWSER = """\
import sys
import httpx2
# the user accepts: the sign-in page redirects to mailbag's loopback listener
answer = httpx2.get(sys.argv[-1], follow_redirects=True, timeout=20)
sys.exit(0 if answer.status_code < 500 else 1)
"""


@dataclass
class Env:
    sb: Sandbox
    paths: Paths
    keyring: Any
    tmp: Path

    @property
    def email(self) -> str:
        return self.sb.address(USER)

    def browser(self, monkeypatch: pytest.MonkeyPatch, script: str | None = BROWSER) -> None:
        """What the opener does with the sign-in address; None: no opener at all."""
        if script is None:
            monkeypatch.setenv("MAILBAG_OPENER", str(self.tmp / "no-such-browser"))
            return
        path = self.tmp / "browser.py"
        path.write_text(script)
        monkeypatch.setenv("MAILBAG_OPENER", f"{sys.executable} {path}")


@pytest.fixture
def env(
    oauth_sandbox: Sandbox,
    tmp_path: Path,
    memory_keyring: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Env]:
    sb = oauth_sandbox
    o = sb.oauth2
    assert o is not None
    # nothing may point the provider anywhere: the endpoints come from autoconfig
    for key in list(os.environ):
        if key.startswith("MAILBAG_OAUTH2_"):
            monkeypatch.delenv(key)

    def server(tag: str, kind: str, port: int) -> str:
        return (
            f'<{tag} type="{kind}"><hostname>localhost</hostname><port>{port}</port>'
            "<socketType>SSL</socketType><username>%EMAILADDRESS%</username>"
            f"<authentication>OAuth2</authentication></{tag}>"
        )

    dns = LocalDns()
    dns.add(f"autoconfig.{sb.domain}", "A", "127.0.0.1")
    dns.add(sb.domain, "A", "127.0.0.1")
    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    with dns, LocalHttps(sb.certs) as web:
        web.documents[AUTOCONFIG] = (
            f'<?xml version="1.0"?>\n<clientConfig version="1.1">'
            f'<emailProvider id="{sb.domain}"><domain>{sb.domain}</domain>'
            + server("incomingServer", "imap", sb.ports.imaps)
            + server("outgoingServer", "smtp", sb.smtps_port)
            + "</emailProvider>"
            f"<oAuth2><issuer>{ISSUER}</issuer><scope>mail</scope>"
            f"<authURL>{o.authorize_url}</authURL><tokenURL>{o.token_url}</tokenURL></oAuth2>"
            "</clientConfig>"
        ).encode()
        paths.config_file.write_text(
            "[discovery]\n"
            f'dns_server = "127.0.0.1"\ndns_port = {dns.port}\n'
            f"https_port = {web.port}\n"
            f'ispdb_url = "https://localhost:{web.port}/v1.1/"\n'
            f'ca_file = "{sb.ca_file}"\n'
            "timeout = 2\n"
        )
        tokens._memory.clear()
        tokens._refused.clear()
        e = Env(sb, paths, memory_keyring, tmp_path)
        e.browser(monkeypatch)
        try:
            yield e
        finally:
            o.deny = False
            tokens._memory.clear()
            tokens._refused.clear()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A home for tests of the built-in providers: no environment override of any
    provider's endpoints (nothing here may reach the network)."""
    for key in list(os.environ):
        if key.startswith("MAILBAG_OAUTH2_"):
            monkeypatch.delenv(key)
    return Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")


async def _find_settings(pilot: Any, email: str) -> AccountDialog:
    """A (add an account), the address, Find settings."""
    await pilot.press("A")
    await pilot.pause()
    dialog = pilot.app.screen
    assert isinstance(dialog, AccountDialog)
    assert not dialog.query_one("#auth-box").display  # nothing to offer before discovery
    _fill(dialog, email=email)
    dialog.query_one("#discover").press()
    return dialog


def _app(paths: Paths) -> MailbagApp:
    return MailbagApp(paths, poll_seconds=0, sync_on_start=False, push=False)


async def _wait(pilot: Any, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            screen = pilot.app.screen
            shown = {
                w: str(screen.query_one(f"#{w}", Static).render())
                for w in ("signin-status", "oauth-state", "steps")
                if screen.query(f"#{w}")
            }
            raise AssertionError(f"the dialog did not get there in time: {shown}")
        await pilot.pause(0.05)


def _text(dialog: AccountDialog, widget_id: str) -> str:
    return str(dialog.query_one(f"#{widget_id}", Static).render())


def _fill(dialog: AccountDialog, **values: str) -> None:
    for widget_id, value in values.items():
        dialog.query_one(f"#{widget_id.replace('_', '-')}", Input).value = value


async def _discovered(pilot: Any, e: Env) -> AccountDialog:
    """A, the address, Find settings: the sign-in is offered and preselected."""
    dialog = await _find_settings(pilot, e.email)
    await _wait(pilot, lambda: dialog.query_one("#auth-box").display)
    assert dialog.query_one("#auth", Select).value == "oauth2"
    why = _text(dialog, "auth-why")
    assert "refuses plain passwords" in why and ISSUER in why
    assert not dialog.query_one("#password").display  # no password is asked for
    assert dialog.query_one("#in-port", Input).value == str(e.sb.ports.imaps)
    _fill(dialog, ca_file=str(e.sb.ca_file), client_id=TEST_CLIENT_ID)
    return dialog


async def _signed_in(pilot: Any, dialog: AccountDialog) -> None:
    await _wait(
        pilot,
        lambda: (
            "signed in as" in _text(dialog, "oauth-state")
            and not dialog.query_one("#test").disabled
        ),
    )


async def _tested(pilot: Any, dialog: AccountDialog) -> str:
    """Test Account Settings, until its verdict (the previous one cleared first)."""
    await _wait(pilot, lambda: not dialog.query_one("#test").disabled)
    dialog.query_one("#steps", Static).update("")
    dialog.query_one("#test").press()
    await _wait(
        pilot,
        lambda: "the test" in _text(dialog, "steps") or "all steps" in _text(dialog, "steps"),
        timeout=90,
    )
    return _text(dialog, "steps")


def test_sign_in_in_the_browser_test_save_then_sync(env: Env) -> None:
    e, o = env, env.sb.oauth2
    assert o is not None
    refresh_key = ("mailbag", keyring_key(e.email, "incoming"))
    e.sb.deliver(USER, b"Subject: waiting for the dialog\r\n\r\nhello\r\n")

    async def scenario() -> None:
        app = _app(e.paths)
        async with app.run_test(size=(140, 60)) as pilot:
            dialog = await _discovered(pilot, e)
            # nothing to test with before signing in
            dialog.query_one("#test").press()
            await pilot.pause()
            assert f"sign in with {ISSUER} first" in _text(dialog, "steps")

            assert str(dialog.query_one("#signin").label) == f"Sign in with {ISSUER}"
            # autoconfig publishes no device endpoint: no code to offer
            assert not dialog.query_one("#signin-device").display
            dialog.query_one("#signin").press()
            await _signed_in(pilot, dialog)
            assert e.email in _text(dialog, "oauth-state")
            assert refresh_key not in e.keyring.store  # in memory until Save

            text = await _tested(pilot, dialog)
            assert "all steps passed" in text, text
            for step in ("login", "smtp-login", "send", "receive"):
                assert f"✓ {step}" in text
            assert "OAUTHBEARER" in text or "XOAUTH2" in text
            assert refresh_key not in e.keyring.store

            dialog.query_one("#save").press()
            await _wait(pilot, lambda: not isinstance(app.screen, AccountDialog))
            # saving starts a sync of the new account
            view = MailView(e.paths)
            await _wait(
                pilot,
                lambda: any(f.account == e.email for f in view.folders()),
                timeout=60,
            )

    asyncio.run(scenario())
    account = load_config(e.paths).account(e.email)
    assert account.incoming.auth is AuthMethod.OAUTH2 and account.smtp.auth is AuthMethod.OAUTH2
    assert account.oauth2 is not None and account.oauth2.client_id == TEST_CLIENT_ID
    assert account.oauth2.authorize_url == o.authorize_url  # from autoconfig
    refresh = e.keyring.store[refresh_key]
    assert o.refresh_token_active(refresh)
    assert refresh not in e.paths.config_file.read_text()
    found = MailView(e.paths).search("waiting for the dialog")
    assert found, "the saved account did not sync"


def test_no_browser_shows_the_address_and_a_device_code_works(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    e, o = env, env.sb.oauth2
    assert o is not None
    e.browser(monkeypatch, None)
    # this provider also signs in with a code (its device endpoint set as for any
    # unusual setup, by environment)
    monkeypatch.setenv("MAILBAG_OAUTH2_GENERIC_DEVICE_URL", o.device_url)

    async def scenario() -> None:
        app = _app(e.paths)
        async with app.run_test(size=(140, 60)) as pilot:
            dialog = await _discovered(pilot, e)
            assert dialog.query_one("#signin-device").display
            dialog.query_one("#signin").press()
            await _wait(
                pilot, lambda: "no browser could be opened" in _text(dialog, "signin-status")
            )
            url = dialog.sign_in.url
            assert url.startswith(o.authorize_url) and url in _text(dialog, "signin-status")
            assert dialog.query_one("#signin-copy").display
            assert dialog.query_one("#signin-cancel").display
            # the user copies the address into a browser elsewhere on this machine
            answer = await asyncio.to_thread(httpx2.get, url, follow_redirects=True, timeout=20)
            assert answer.status_code == 200 and "Signed in" in answer.text
            await _signed_in(pilot, dialog)
            assert not dialog.query_one("#signin-cancel").display

            # the device code works too (the account is the same; it replaces the sign-in)
            # a wrong client ID first: the provider refuses it, the dialog says what to fix
            _fill(dialog, client_id="not-registered")
            dialog.query_one("#signin-device").press()
            await _wait(pilot, lambda: "not-registered" in _text(dialog, "signin-status"))
            status = _text(dialog, "signin-status")
            assert "not-registered" in status and "check the client ID" in status

            _fill(dialog, client_id=TEST_CLIENT_ID)
            first = dialog.sign_in.pending
            dialog.query_one("#signin-device").press()
            await _wait(pilot, lambda: dialog.query_one("#device-code").display)
            code = _text(dialog, "device-code").replace(" ", "")
            assert code in o.pending_user_codes()
            assert f"{o.base_url}/device" in _text(dialog, "signin-status")
            # the user enters the code on a phone
            answer = await asyncio.to_thread(
                httpx2.get, f"{o.base_url}/device", params={"user_code": code, "user": e.email}
            )
            assert answer.status_code == 200
            await _wait(pilot, lambda: dialog.sign_in.pending is not first, timeout=30)
            assert not dialog.query_one("#device-code").display

            text = await _tested(pilot, dialog)
            assert "all steps passed" in text, text
            dialog.query_one("#save").press()
            await _wait(pilot, lambda: not isinstance(app.screen, AccountDialog))

    asyncio.run(scenario())
    refresh = e.keyring.store[("mailbag", keyring_key(e.email, "incoming"))]
    assert o.refresh_token_active(refresh)


def test_cancel_denied_consent_and_missing_client_id(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    e, o = env, env.sb.oauth2
    assert o is not None
    # a browser that shows the page and waits for the user, who never finishes
    e.browser(monkeypatch, "import sys\n")

    async def scenario() -> None:
        app = _app(e.paths)
        async with app.run_test(size=(140, 60)) as pilot:
            dialog = await _discovered(pilot, e)
            _fill(dialog, client_id="")
            dialog.query_one("#signin").press()
            await pilot.pause()
            status = _text(dialog, "signin-status")
            assert "needs a client ID" in status and "enter it under Client" in status
            assert "mailbag account login" not in status

            _fill(dialog, client_id=TEST_CLIENT_ID)
            dialog.query_one("#signin").press()
            await _wait(pilot, lambda: "waiting for you" in _text(dialog, "signin-status"))
            redirect = parse_qs(urlsplit(dialog.sign_in.url).query)["redirect_uri"][0]
            assert dialog.query_one("#signin").disabled and dialog.query_one("#test").disabled
            dialog.query_one("#signin-cancel").press()
            await _wait(pilot, lambda: "cancelled" in _text(dialog, "signin-status"))
            assert "press Sign in when you are ready" in _text(dialog, "signin-status")
            assert not dialog.query_one("#signin").disabled
            assert dialog.sign_in.pending is None
            # the loopback listener is gone
            with pytest.raises(httpx2.ConnectError):
                await asyncio.to_thread(httpx2.get, redirect + "?code=x&state=y", timeout=5)

            # the user says no at the provider
            o.deny = True
            e.browser(monkeypatch)
            dialog.query_one("#signin").press()
            await _wait(pilot, lambda: "declined" in _text(dialog, "signin-status"))
            status = _text(dialog, "signin-status")
            assert "declined" in status and "accept the request" in status
            assert dialog.sign_in.pending is None and dialog.query_one("#save").disabled

            # Escape while a sign-in waits closes the dialog and its listener
            e.browser(monkeypatch, "import sys\n")
            dialog.query_one("#signin").press()
            await _wait(pilot, lambda: "waiting for you" in _text(dialog, "signin-status"))
            redirect = parse_qs(urlsplit(dialog.sign_in.url).query)["redirect_uri"][0]
            await pilot.press("escape")
            await _wait(pilot, lambda: not isinstance(app.screen, AccountDialog))
            # (a request that meets the listener as it closes is dropped: reset, or
            # no answer; only a refused connection says it is gone)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    await asyncio.to_thread(httpx2.get, redirect, timeout=1)
                except httpx2.ConnectError:
                    break
                except httpx2.TransportError:
                    pass
                await pilot.pause(0.1)
            else:
                raise AssertionError("the loopback listener outlived the dialog")

    asyncio.run(scenario())
    assert not e.paths.config_file.read_text().count("[accounts")
    assert ("mailbag", keyring_key(e.email, "incoming")) not in e.keyring.store


def _saved_oauth_account(e: Env, name: str, **oauth2: str) -> tuple[Any, str]:
    """An OAuth2 account signed in the way `mailbag account add` does it (`oauth2`:
    settings of its OAuth2 block to replace)."""
    account = e.sb.account(USER, name=name, oauth2=True)
    if oauth2:
        assert account.oauth2 is not None
        account = replace(account, oauth2=replace(account.oauth2, **oauth2))
    account, choice, _ = with_client(account, ClientChoice())

    def browse(url: str) -> bool:
        return httpx2.get(url, follow_redirects=True).status_code == 200

    token = obtain_tokens(account, paths=e.paths, open_browser=browse)
    keep_sign_in(e.paths, account, token, choice)
    save_account(e.paths, account, make_default=True)
    assert token.refresh_token
    return account, token.refresh_token


def test_edit_shows_the_sign_in_and_signs_in_again(env: Env) -> None:
    e, o = env, env.sb.oauth2
    assert o is not None
    account, old_refresh = _saved_oauth_account(e, "work")
    key = ("mailbag", keyring_key("work", "incoming"))

    async def scenario() -> None:
        app = _app(e.paths)
        async with app.run_test(size=(140, 60)) as pilot:
            await pilot.press("E")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, AccountDialog)
            assert dialog.query_one("#auth", Select).value == "oauth2"
            state = _text(dialog, "oauth-state")
            assert "signed in" in state and e.email in state and "not signed" not in state
            assert str(dialog.query_one("#signin").label) == "Sign in again"
            assert TEST_CLIENT_ID in dialog.query_one("#client-id", Input).placeholder

            # the stored sign-in tests fine as it is
            text = await _tested(pilot, dialog)
            assert "all steps passed" in text, text

            # sign in again: the stored tokens stay until Save
            dialog.query_one("#signin").press()
            await _wait(pilot, lambda: dialog.sign_in.pending is not None)
            assert e.keyring.store[key] == old_refresh
            # a server change (blank fields keep the rest): STARTTLS submission
            _fill(dialog, out_port=str(e.sb.smtp_port))
            dialog.query_one("#out-sec", Select).value = "starttls"
            await pilot.pause()
            text = await _tested(pilot, dialog)
            assert "all steps passed" in text, text
            assert e.keyring.store[key] == old_refresh
            dialog.query_one("#save").press()
            await _wait(pilot, lambda: not isinstance(app.screen, AccountDialog))

    asyncio.run(scenario())
    new_refresh = e.keyring.store[key]
    assert new_refresh != old_refresh and o.refresh_token_active(new_refresh)
    saved = load_config(e.paths).account("work")
    assert saved.smtp.port == e.sb.smtp_port and saved.oauth2 == account.oauth2


@pytest.mark.parametrize("revocation", ["works", "offline"])
def test_edit_switches_an_oauth2_account_to_a_password(env: Env, revocation: str) -> None:
    """Switching to a password ends the sign-in at the provider; when the provider cannot
    be reached the password is saved all the same and a notice says what is left to do."""
    e, o = env, env.sb.oauth2
    assert o is not None
    extra = (
        {} if revocation == "works" else {"revocation_url": f"http://127.0.0.1:{_closed_port()}/"}
    )
    _account, old_refresh = _saved_oauth_account(e, "home", **extra)
    notices: list[tuple[str, str]] = []
    key = ("mailbag", keyring_key("home", "incoming"))

    async def scenario() -> None:
        app = _app(e.paths)
        async with app.run_test(size=(140, 60)) as pilot:
            await pilot.press("E")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, AccountDialog)
            dialog.query_one("#auth", Select).value = "password"
            await pilot.pause()
            assert dialog.query_one("#password").display
            assert not dialog.query_one("#oauth-box").display
            # no password typed: the refresh token is not a password to test with
            text = await _tested(pilot, dialog)
            assert "✗ login" in text
            _fill(dialog, password=e.sb.password(USER))
            text = await _tested(pilot, dialog)
            assert "all steps passed" in text and "PLAIN" in text, text
            dialog.query_one("#save").press()
            await _wait(pilot, lambda: not isinstance(app.screen, AccountDialog))
            notices.extend((str(n.message), n.severity) for n in app._notifications)

    asyncio.run(scenario())
    saved = load_config(e.paths).account("home")
    assert saved.incoming.auth is AuthMethod.PASSWORD and saved.oauth2 is None
    assert e.keyring.store[key] == e.sb.password(USER)
    warnings = [text for text, severity in notices if severity == "warning"]
    if revocation == "works":
        assert not o.refresh_token_active(old_refresh)  # the sign-in was ended at the provider
        assert warnings == []
    else:
        assert o.refresh_token_active(old_refresh)  # still valid: the user is told
        assert len(warnings) == 1, notices
        assert "sign-in of 'home' was not revoked" in warnings[0]
        assert "cannot reach the sign-in server 127.0.0.1" in warnings[0]
        assert "security settings at the provider" in warnings[0]
    assert ("mailbag", keyring_key("home", "oauth2-access")) not in e.keyring.store


def test_built_in_providers_offer_their_sign_in(paths: Paths) -> None:
    """Outlook.com refuses passwords: "Sign in with Microsoft" is preselected, with a device
    code as the alternative; Gmail offers Google's sign-in next to an app password. Both come
    from the built-in provider table (no network); without a client ID the dialog says how
    to register one."""

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=(140, 60)) as pilot:
            dialog = await _find_settings(pilot, "someone@outlook.com")
            await _wait(pilot, lambda: dialog.query_one("#auth-box").display)
            assert dialog.query_one("#auth", Select).value == "oauth2"
            assert "outlook.office365.com refuses plain passwords" in _text(dialog, "auth-why")
            assert str(dialog.query_one("#signin").label) == "Sign in with Microsoft"
            assert dialog.query_one("#signin-device").display
            assert not dialog.query_one("#password").display
            dialog.query_one("#signin").press()
            await _wait(pilot, lambda: "client ID" in _text(dialog, "signin-status"))
            status = _text(dialog, "signin-status")
            assert "entra.microsoft.com" in status and "enter it under Client" in status

            _fill(dialog, email="someone@gmail.com")
            dialog.query_one("#discover").press()
            await _wait(pilot, lambda: "Google" in _text(dialog, "auth-why"))
            assert dialog.query_one("#auth", Select).value == "password"
            assert dialog.query_one("#password").display
            assert "app password" in _text(dialog, "auth-why")
            dialog.query_one("#auth", Select).value = "oauth2"
            await pilot.pause()
            assert str(dialog.query_one("#signin").label) == "Sign in with Google"
            assert not dialog.query_one("#signin-device").display  # Google's has no mail scope

            # servers typed by hand: Microsoft 365 recognised by its host
            _fill(dialog, email="someone@example.org", in_host="imap.example.org")
            await _wait(pilot, lambda: not dialog.query_one("#auth-box").display)
            assert dialog.query_one("#password").display
            _fill(dialog, in_host="outlook.office365.com")
            await _wait(pilot, lambda: dialog.query_one("#auth-box").display)
            assert "Microsoft" in _text(dialog, "auth-why")

    asyncio.run(scenario())


def test_microsoft_tenant_and_a_client_id_for_every_account(
    paths: Paths, memory_keyring: Any
) -> None:
    """What `--oauth-tenant` and `--oauth-shared` do on the command line: the tenant goes
    into the account's sign-in settings (Microsoft only), a client ID marked for every
    account goes into config.toml's [oauth2.microsoft] and not into the account. Google
    has no tenant; a provider mailbag does not know offers neither."""
    token = TokenSet("access", time.time() + 3600, refresh_token="refresh-1")

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=(140, 60)) as pilot:
            dialog = await _find_settings(pilot, "someone@outlook.com")
            await _wait(pilot, lambda: dialog.query_one("#auth-box").display)
            assert dialog.query_one("#tenant-row").display
            shared = dialog.query_one("#client-shared", Checkbox)
            assert shared.display and "every Microsoft account" in str(shared.label)
            _fill(dialog, client_id="my-app-id", tenant="contoso.onmicrosoft.com")
            account, choice = dialog._account_and_choice()
            assert account.oauth2 is not None
            assert account.oauth2.tenant == "contoso.onmicrosoft.com"
            assert account.oauth2.client_id == "my-app-id" and not choice.shared
            shared.value = True
            await pilot.pause()
            account, choice = dialog._account_and_choice()
            assert account.oauth2 is not None
            assert choice.shared and account.oauth2.client_id == ""  # kept per provider
            # Save's storing step, with a finished sign-in's tokens
            assert dialog._store(account, choice, {}, token) == ""

            _fill(dialog, email="someone@gmail.com")
            dialog.query_one("#discover").press()
            await _wait(pilot, lambda: "Google" in _text(dialog, "auth-why"))
            dialog.query_one("#auth", Select).value = "oauth2"
            await pilot.pause()
            assert not dialog.query_one("#tenant-row").display
            assert "every Google account" in str(shared.label) and shared.display
            _fill(dialog, tenant="ignored")
            account, _ = dialog._account_and_choice()
            assert account.oauth2 is not None and account.oauth2.tenant == ""

    asyncio.run(scenario())
    config = load_config(paths)
    assert config.oauth2["microsoft"].client_id == "my-app-id"
    saved = config.account("someone@outlook.com")
    assert saved.oauth2 is not None and saved.oauth2.tenant == "contoso.onmicrosoft.com"
    assert saved.oauth2.client_id == ""
    refresh = ("mailbag", keyring_key("someone@outlook.com", "incoming"))
    assert memory_keyring.store[refresh] == "refresh-1"


def test_no_keyring_is_said_before_signing_in(env: Env, no_keyring: None) -> None:
    e = env

    async def scenario() -> None:
        app = _app(e.paths)
        async with app.run_test(size=(140, 60)) as pilot:
            dialog = await _discovered(pilot, e)
            dialog.query_one("#signin").press()
            await _wait(pilot, lambda: "keyring" in _text(dialog, "signin-status"))
            assert "install one" in _text(dialog, "signin-status")
            assert dialog.sign_in.url == ""  # no sign-in was started

    asyncio.run(scenario())


def test_timeout_and_an_unreachable_sign_in_server(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbag.tui.sign_in import SignInPanel

    e = env
    e.browser(monkeypatch, "import sys\n")  # the user never finishes in the browser
    monkeypatch.setattr(SignInPanel, "TIMEOUT", 1.0)
    # the code sign-in's server is down (nothing listens on port 1)
    monkeypatch.setenv("MAILBAG_OAUTH2_GENERIC_DEVICE_URL", "http://127.0.0.1:1/devicecode")

    async def scenario() -> None:
        app = _app(e.paths)
        async with app.run_test(size=(140, 60)) as pilot:
            dialog = await _discovered(pilot, e)
            dialog.query_one("#signin").press()
            await _wait(pilot, lambda: "did not finish" in _text(dialog, "signin-status"))
            assert "press Sign in to try again" in _text(dialog, "signin-status")
            # the panel says the sign-in ended, then tells the dialog (a message handled
            # a moment later) to take tests again
            await _wait(pilot, lambda: not dialog.query_one("#test").disabled, timeout=10)

            dialog.query_one("#signin-device").press()
            await _wait(pilot, lambda: "cannot reach" in _text(dialog, "signin-status"))
            status = _text(dialog, "signin-status")
            assert "127.0.0.1" in status and "check your network connection" in status
            assert dialog.sign_in.pending is None

    asyncio.run(scenario())


def test_edit_says_when_no_sign_in_is_stored(env: Env) -> None:
    e = env
    _saved_oauth_account(e, "lost")
    # e.g. a new keyring: neither the sign-in nor a cached access token is there
    del e.keyring.store[("mailbag", keyring_key("lost", "incoming"))]
    e.keyring.store.pop(("mailbag", keyring_key("lost", "oauth2-access")), None)
    tokens._memory.clear()

    async def scenario() -> None:
        app = _app(e.paths)
        async with app.run_test(size=(140, 60)) as pilot:
            await pilot.press("E")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, AccountDialog)
            assert "not signed in" in _text(dialog, "oauth-state")
            text = await _tested(pilot, dialog)
            assert "✗ login" in text and "not signed in" in text
            dialog.query_one("#signin").press()
            await _signed_in(pilot, dialog)
            text = await _tested(pilot, dialog)
            assert "all steps passed" in text, text
            dialog.query_one("#save").press()
            await _wait(pilot, lambda: not isinstance(app.screen, AccountDialog))

    asyncio.run(scenario())
    assert e.keyring.store[("mailbag", keyring_key("lost", "incoming"))]
