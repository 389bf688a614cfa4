"""`mailbag account add/list/show/remove/set-password` and `autoconfig`, end to end.

A new user's path: only the address and the password, settings found through a
local autoconfig HTTPS server (or DNS SRV) pointing at the real sandbox servers,
the account test run against them, the config saved and the password in the
(test) keyring.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailbag.cli.main import main
from mailbag.config import SecretSource, load_config
from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.sandbox.discovery import LocalDns, LocalHttps, client_config_xml

AUTOCONFIG = "/mail/config-v1.1.xml"


@dataclass
class Env:
    sandbox: Sandbox
    dns: LocalDns
    web: LocalHttps
    home: Path
    keyring: Any

    @property
    def paths(self) -> Paths:
        return Paths.from_env({"MAILBAG_HOME": str(self.home)})

    def serve_autoconfig(self) -> None:
        sb = self.sandbox
        self.web.documents[AUTOCONFIG] = client_config_xml(
            sb.domain,
            [
                ("imap", "localhost", sb.ports.imaps, "SSL"),
                ("pop3", "localhost", sb.ports.pop3s, "SSL"),
                ("smtp", "localhost", sb.smtps_port, "SSL"),
            ],
        )


@pytest.fixture
def env(
    sandbox: Sandbox, mailbag_home: Path, memory_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    dns = LocalDns()
    dns.add(f"autoconfig.{sandbox.domain}", "A", "127.0.0.1")
    dns.add(sandbox.domain, "A", "127.0.0.1")
    with dns, LocalHttps(sandbox.certs) as web:
        (mailbag_home / "config.toml").write_text(
            "# discovery endpoints for this test\n"
            "[discovery]\n"
            f'dns_server = "127.0.0.1"\ndns_port = {dns.port}\n'
            f"https_port = {web.port}\n"
            f'ispdb_url = "https://localhost:{web.port}/v1.1/"\n'
            f'ca_file = "{sandbox.ca_file}"\n'
            "timeout = 2\n"
        )
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        yield Env(sandbox, dns, web, mailbag_home, memory_keyring)


def run_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_from_address_and_password_via_autoconfig(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    email = sb.address("carol")
    code, out, err = run_cli(
        capsys,
        monkeypatch,
        "account",
        "add",
        email,
        "--password-stdin",
        "--yes",
        "--ca-file",
        str(sb.ca_file),
        "--json",
        stdin=sb.password("carol") + "\n",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["saved"] is True
    assert doc["sources"] == {"incoming": "autoconfig", "smtp": "autoconfig"}
    assert doc["test"]["ok"] is True
    names = [s["name"] for s in doc["test"]["steps"]]
    assert "login" in names and "smtp-login" in names and "send" in names
    assert sb.password("carol") not in out + err

    config = load_config(env.paths)
    account = config.account(email)
    assert config.default_account == email
    assert (account.incoming.host, account.incoming.port) == ("localhost", sb.ports.imaps)
    assert (account.smtp.host, account.smtp.port) == ("localhost", sb.smtps_port)
    assert account.ca_file == sb.ca_file.resolve()
    assert account.incoming.secret.source is SecretSource.KEYRING
    assert env.keyring.store[("mailbag", f"{email}:incoming")] == sb.password("carol")
    text = env.paths.config_file.read_text()
    assert sb.password("carol") not in text
    assert "# discovery endpoints for this test" in text

    # list / show (redacted) / remove
    code, out, _ = run_cli(capsys, monkeypatch, "account", "list", "--json")
    assert code == 0
    assert json.loads(out) == [
        {
            "name": email,
            "email": email,
            "protocol": "imap",
            "incoming": f"localhost:{sb.ports.imaps}",
            "smtp": f"localhost:{sb.smtps_port}",
            "default": True,
        }
    ]
    code, out, _ = run_cli(capsys, monkeypatch, "account", "show", email, "--json")
    shown = json.loads(out)
    assert shown["incoming"]["secret"] == {
        "source": "keyring",
        "service": "mailbag",
        "key": f"{email}:incoming",
    }
    assert sb.password("carol") not in out
    code, out, _ = run_cli(capsys, monkeypatch, "account", "show", email)
    assert code == 0 and "keyring entry" in out and sb.password("carol") not in out

    code, _, err = run_cli(capsys, monkeypatch, "account", "remove", email, "--keep-mail")
    assert code == 0, err
    assert load_config(env.paths).accounts == {}
    assert ("mailbag", f"{email}:incoming") not in env.keyring.store


def test_add_via_srv_needs_the_outside_domain_named(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
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
    code, _, err = run_cli(capsys, monkeypatch, *base, stdin=sb.password("bob") + "\n")
    assert code == 2
    assert "--trust-domain localhost" in err
    assert load_config(env.paths).accounts == {}

    code, out, err = run_cli(
        capsys,
        monkeypatch,
        *base,
        "--trust-domain",
        "localhost",
        "--json",
        stdin=sb.password("bob") + "\n",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["sources"] == {"incoming": "srv", "smtp": "srv"}
    assert load_config(env.paths).account(email).incoming.port == sb.ports.imaps


def test_add_with_wrong_password_is_not_saved_unless_asked(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    email = sb.address("bob")
    args = [
        "account",
        "add",
        email,
        "--password-stdin",
        "--yes",
        "--ca-file",
        str(sb.ca_file),
        "--no-send",
    ]
    code, _, err = run_cli(capsys, monkeypatch, *args, stdin="wrong-password\n")
    assert code == 1
    assert "login" in err and "not saved" in err
    assert load_config(env.paths).accounts == {}
    assert env.keyring.store == {}

    code, _, err = run_cli(capsys, monkeypatch, *args, "--save-anyway", stdin="wrong-password\n")
    assert code == 1
    assert "saved account" in err
    assert email in load_config(env.paths).accounts


def test_manual_flags_override_discovery_and_password_command(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    email = sb.address("alice")
    pw_file = env.home / "pw.txt"
    pw_file.write_text(sb.password("alice") + "\n")
    code, out, err = run_cli(
        capsys,
        monkeypatch,
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
    code, out, _ = run_cli(capsys, monkeypatch, "account", "show", "work", "--json")
    assert json.loads(out)["incoming"]["secret"] == {
        "source": "command",
        "command": "cat <redacted>",
    }

    # set-password moves it to the keyring (SMTP keeps following it)
    code, _, err = run_cli(
        capsys,
        monkeypatch,
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
    code, _, err = run_cli(
        capsys,
        monkeypatch,
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


def test_usage_errors_exit_2(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    email = sb.address("alice")
    # plaintext refused without --insecure
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        "account",
        "add",
        email,
        "--incoming-security",
        "none",
        "--yes",
    )
    assert code == 2 and "--insecure" in err
    # --yes and no password source: never prompts
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        "account",
        "add",
        email,
        "--yes",
        "--ca-file",
        str(sb.ca_file),
    )
    assert code == 2 and "--password-stdin" in err
    # nothing to discover and nothing given
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        "account",
        "add",
        "x@nowhere.test",
        "--yes",
        "--password-stdin",
        stdin="pw\n",
    )
    assert code == 2 and "could not find complete settings" in err and "--incoming-host" in err
    code, _, err = run_cli(capsys, monkeypatch, "account", "show", "ghost")
    assert code == 2 and "no account named" in err


@pytest.mark.usefixtures("no_keyring")
def test_add_without_keyring_backend_says_so(
    sandbox: Sandbox,
    mailbag_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run_cli(
        capsys,
        monkeypatch,
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


def test_autoconfig_command_json(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.serve_autoconfig()
    code, out, _ = run_cli(
        capsys, monkeypatch, "autoconfig", env.sandbox.address("alice"), "--json"
    )
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
    code, out, _ = run_cli(capsys, monkeypatch, "autoconfig", "x@nowhere.test", "--json")
    assert code == 1
    assert json.loads(out)["chosen"] == {"incoming": None, "smtp": None}
