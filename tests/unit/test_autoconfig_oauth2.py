"""Thunderbird-style `<oAuth2>` blocks: parsed, carried by candidates and the Discovery,
and turned into OAuth2 settings (generic provider, or the built-in Microsoft/Google)."""

from __future__ import annotations

import pytest

from mailbag.auth import discovered_settings
from mailbag.auth.providers import registration_help, resolve_provider
from mailbag.autoconfig import Discovery, OAuth2Info, Source
from mailbag.autoconfig.clientconfig import parse_client_config
from mailbag.errors import ConfigError

SERVERS = """
    <domain>example.net</domain>
    <incomingServer type="imap">
      <hostname>imap.example.net</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.net</hostname><port>465</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
    </outgoingServer>
"""

BLOCK = """
  <oAuth2>
    <issuer>login.example.net</issuer>
    <scope>mail-r
      mail-w</scope>
    <authURL>{auth}</authURL>
    <tokenURL>https://login.example.net/token</tokenURL>
  </oAuth2>
"""


def _doc(*, inside: bool, auth: str = "https://login.example.net/auth") -> bytes:
    block = BLOCK.format(auth=auth)
    provider = f'<emailProvider id="example.net">{SERVERS}{block if inside else ""}</emailProvider>'
    return (
        f'<?xml version="1.0"?><clientConfig version="1.1">{provider}'
        f"{'' if inside else block}</clientConfig>"
    ).encode()


@pytest.mark.parametrize("inside", [False, True], ids=["ispdb-placement", "in-emailProvider"])
def test_block_is_read_where_providers_put_it(inside: bool) -> None:
    cfg = parse_client_config(_doc(inside=inside))
    assert cfg.oauth2 == OAuth2Info(
        issuer="login.example.net",
        scope="mail-r mail-w",
        auth_url="https://login.example.net/auth",
        token_url="https://login.example.net/token",
    )
    assert cfg.oauth2.scopes == ("mail-r", "mail-w")
    cands = cfg.candidates("jo@example.net", Source.AUTOCONFIG, True)
    assert [c.oauth2 for c in cands] == [cfg.oauth2, cfg.oauth2]
    assert cands[0].to_json()["oauth2"] == {
        "issuer": "login.example.net",
        "scopes": ["mail-r", "mail-w"],
        "authorize_url": "https://login.example.net/auth",
        "token_url": "https://login.example.net/token",
    }


@pytest.mark.parametrize(
    "auth",
    ["http://login.example.net/auth", "javascript:alert(1)", ""],
    ids=["plain-http", "not-a-url", "missing"],
)
def test_block_with_unsafe_or_missing_endpoint_is_ignored(auth: str) -> None:
    cfg = parse_client_config(_doc(inside=False, auth=auth))
    assert cfg.oauth2 is None
    assert any("<oAuth2>" in s for s in cfg.skipped)
    assert all(c.oauth2 is None for c in cfg.candidates("jo@example.net", Source.ISPDB, True))


def test_loopback_http_endpoint_is_accepted_for_local_servers() -> None:
    cfg = parse_client_config(_doc(inside=False, auth="http://127.0.0.1:8080/authorize"))
    assert cfg.oauth2 is not None and cfg.oauth2.auth_url == "http://127.0.0.1:8080/authorize"


def test_discovery_carries_the_block_of_the_chosen_servers() -> None:
    cfg = parse_client_config(_doc(inside=False))
    imap, smtp = cfg.candidates("jo@example.net", Source.AUTOCONFIG, True)
    found = Discovery("jo@example.net", (imap, smtp), imap, smtp)
    assert found.oauth2 == cfg.oauth2
    assert found.to_json()["oauth2"]["token_url"] == "https://login.example.net/token"
    nothing = Discovery("jo@example.net", (), None, None)
    assert nothing.oauth2 is None and nothing.to_json()["oauth2"] is None


def test_discovered_settings_generic_and_builtin() -> None:
    generic = discovered_settings(
        "login.example.net",
        ("mail-r", "mail-w"),
        "https://login.example.net/auth",
        "https://login.example.net/token",
    )
    assert generic.provider == "generic"
    assert generic.scopes == ("mail-r", "mail-w")
    assert generic.authorize_url == "https://login.example.net/auth"
    assert generic.token_url == "https://login.example.net/token"
    assert generic.client_id == ""  # always the user's
    # the ISPDB's Gmail and Microsoft entries map to the built-in definitions
    google = discovered_settings(
        "accounts.google.com",
        ("https://mail.google.com/",),
        "https://accounts.google.com/o/oauth2/auth",
        "https://www.googleapis.com/oauth2/v3/token",
    )
    assert google.provider == "google" and not google.authorize_url
    ms = discovered_settings(
        "login.microsoftonline.com",
        (),
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    )
    assert ms.provider == "microsoft"


def test_missing_client_id_for_a_published_provider_says_where_to_register() -> None:
    settings = discovered_settings(
        "login.example.net",
        ("mail",),
        "https://login.example.net/auth",
        "https://login.example.net/token",
    )
    with pytest.raises(ConfigError) as err:
        resolve_provider(settings, account_name="jo", env={})
    assert err.value.hint is not None
    assert "signs in at login.example.net" in err.value.hint
    assert "--oauth-client-id" in err.value.hint
    assert "endpoints" not in err.value.hint  # they are known: not asked for
    assert "endpoints" in registration_help("generic", "jo")
