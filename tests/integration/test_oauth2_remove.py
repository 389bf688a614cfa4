"""`account remove` of an OAuth2 account: the refresh token is revoked at the provider
(best effort) and every keyring entry of the account is deleted."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mailbag import auth
from mailbag.auth import tokens
from mailbag.config import load_config, save_account
from mailbag.config.model import Account
from mailbag.paths import Paths
from mailbag.record import replace
from mailbag.sandbox import Sandbox

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _clean_caches() -> Iterator[None]:
    yield
    tokens._memory.clear()
    tokens._refused.clear()


def _browser(url: str) -> bool:
    assert httpx2.get(url, follow_redirects=True).status_code == 200
    return True


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signed_in(sb: Sandbox, keyring: Any, **oauth2: str) -> tuple[Account, str]:
    """A saved OAuth2 account for carol, signed in; returns it and its refresh token."""
    account = sb.account("carol", name=f"rm-{uuid.uuid4().hex[:6]}", oauth2=True)
    assert account.oauth2 is not None
    account = replace(account, oauth2=replace(account.oauth2, **oauth2))
    paths = Paths.from_env()
    save_account(paths, account)
    auth.sign_in(account, paths=paths, open_browser=_browser)
    # as `account login --oauth-client-secret` leaves it (this test client is public)
    keyring.store[("mailbag", f"{account.name}:oauth2-client")] = "client-secret"
    refresh = keyring.store[("mailbag", f"{account.name}:incoming")]
    assert ("mailbag", f"{account.name}:oauth2-access") in keyring.store
    return account, refresh


def _entries(keyring: Any, name: str) -> list[str]:
    return [key for (_service, key) in keyring.store if key.startswith(f"{name}:")]


def test_remove_revokes_and_forgets_every_token(
    oauth_sandbox: Sandbox, mailbag_home: Path, memory_keyring: Any, cli: Any
) -> None:
    sb = oauth_sandbox
    assert sb.oauth2 is not None
    account, refresh = _signed_in(sb, memory_keyring)
    assert sb.oauth2.refresh_token_active(refresh)

    code, out, err = cli("account", "remove", account.name, "--yes", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["oauth2"] == {"revoked": True, "problem": None}
    assert doc["secrets_removed"] == 3  # refresh token, cached access token, client secret
    assert "warning" not in err
    assert _entries(memory_keyring, account.name) == []
    assert not sb.oauth2.refresh_token_active(refresh)
    assert account.name not in load_config(Paths.from_env()).accounts
    assert refresh not in out + err


@pytest.mark.parametrize("why", ["offline", "no-endpoint"])
def test_remove_when_revocation_is_not_possible_warns_and_still_removes(
    oauth_sandbox: Sandbox, mailbag_home: Path, memory_keyring: Any, cli: Any, why: str
) -> None:
    sb = oauth_sandbox
    assert sb.oauth2 is not None
    url = f"http://127.0.0.1:{_closed_port()}/revoke" if why == "offline" else ""
    account, refresh = _signed_in(sb, memory_keyring, revocation_url=url)

    code, out, err = cli("account", "remove", account.name, "--yes")
    assert code == 0, err
    assert f"warning: the OAuth2 sign-in of {account.name!r} was not revoked" in err
    if why == "offline":
        assert "cannot reach the sign-in server 127.0.0.1" in err
    else:
        assert "has no revocation endpoint" in err
        assert "security settings at the provider" in err
    assert f"removed account {account.name!r}" in err
    assert _entries(memory_keyring, account.name) == []
    assert account.name not in load_config(Paths.from_env()).accounts
    # still valid at the provider, as the warning says
    assert sb.oauth2.refresh_token_active(refresh)
    assert refresh not in out + err


def test_sign_out_keeps_a_client_secret_other_accounts_use(
    oauth_sandbox: Sandbox, mailbag_home: Path, memory_keyring: Any
) -> None:
    sb = oauth_sandbox
    account, _ = _signed_in(sb, memory_keyring)
    shared_key = f"{account.name}:oauth2-client"
    other = sb.account("bob", name=f"other-{uuid.uuid4().hex[:6]}", oauth2=True)
    assert other.oauth2 is not None
    save_account(
        Paths.from_env(),
        replace(other, oauth2=replace(other.oauth2, client_secret_keyring=shared_key)),
    )
    result = auth.sign_out(account, paths=Paths.from_env())
    assert result.revoked and not result.problem
    assert ("mailbag", shared_key) in memory_keyring.store
    assert _entries(memory_keyring, account.name) == [shared_key]


def test_remove_without_a_usable_keyring_still_removes(
    oauth_sandbox: Sandbox, mailbag_home: Path, no_keyring: None, cli: Any
) -> None:
    account = oauth_sandbox.account("carol", name=f"rm-{uuid.uuid4().hex[:6]}", oauth2=True)
    save_account(Paths.from_env(), account)
    code, _out, err = cli("account", "remove", account.name, "--yes")
    assert code == 0, err
    assert "was not revoked: cannot read it from the keyring" in err
    assert account.name not in load_config(Paths.from_env()).accounts
