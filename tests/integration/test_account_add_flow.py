"""The new user's path: only the address and the password -> settings found through a local
autoconfig server, the account test passes against the sandbox, config saved, password in the
(test) keyring. And a failing test saves nothing unless asked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailbag.config import SecretSource, load_config

Env = Any


@pytest.fixture
def env(discovery_env: Any) -> Any:
    return discovery_env


def test_add_from_address_and_password_via_autoconfig(env: Env, cli: Any) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    email = sb.address("carol")
    code, out, err = cli(
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
    code, out, _ = cli("account", "list", "--json")
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
    code, out, _ = cli("account", "show", email, "--json")
    shown = json.loads(out)
    assert shown["incoming"]["secret"] == {
        "source": "keyring",
        "service": "mailbag",
        "key": f"{email}:incoming",
    }
    assert sb.password("carol") not in out
    code, out, _ = cli("account", "show", email)
    assert code == 0 and "keyring entry" in out and sb.password("carol") not in out

    code, _, err = cli("account", "remove", email, "--keep-mail")
    assert code == 0, err
    assert load_config(env.paths).accounts == {}
    assert ("mailbag", f"{email}:incoming") not in env.keyring.store


def test_add_with_wrong_password_is_not_saved_unless_asked(env: Env, cli: Any) -> None:
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
    code, _, err = cli(*args, stdin="wrong-password\n")
    assert code == 1
    assert "login" in err and "not saved" in err
    assert load_config(env.paths).accounts == {}
    assert env.keyring.store == {}

    code, _, err = cli(*args, "--save-anyway", stdin="wrong-password\n")
    assert code == 1
    assert "saved account" in err
    assert email in load_config(env.paths).accounts


def test_add_pop3_account_with_the_full_round_trip(env: Env, cli: Any) -> None:
    sb = env.sandbox
    env.serve_autoconfig()
    email = sb.address("carol")
    code, out, err = cli(
        "account",
        "add",
        email,
        "--name",
        "carol-pop",
        "--protocol",
        "pop3",
        "--password-stdin",
        "--yes",
        "--ca-file",
        str(sb.ca_file),
        "--json",
        stdin=sb.password("carol") + "\n",
    )
    assert code == 0, err
    doc = json.loads(out)
    steps = {s["name"]: s["status"] for s in doc["test"]["steps"]}
    assert steps["inbox"] == steps["send"] == steps["receive"] == "ok"
    account = load_config(env.paths).account("carol-pop")
    assert account.protocol.value == "pop3"
    assert (account.incoming.host, account.incoming.port) == ("localhost", sb.ports.pop3s)
