"""`account add --auth oauth2` -> sign-in -> account test -> sync; revocation -> `account login`.
All against the OAuth2 sandbox (real token validation by Dovecot and the SMTP server)."""

from __future__ import annotations

import json
import webbrowser
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mailbag.auth import tokens
from mailbag.config import AuthMethod, load_config
from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.sandbox.oauth2 import TEST_CLIENT_ID

pytestmark = pytest.mark.sandbox


def test_add_sign_in_test_sync_revoke_login(
    oauth_sandbox: Sandbox,
    mailbag_home: Path,
    memory_keyring: Any,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = oauth_sandbox
    assert sb.oauth2 is not None
    for key, value in sb.oauth2.env("generic").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MAILBAG_OAUTH2_GENERIC_SCOPES", "mail")
    opened: list[str] = []

    def browser(url: str, *args: object, **kwargs: object) -> bool:
        opened.append(url)
        assert httpx2.get(url, follow_redirects=True).status_code == 200
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    tokens._memory.clear()
    email = sb.address("alice")
    code, out, err = cli(
        "account", "add", email, "--name", "oa",
        "--incoming-host", sb.host, "--incoming-port", str(sb.ports.imaps),
        "--incoming-security", "ssl",
        "--smtp-host", sb.host, "--smtp-port", str(sb.smtps_port), "--smtp-security", "ssl",
        "--ca-file", str(sb.ca_file),
        "--auth", "oauth2", "--oauth-provider", "generic", "--oauth-client-id", TEST_CLIENT_ID,
        "--yes", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["saved"] is True and doc["test"]["ok"] is True, doc["test"]
    steps = {s["name"]: s for s in doc["test"]["steps"]}
    assert steps["login"]["status"] == "ok" and steps["smtp-login"]["status"] == "ok"
    assert steps["send"]["status"] == "ok" and steps["receive"]["status"] == "ok"
    assert len(opened) == 1
    account = load_config(Paths.from_env()).account("oa")
    assert account.incoming.auth is AuthMethod.OAUTH2
    assert account.oauth2 is not None and account.oauth2.client_id == TEST_CLIENT_ID
    refresh = memory_keyring.store[("mailbag", "oa:incoming")]
    assert refresh and refresh not in out + err + Paths.from_env().config_file.read_text()

    sb.deliver("alice", b"Subject: for the oauth sync\r\n\r\nhello\r\n")
    code, out, err = cli("sync", "oa", "--json", "--quiet")
    assert code == 0, err
    synced = json.loads(out)["accounts"][0]
    assert synced["ok"] is True and sum(f["new"] for f in synced["folders"]) >= 1

    # sending signs in to SMTP (and IMAP, for the Sent copy) with the access token
    code, out, err = cli(
        "send",
        "--account",
        "oa",
        "--to",
        sb.address("bob"),
        "--subject",
        "oauth send",
        "--body",
        "sent with a token",
    )
    assert code == 0, out + err
    with sb.control("bob") as bob:
        assert any(b"oauth send" in m for m in bob.fetch_bodies("INBOX").values())
    with sb.control("alice") as alice:
        sent = [m for m in alice.fetch_bodies("Sent").values() if b"oauth send" in m]
    assert len(sent) == 1

    # the provider revokes the sign-in: a clear request to sign in again
    sb.oauth2.revoke_user(email)
    tokens._memory.clear()
    memory_keyring.store.pop(("mailbag", "oa:oauth2-access"), None)
    code, out, err = cli("sync", "oa", "--json", "--quiet")
    assert code != 0
    assert "mailbag account login oa" in out + err

    code, out, err = cli("account", "login", "oa")
    assert code == 0, err
    assert len(opened) == 2
    code, out, err = cli("account", "test", "oa", "--no-send", "--json")
    assert code == 0, out + err


def test_login_refuses_password_accounts(
    oauth_sandbox: Sandbox, mailbag_home: Path, memory_keyring: Any, cli: Any
) -> None:
    from mailbag.config import save_account

    save_account(Paths.from_env(), oauth_sandbox.account("bob", name="pw"))
    code, _out, err = cli("account", "login", "pw")
    assert code == 2
    assert "password, not OAuth2" in err and "set-password" in err
