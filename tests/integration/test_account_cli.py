"""`mailbag account add/list/show/remove/set-password` and `autoconfig`, end to end.

Discovery goes to a local autoconfig HTTPS server and DNS server (see
conftest.py) pointing at the real sandbox servers; the full add -> test -> save
path is in test_account_add_flow.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailbag.config import SecretSource, load_config
from mailbag.sandbox import Sandbox

AUTOCONFIG = "/mail/config-v1.1.xml"


@pytest.fixture
def env(discovery_env: Any) -> Any:
    return discovery_env


def test_add_via_srv_needs_the_outside_domain_named(env: Any, cli: Any) -> None:
    sb = env.sandbox
    env.dns.add(f"_imaps._tcp.{sb.domain}", "SRV", f"0 1 {sb.ports.imaps} localhost.")
    env.dns.add(f"_submissions._tcp.{sb.domain}", "SRV", f"0 1 {sb.smtps_port} localhost.")
    email = sb.address("bob")
    base = [
        "account",
        "add",
        email,
        "--password-stdin",
        "--yes",
        "--ca-file",
        str(sb.ca_file),
        "--no-send",
    ]
    code, _, err = cli(*base, stdin=sb.password("bob") + "\n")
    assert code == 2
    assert "--trust-domain localhost" in err
    assert load_config(env.paths).accounts == {}

    code, out, err = cli(
        *base,
        "--trust-domain",
        "localhost",
        "--json",
        stdin=sb.password("bob") + "\n",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["sources"] == {"incoming": "srv", "smtp": "srv"}
    assert doc["test"]["ok"] is True and doc["saved"] is True
    assert env.keyring.store[("mailbag", f"{email}:incoming")] == sb.password("bob")
    assert load_config(env.paths).account(email).incoming.port == sb.ports.imaps


def test_manual_flags_override_discovery_and_password_command(env: Any, cli: Any) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    email = sb.address("alice")
    pw_file = env.home / "pw.txt"
    pw_file.write_text(sb.password("alice") + "\n")
    code, out, err = cli(
        "account",
        "add",
        email,
        "--name",
        "work",
        "--yes",
        "--ca-file",
        str(sb.ca_file),
        "--protocol",
        "pop3",
        "--incoming-port",
        str(sb.ports.pop3),
        "--incoming-security",
        "starttls",
        "--smtp-port",
        str(sb.smtp_port),
        "--smtp-security",
        "starttls",
        "--password-command",
        f"cat {pw_file}",
        "--display-name",
        "Alice A.",
        "--no-send",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["test"]["ok"] is True
    assert "inbox" in [step["name"] for step in doc["test"]["steps"]]
    assert doc["sources"]["incoming"] == "manual+autoconfig"
    account = load_config(env.paths).account("work")
    assert account.protocol.value == "pop3"
    assert (account.incoming.host, account.incoming.port, account.incoming.security.value) == (
        "localhost",
        sb.ports.pop3,
        "starttls",
    )
    assert (account.smtp.port, account.smtp.security.value) == (sb.smtp_port, "starttls")
    assert account.incoming.secret.source is SecretSource.COMMAND
    assert account.smtp.secret == account.incoming.secret
    assert account.display_name == "Alice A."
    assert env.keyring.store == {}
    code, out, _ = cli("account", "show", "work", "--json")
    assert json.loads(out)["incoming"]["secret"] == {
        "source": "command",
        "command": "cat <redacted>",
    }

    # set-password moves it to the keyring (SMTP keeps following it)
    code, _, err = cli(
        "account",
        "set-password",
        "work",
        "--password-stdin",
        stdin="new-secret\n",
    )
    assert code == 0, err
    account = load_config(env.paths).account("work")
    assert account.incoming.secret.source is SecretSource.KEYRING
    assert account.smtp.secret == account.incoming.secret
    assert env.keyring.store[("mailbag", "work:incoming")] == "new-secret"
    # an own SMTP password
    code, _, err = cli(
        "account",
        "set-password",
        "work",
        "--smtp",
        "--password-stdin",
        stdin="smtp-secret\n",
    )
    assert code == 0, err
    account = load_config(env.paths).account("work")
    assert account.smtp.secret.key == "work:smtp"
    assert env.keyring.store[("mailbag", "work:smtp")] == "smtp-secret"


def test_usage_errors_exit_2(env: Any, cli: Any) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    email = sb.address("alice")
    # plaintext refused without --insecure
    code, _, err = cli(
        "account",
        "add",
        email,
        "--incoming-security",
        "none",
        "--yes",
    )
    assert code == 2 and "--insecure" in err
    # --yes and no password source: never prompts
    code, _, err = cli(
        "account",
        "add",
        email,
        "--yes",
        "--ca-file",
        str(sb.ca_file),
    )
    assert code == 2 and "--password-stdin" in err
    # nothing to discover and nothing given
    code, _, err = cli(
        "account",
        "add",
        "x@nowhere.test",
        "--yes",
        "--password-stdin",
        stdin="pw\n",
    )
    assert code == 2 and "could not find complete settings" in err and "--incoming-host" in err
    code, _, err = cli("account", "show", "ghost")
    assert code == 2 and "no account named" in err


@pytest.mark.usefixtures("no_keyring")
def test_add_without_keyring_backend_says_so(
    sandbox: Sandbox,
    mailbag_home: Path,
    cli: Any,
) -> None:
    code, _, err = cli(
        "account",
        "add",
        sandbox.address("alice"),
        "--yes",
        "--no-test",
        "--incoming-host",
        "localhost",
        "--incoming-port",
        str(sandbox.ports.imaps),
        "--incoming-security",
        "ssl",
        "--smtp-host",
        "localhost",
        "--smtp-port",
        str(sandbox.smtps_port),
        "--smtp-security",
        "ssl",
        "--protocol",
        "imap",
        "--password-stdin",
        stdin="pw\n",
    )
    assert code == 2
    assert "no system keyring backend" in err
    assert "--password-command" in err
    assert not (mailbag_home / "config.toml").exists()
    assert not list(mailbag_home.glob("**/*secret*"))


def test_autoconfig_command_json(env: Any, cli: Any) -> None:
    env.serve_autoconfig()
    code, out, _ = cli("autoconfig", env.sandbox.address("alice"), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["email"] == env.sandbox.address("alice")
    assert doc["chosen"]["incoming"]["source"] == "autoconfig"
    assert doc["chosen"]["smtp"]["port"] == env.sandbox.smtps_port
    for c in doc["candidates"]:
        assert set(c) >= {
            "protocol",
            "host",
            "port",
            "security",
            "username",
            "auth",
            "source",
            "trusted",
            "notes",
        }
    code, out, _ = cli("autoconfig", "x@nowhere.test", "--json")
    assert code == 1
    assert json.loads(out)["chosen"] == {"incoming": None, "smtp": None}


def test_tty_asks_before_using_servers_outside_the_domain(env: Any, tty_cli: Any) -> None:
    sb = env.sandbox
    env.dns.add(f"_imaps._tcp.{sb.domain}", "SRV", f"0 1 {sb.ports.imaps} localhost.")
    env.dns.add(f"_submissions._tcp.{sb.domain}", "SRV", f"0 1 {sb.smtps_port} localhost.")
    args = ["account", "add", sb.address("bob"), "--no-test", "--password-command", "echo pw"]
    code, _, err = tty_cli(*args, stdin="n\n\n\n\n\n\n\n")
    assert "not in your address's domain. Send your password there? [y/N]" in err
    assert code == 2  # declined, and no server typed in by hand either
    assert load_config(env.paths).accounts == {}
    code, _, err = tty_cli(*args, stdin="y\n")
    assert code == 0, err
    account = load_config(env.paths).account(sb.address("bob"))
    assert (account.incoming.host, account.incoming.port) == ("localhost", sb.ports.imaps)


def test_tty_manual_form_when_nothing_is_found(env: Any, tty_cli: Any) -> None:
    answers = "pop3\nmail.nowhere.test\nstarttls\n\nsmtp.nowhere.test\n\n2525\n"
    code, _, err = tty_cli(
        "account",
        "add",
        "me@nowhere.test",
        "--no-test",
        "--password-command",
        "echo pw",
        stdin=answers,
    )
    assert code == 0, err
    account = load_config(env.paths).account("me@nowhere.test")
    assert account.protocol.value == "pop3"
    assert (account.incoming.host, account.incoming.port, account.incoming.security.value) == (
        "mail.nowhere.test",
        110,
        "starttls",
    )
    assert (account.smtp.host, account.smtp.port, account.smtp.security.value) == (
        "smtp.nowhere.test",
        2525,
        "ssl",
    )


def test_password_command_switch_and_oauth2_only_provider(env: Any, cli: Any) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    code, _, err = cli(
        "account",
        "add",
        sb.address("alice"),
        "--name",
        "a",
        "--yes",
        "--no-test",
        "--password-stdin",
        stdin="pw1\n",
    )
    assert code == 0, err
    assert env.keyring.store[("mailbag", "a:incoming")] == "pw1"
    code, _, err = cli("account", "set-password", "a", "--password-command", "echo pw2")
    assert code == 0, err
    account = load_config(env.paths).account("a")
    assert account.incoming.secret.source is SecretSource.COMMAND
    assert account.smtp.secret == account.incoming.secret
    code, _, err = cli("account", "set-password", "a", "--password-command", "false")
    assert code == 2 and "exit status 1" in err

    # Outlook.com accepts only OAuth2: said plainly, nothing saved
    code, _, err = cli(
        "account", "add", "someone@outlook.com", "--yes", "--password-stdin", stdin="x\n"
    )
    assert code == 2 and "OAuth2" in err
    assert "someone@outlook.com" not in load_config(env.paths).accounts


def test_smtp_own_credentials_and_no_auth(env: Any, cli: Any) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    code, _, err = cli(
        "account",
        "add",
        sb.address("alice"),
        "--name",
        "own",
        "--yes",
        "--no-test",
        "--password-command",
        "echo in",
        "--smtp-username",
        "sender",
        "--smtp-password-command",
        "echo out",
    )
    assert code == 0, err
    own = load_config(env.paths).account("own")
    assert (own.incoming.username, own.smtp.username) == (sb.address("alice"), "sender")
    assert own.smtp.secret.key == "echo out" and own.incoming.secret.key == "echo in"
    code, _, err = cli(
        "account",
        "add",
        sb.address("alice"),
        "--name",
        "open",
        "--yes",
        "--no-test",
        "--password-command",
        "echo in",
        "--smtp-no-auth",
    )
    assert code == 0, err
    relay = load_config(env.paths).account("open")
    assert relay.smtp.requires_auth is False
    assert relay.smtp.secret.source is SecretSource.NONE
    code, out, _ = cli("account", "list", "--json")
    assert [a["name"] for a in json.loads(out)] == ["own", "open"]


def test_fully_manual_add_does_no_discovery(env: Any, cli: Any) -> None:
    sb = env.sandbox
    code, out, err = cli(
        "account",
        "add",
        sb.address("alice"),
        "--name",
        "manual",
        "--yes",
        "--json",
        "--incoming-host",
        "localhost",
        "--incoming-port",
        str(sb.ports.imaps),
        "--incoming-security",
        "ssl",
        "--smtp-host",
        "localhost",
        "--smtp-port",
        str(sb.smtps_port),
        "--smtp-security",
        "ssl",
        "--ca-file",
        str(sb.ca_file),
        "--password-command",
        f"echo {sb.password('alice')}",
        "--no-send",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["discovery"] is None and doc["test"]["ok"] is True
    assert doc["sources"] == {"incoming": "manual", "smtp": "manual"}
    assert env.dns.queries == [] and env.web.requests == []
    assert load_config(env.paths).account("manual").protocol.value == "imap"
