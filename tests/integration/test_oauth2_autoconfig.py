"""`account add` for a domain whose autoconfig publishes an `<oAuth2>` block: the generic
provider is filled from it (the user gives only the client ID), end to end against the
local HTTPS autoconfig server, the local authorization server and the OAuth2 sandbox."""

from __future__ import annotations

import json
import os
import webbrowser
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from mailbag.auth import tokens
from mailbag.config import AuthMethod, load_config
from mailbag.sandbox.oauth2 import TEST_CLIENT_ID

pytestmark = pytest.mark.sandbox

AUTOCONFIG = "/mail/config-v1.1.xml"
ISSUER = "sign-in.sandbox.test"


@pytest.fixture
def env(oauth_discovery_env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # nothing may point the generic provider anywhere: the endpoints must come from autoconfig
    for key in list(os.environ):
        if key.startswith("MAILBAG_OAUTH2_"):
            monkeypatch.delenv(key)
    sb = oauth_discovery_env.sandbox
    o = sb.oauth2
    assert o is not None

    def server(tag: str, kind: str, port: int) -> str:
        return (
            f'<{tag} type="{kind}"><hostname>localhost</hostname><port>{port}</port>'
            "<socketType>SSL</socketType><username>%EMAILADDRESS%</username>"
            f"<authentication>OAuth2</authentication></{tag}>"
        )

    # laid out as Thunderbird's ISPDB files are: <oAuth2> next to <emailProvider>
    oauth_discovery_env.web.documents[AUTOCONFIG] = (
        f'<?xml version="1.0"?>\n<clientConfig version="1.1">'
        f'<emailProvider id="{sb.domain}"><domain>{sb.domain}</domain>'
        + server("incomingServer", "imap", sb.ports.imaps)
        + server("outgoingServer", "smtp", sb.smtps_port)
        + "</emailProvider>"
        f"<oAuth2><issuer>{ISSUER}</issuer><scope>mail</scope>"
        f"<authURL>{o.authorize_url}</authURL><tokenURL>{o.token_url}</tokenURL></oAuth2>"
        "</clientConfig>"
    ).encode()
    tokens._memory.clear()
    tokens._refused.clear()
    yield oauth_discovery_env
    tokens._memory.clear()
    tokens._refused.clear()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    urls: list[str] = []

    def browser(url: str, *args: object, **kwargs: object) -> bool:
        urls.append(url)
        assert httpx2.get(url, follow_redirects=True).status_code == 200
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    return urls


def test_add_signs_in_at_the_published_endpoints_then_syncs(
    env: Any, cli: Any, opened: list[str]
) -> None:
    sb = env.sandbox
    o = sb.oauth2
    email = sb.address("alice")
    code, out, err = cli(
        "account", "add", email, "--name", "published",
        "--oauth-client-id", TEST_CLIENT_ID, "--ca-file", str(sb.ca_file), "--yes", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    # autoconfig offers OAuth2 only, so no --auth was needed
    assert doc["settings"]["incoming"]["auth"] == "oauth2"
    assert doc["sources"] == {"incoming": "autoconfig", "smtp": "autoconfig"}
    assert doc["discovery"]["oauth2"] == {
        "issuer": ISSUER,
        "scopes": ["mail"],
        "authorize_url": o.authorize_url,
        "token_url": o.token_url,
    }
    assert doc["saved"] is True and doc["test"]["ok"] is True, doc["test"]
    assert len(opened) == 1 and opened[0].startswith(o.authorize_url + "?")

    account = load_config(env.paths).account("published")
    assert account.incoming.auth is AuthMethod.OAUTH2 and account.smtp.auth is AuthMethod.OAUTH2
    settings = account.oauth2
    assert settings is not None
    assert (settings.provider, settings.client_id, settings.issuer) == (
        "generic",
        TEST_CLIENT_ID,
        ISSUER,
    )
    assert settings.scopes == ("mail",)
    assert (settings.authorize_url, settings.token_url) == (o.authorize_url, o.token_url)

    # later commands refresh at the saved token endpoint, with no autoconfig involved
    env.web.documents.clear()
    o.expire_access_tokens(email)
    tokens._memory.clear()
    refreshes = o.stats.token_requests.get("refresh_token", 0)
    sb.deliver("alice", b"Subject: published oauth\r\n\r\nhello\r\n")
    code, out, err = cli("sync", "published", "--json", "--quiet")
    assert code == 0, out + err
    assert json.loads(out)["accounts"][0]["ok"] is True
    assert o.stats.token_requests["refresh_token"] > refreshes


def test_add_without_client_id_explains_where_to_register(
    env: Any, cli: Any, opened: list[str]
) -> None:
    sb = env.sandbox
    code, _out, err = cli(
        "account", "add", sb.address("bob"), "--name", "no-client",
        "--ca-file", str(sb.ca_file), "--yes",
    )  # fmt: skip
    assert code != 0
    assert "no OAuth2 client ID is set for account 'no-client' (generic)" in err
    assert f"signs in at {ISSUER}" in err and "--oauth-client-id" in err
    assert opened == []
    assert "no-client" not in load_config(env.paths).accounts


def test_autoconfig_command_shows_the_published_sign_in(env: Any, cli: Any) -> None:
    sb = env.sandbox
    code, out, err = cli("autoconfig", sb.address("carol"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["oauth2"]["issuer"] == ISSUER
    assert doc["chosen"]["incoming"]["oauth2"]["token_url"] == sb.oauth2.token_url
    code, _out, err = cli("autoconfig", sb.address("carol"))
    assert code == 0
    assert f"supports OAuth2 sign-in (issuer {ISSUER}, scope mail)" in err
