"""`--oauth-shared`: one client ID for every account of a provider (`[oauth2.PROVIDER]`),
only for the providers mailbag knows; a generic provider's ID stays with the account."""

from __future__ import annotations

import uuid
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mailbag.auth import tokens
from mailbag.config import load_config, save_account
from mailbag.config.model import OAuth2Settings
from mailbag.paths import Paths
from mailbag.record import replace
from mailbag.sandbox import Sandbox
from mailbag.sandbox.oauth2 import TEST_CLIENT_ID

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def browser(url: str, *args: object, **kwargs: object) -> bool:
        assert httpx2.get(url, follow_redirects=True).status_code == 200
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    yield
    tokens._memory.clear()
    tokens._refused.clear()


def _saved(sb: Sandbox, settings: OAuth2Settings) -> str:
    account = sb.account("carol", name=f"shared-{uuid.uuid4().hex[:6]}", oauth2=True)
    save_account(Paths.from_env(), replace(account, oauth2=settings))
    return account.name


def test_shared_client_id_for_microsoft(
    oauth_sandbox: Sandbox,
    mailbag_home: Path,
    memory_keyring: Any,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert oauth_sandbox.oauth2 is not None
    for key, value in oauth_sandbox.oauth2.env("microsoft").items():
        monkeypatch.setenv(key, value)
    name = _saved(oauth_sandbox, OAuth2Settings(provider="microsoft"))
    code, _out, err = cli(
        "account", "login", name, "--oauth-client-id", TEST_CLIENT_ID, "--oauth-shared"
    )
    assert code == 0, err
    config = load_config(Paths.from_env())
    assert config.oauth2["microsoft"].client_id == TEST_CLIENT_ID
    settings = config.account(name).oauth2
    assert settings is not None and settings.client_id == ""  # taken from [oauth2.microsoft]
    code, out, err = cli("account", "test", name, "--no-send")
    assert code == 0, out + err


def test_shared_is_refused_for_a_generic_provider(
    oauth_sandbox: Sandbox, mailbag_home: Path, memory_keyring: Any, cli: Any
) -> None:
    settings = replace(oauth_sandbox.oauth2_settings(), client_id="")
    name = _saved(oauth_sandbox, settings)
    code, _out, err = cli(
        "account", "login", name, "--oauth-client-id", TEST_CLIENT_ID, "--oauth-shared"
    )
    assert code == 0, err
    assert "kept for this account only" in err
    config = load_config(Paths.from_env())
    assert "generic" not in config.oauth2
    account_settings = config.account(name).oauth2
    assert account_settings is not None and account_settings.client_id == TEST_CLIENT_ID
