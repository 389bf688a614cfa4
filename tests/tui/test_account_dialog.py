"""The account dialog (A to add, E to edit) driven by Textual's Pilot against the real
sandbox: a separate SMTP login, editing with the stored password, and security "none"
only after a confirmation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Checkbox, Input, Select, Static

from mailbag.config import load_config, save_account
from mailbag.config.model import Account, Protocol, SecretRef, SecretSource, Server, SmtpServer
from mailbag.config.schema import keyring_key
from mailbag.config.secrets import store_secret
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.sandbox import Sandbox
from mailbag.tui.account_dialog import AccountDialog
from mailbag.tui.app import MailbagApp
from tuitools import wait_for


@pytest.fixture(scope="module")
def dialog_sandbox() -> Iterator[Sandbox]:
    # its own servers: the account test sends to bob's and carol's inboxes; one
    # submission port takes mail without AUTH (an ISP's server for its own network)
    with Sandbox(services={"imap", "lmtp", "smtp"}, smtp_without_auth=True) as sb:
        yield sb


def _paths(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")


async def _wait(pilot: Any, check: Any, timeout: float = 90.0) -> None:
    """Until `check()` holds; a failure shows the dialog's test steps."""
    await wait_for(
        pilot, check, timeout, explain=lambda: pilot.app.screen.query_one("#steps").render()
    )


async def _closed(pilot: Any) -> None:
    """Save stores in a worker: wait until the dialog is gone."""
    await _wait(pilot, lambda: not isinstance(pilot.app.screen, AccountDialog), timeout=20)


def _fill(dialog: AccountDialog, values: dict[str, str]) -> None:
    for widget_id, value in values.items():
        dialog.query_one(f"#{widget_id}", Input).value = value


def _steps(dialog: AccountDialog) -> str:
    return str(dialog.query_one("#steps", Static).render())


def test_add_with_a_separate_smtp_login(
    dialog_sandbox: Sandbox, tmp_path: Path, memory_keyring: Any
) -> None:
    sb = dialog_sandbox
    paths = _paths(tmp_path)
    bob, carol = sb.address("bob"), sb.address("carol")

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, sync_on_start=False, push=False)
        async with app.run_test(size=(140, 50)) as pilot:
            await pilot.press("A")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, AccountDialog)
            assert not dialog.query_one("#smtp-login").display
            assert dialog.query_one("#smtp-auth", Checkbox).value
            _fill(
                dialog,
                {
                    "email": bob,
                    "username": bob,
                    "password": sb.password("bob"),
                    "in-host": sb.host,
                    "in-port": str(sb.ports.imaps),
                    "out-host": sb.host,
                    "out-port": str(sb.smtps_port),
                    "ca-file": str(sb.ca_file),
                },
            )
            dialog.query_one("#smtp-same", Checkbox).value = False
            await pilot.pause()
            assert dialog.query_one("#smtp-login").display

            # without an SMTP user name nothing is tried
            dialog.query_one("#test").press()
            await pilot.pause()
            assert "enter the SMTP user name" in _steps(dialog)

            # the SMTP login is its own: bob's password does not work for carol
            _fill(dialog, {"smtp-user": carol, "smtp-password": sb.password("bob")})
            dialog.query_one("#test").press()
            await _wait(pilot, lambda: "the test failed" in _steps(dialog))
            text = _steps(dialog)
            assert "✓ login" in text and "✗ smtp-login" in text
            assert dialog.query_one("#save").disabled

            _fill(dialog, {"smtp-password": sb.password("carol")})
            dialog.query_one("#test").press()
            await _wait(pilot, lambda: "all steps passed" in _steps(dialog))
            for name in ("login", "smtp-login", "send", "receive"):
                assert f"✓ {name}" in _steps(dialog)
            dialog.query_one("#save").press()
            await _closed(pilot)

    asyncio.run(scenario())
    account = load_config(paths).accounts[bob]
    assert account.incoming.username == bob
    assert account.smtp.username == carol and account.smtp.requires_auth
    assert account.smtp.secret == SecretRef(SecretSource.KEYRING, keyring_key(bob, "smtp"))
    assert account.incoming.secret == SecretRef(SecretSource.KEYRING, keyring_key(bob, "incoming"))
    assert memory_keyring.store[("mailbag", keyring_key(bob, "smtp"))] == sb.password("carol")
    assert memory_keyring.store[("mailbag", keyring_key(bob, "incoming"))] == sb.password("bob")


def test_edit_keeps_the_stored_password_and_replaces_the_account(
    dialog_sandbox: Sandbox, tmp_path: Path, memory_keyring: Any
) -> None:
    sb = dialog_sandbox
    paths = _paths(tmp_path)
    user = sb.address("carol")
    iref = SecretRef(SecretSource.KEYRING, keyring_key("home", "incoming"))
    sref = SecretRef(SecretSource.KEYRING, keyring_key("home", "smtp"))
    store_secret(iref, sb.password("carol"))
    store_secret(sref, "an old smtp password")
    save_account(
        paths,
        Account(
            name="home",
            email=user,
            protocol=Protocol.IMAP,
            incoming=Server(sb.host, sb.ports.imaps, Security.SSL, user, secret=iref),
            smtp=SmtpServer(sb.host, sb.smtps_port, Security.SSL, "someone-else", secret=sref),
            display_name="Home Mail",
            ca_file=sb.ca_file,
        ),
        make_default=True,
    )

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, sync_on_start=False, push=False)
        async with app.run_test(size=(140, 50)) as pilot:
            await pilot.press("E")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, AccountDialog)
            assert "Edit account home" in str(dialog.query_one(".title").render())
            value = {w: dialog.query_one(f"#{w}", Input).value for w in ("email", "in-host")}
            assert value == {"email": user, "in-host": sb.host}
            assert dialog.query_one("#in-port", Input).value == str(sb.ports.imaps)
            assert dialog.query_one("#password", Input).value == ""
            assert not dialog.query_one("#smtp-same", Checkbox).value
            assert dialog.query_one("#smtp-user", Input).value == "someone-else"

            # the fix: SMTP on STARTTLS with the incoming login; the password stays blank
            dialog.query_one("#smtp-same", Checkbox).value = True
            _fill(dialog, {"out-port": str(sb.smtp_port)})
            dialog.query_one("#out-sec", Select).value = "starttls"
            await pilot.pause()
            dialog.query_one("#test").press()
            await _wait(pilot, lambda: "all steps passed" in _steps(dialog))
            dialog.query_one("#save").press()
            await _closed(pilot)

    asyncio.run(scenario())
    accounts = load_config(paths).accounts
    assert list(accounts) == ["home"]
    account = accounts["home"]
    assert account.smtp.port == sb.smtp_port and account.smtp.security is Security.STARTTLS
    assert account.smtp.username == user and account.smtp.secret == iref
    assert account.display_name == "Home Mail"  # what the form does not show is kept
    assert memory_keyring.store[("mailbag", iref.key)] == sb.password("carol")
    assert ("mailbag", sref.key) not in memory_keyring.store  # the unused one is gone


def test_security_none_needs_a_confirmation(
    dialog_sandbox: Sandbox, tmp_path: Path, memory_keyring: Any
) -> None:
    sb = dialog_sandbox
    paths = _paths(tmp_path)

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, sync_on_start=False, push=False)
        async with app.run_test(size=(140, 50)) as pilot:
            await pilot.press("A")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, AccountDialog)
            assert not dialog.query_one("#insecure-warning").display
            _fill(
                dialog,
                {
                    "email": sb.address("bob"),
                    "password": sb.password("bob"),
                    "in-host": sb.host,
                    "in-port": str(sb.ports.imap),
                    "out-host": sb.host,
                    "out-port": str(sb.smtps_port),
                    "ca-file": str(sb.ca_file),
                },
            )
            dialog.query_one("#in-sec", Select).value = "none"
            await pilot.pause()
            warning = str(dialog.query_one("#insecure-warning", Static).render())
            assert "readable" in warning and "password" in warning
            assert dialog.query_one("#insecure-ok").display

            dialog.query_one("#test").press()
            await pilot.pause()
            assert "refused unless you confirm" in _steps(dialog)
            assert dialog.query_one("#save").disabled

            # confirmed, the test runs (Dovecot trusts loopback, so it lets the login in)
            dialog.query_one("#insecure-ok", Checkbox).value = True
            dialog.query_one("#test").press()
            await _wait(pilot, lambda: "all steps passed" in _steps(dialog))
            assert "not encrypted" in _steps(dialog)
            assert not dialog.query_one("#save").disabled

            # taking the confirmation back refuses the save
            dialog.query_one("#insecure-ok", Checkbox).value = False
            dialog.query_one("#save").press()
            await pilot.pause()
            assert isinstance(app.screen, AccountDialog)
            assert "refused unless you confirm" in _steps(dialog)
            assert dialog.query_one("#save").disabled
            assert not paths.config_file.exists()

            dialog.query_one("#insecure-ok", Checkbox).value = True
            dialog.query_one("#test").press()
            await _wait(pilot, lambda: "all steps passed" in _steps(dialog))
            dialog.query_one("#save").press()
            await _closed(pilot)

    asyncio.run(scenario())
    account = load_config(paths).accounts[sb.address("bob")]
    assert account.incoming.security is Security.NONE


def test_e_edits_the_account_of_the_folder_under_the_cursor(tmp_path: Path) -> None:
    from textual.widgets import Tree

    from mailbag.store.index import Store

    paths = _paths(tmp_path)
    secret = SecretRef(SecretSource.COMMAND, "echo not-used")
    for name in ("home", "work"):
        user = f"{name}@example.org"
        save_account(
            paths,
            Account(
                name=name,
                email=user,
                protocol=Protocol.IMAP,
                incoming=Server(f"imap.{name}.example", 993, Security.SSL, user, secret=secret),
                smtp=SmtpServer(f"smtp.{name}.example", 465, Security.SSL, user, secret=secret),
            ),
        )
        with Store.open(paths) as store:
            store.folder(name, "INBOX", role="inbox")

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, sync_on_start=False, push=False)
        async with app.run_test(size=(140, 50)) as pilot:
            await pilot.pause()
            tree = app.query_one("#folders", Tree)
            for name in ("work", "home"):
                tree.move_cursor(app._folder_nodes[(name, "INBOX")])
                await pilot.pause()
                await pilot.press("E")
                await pilot.pause()
                dialog = app.screen
                assert isinstance(dialog, AccountDialog)
                assert f"Edit account {name}" in str(dialog.query_one(".title").render())
                assert dialog.query_one("#in-host", Input).value == f"imap.{name}.example"
                assert dialog.query_one("#password", Input).value == ""
                await pilot.press("escape")
                await pilot.pause()
                assert not isinstance(app.screen, AccountDialog)

    asyncio.run(scenario())


def test_sandbox_open_submission_takes_mail_without_auth(dialog_sandbox: Sandbox) -> None:
    import smtplib
    import ssl

    sb = dialog_sandbox
    context = ssl.create_default_context(cafile=str(sb.ca_file))
    with smtplib.SMTP_SSL(sb.host, sb.smtp_open_port, context=context) as smtp:
        smtp.sendmail(sb.address("carol"), [sb.address("carol")], b"Subject: no auth\r\n\r\nx\r\n")
        # still no open relay
        code, _ = smtp.docmd("MAIL FROM:<carol@sandbox.test>")
        assert code == 250
        code, _ = smtp.docmd("RCPT TO:<someone@example.org>")
        assert code == 554
    with sb.control("carol") as carol:
        assert any(b"no auth" in m for m in carol.fetch_bodies("INBOX").values())
    # the usual ports still require AUTH
    with (
        smtplib.SMTP_SSL(sb.host, sb.smtps_port, context=context) as smtp,
        pytest.raises(smtplib.SMTPSenderRefused),
    ):
        smtp.sendmail(sb.address("carol"), [sb.address("carol")], b"Subject: x\r\n\r\nx\r\n")


def test_add_with_an_outgoing_server_that_needs_no_login(
    dialog_sandbox: Sandbox, tmp_path: Path, memory_keyring: Any
) -> None:
    sb = dialog_sandbox
    paths = _paths(tmp_path)
    carol = sb.address("carol")

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, sync_on_start=False, push=False)
        async with app.run_test(size=(140, 50)) as pilot:
            await pilot.press("A")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, AccountDialog)
            _fill(
                dialog,
                {
                    "email": carol,
                    "password": sb.password("carol"),
                    "in-host": sb.host,
                    "in-port": str(sb.ports.imaps),
                    "out-host": sb.host,
                    "out-port": str(sb.smtp_open_port),
                    "ca-file": str(sb.ca_file),
                },
            )
            dialog.query_one("#smtp-auth", Checkbox).value = False
            await pilot.pause()
            assert not dialog.query_one("#smtp-same").display
            dialog.query_one("#test").press()
            await _wait(pilot, lambda: "all steps passed" in _steps(dialog))
            text = _steps(dialog)
            assert "✓ login" in text and "✓ send" in text and "✓ receive" in text
            assert "- smtp-login" in text  # skipped: the server takes mail without one
            dialog.query_one("#save").press()
            await _closed(pilot)

    asyncio.run(scenario())
    account = load_config(paths).accounts[carol]
    assert not account.smtp.requires_auth
    assert account.smtp.secret.source is SecretSource.NONE
    assert account.smtp.port == sb.smtp_open_port
    assert memory_keyring.store[("mailbag", keyring_key(carol, "incoming"))] == sb.password("carol")
    assert ("mailbag", keyring_key(carol, "smtp")) not in memory_keyring.store

    # and sending from it later goes out without a login and arrives
    from mailbag.auth import open_smtp

    with open_smtp(account, paths=paths) as smtp:
        smtp.send(carol, [carol], b"Subject: later, no login\r\n\r\nhi\r\n")
    with sb.control("carol") as control:
        assert any(b"later, no login" in m for m in control.fetch_bodies("INBOX").values())
