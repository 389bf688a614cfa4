"""Pure parts of discovery: clientConfig parsing, the provider table, SRV handling, choosing."""

from __future__ import annotations

import pytest

from mailbag.autoconfig import (
    Candidate,
    DiscoveryOptions,
    Source,
    choose,
    discover,
    provider_for_domain,
    provider_for_host,
    provider_for_mx,
    split_address,
)
from mailbag.autoconfig.clientconfig import fill_placeholders, parse_client_config
from mailbag.autoconfig.discover import srv_candidates
from mailbag.autoconfig.dnslookup import SrvRecord, registered_domain
from mailbag.errors import ProtocolError, UsageError
from mailbag.protocols.transport import Security

FULL = b"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.net">
    <domain>example.net</domain>
    <domain>Example.ORG</domain>
    <displayName>Example Mail</displayName>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <authentication>OAuth2</authentication>
      <authentication>password-cleartext</authentication>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.net</hostname>
      <port>110</port>
      <socketType>STARTTLS</socketType>
      <authentication>password-encrypted</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="exchange">
      <hostname>ews.example.net</hostname>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>broken.example.net</hostname>
      <port>99999</port>
      <socketType>SSL</socketType>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.net</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <authentication>OAuth2</authentication>
      <username>%emailaddress%</username>
    </outgoingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.net</hostname>
      <port>25</port>
      <socketType>plain</socketType>
      <authentication>none</authentication>
    </outgoingServer>
    <enable visiturl="https://example.net/settings/imap">
      <instruction lang="de">IMAP in den Einstellungen einschalten.</instruction>
      <instruction lang="en">Turn on IMAP in the settings.</instruction>
    </enable>
    <documentation url="https://example.net/help/imap">
      <descr lang="en">IMAP help</descr>
    </documentation>
  </emailProvider>
  <oAuth2>
    <issuer>login.example.net</issuer>
    <scope>mail offline</scope>
    <authURL>https://login.example.net/auth</authURL>
    <tokenURL>https://login.example.net/token</tokenURL>
  </oAuth2>
</clientConfig>
"""


def test_client_config_full() -> None:
    cfg = parse_client_config(FULL)
    assert cfg.provider_id == "example.net"
    assert cfg.display_name == "Example Mail"
    assert cfg.domains == ("example.net", "example.org")
    assert len(cfg.servers) == 4
    assert any("exchange" in s for s in cfg.skipped)
    assert any("99999" in s for s in cfg.skipped)
    assert cfg.enable_url == "https://example.net/settings/imap"
    assert cfg.enable_instructions == ("Turn on IMAP in the settings.",)
    assert cfg.documentation == (("https://example.net/help/imap", "IMAP help"),)
    assert cfg.oauth2 is not None and cfg.oauth2.token_url == "https://login.example.net/token"

    cands = cfg.candidates("jo@example.net", Source.ISPDB, True)
    imap, pop, smtp, smtp25 = cands
    assert (imap.host, imap.port, imap.security, imap.username) == (
        "imap.example.net",
        993,
        Security.SSL,
        "jo",
    )
    assert imap.auth == ("oauth2", "password")
    assert (pop.protocol, pop.security, pop.auth) == (
        "pop3",
        Security.STARTTLS,
        ("password-encrypted",),
    )
    assert smtp.username == "jo@example.net"
    assert smtp.auth == ("oauth2",)
    assert any("requires OAuth2" in n for n in smtp.notes)
    assert smtp25.security is Security.NONE and smtp25.auth == ("none",)
    notes = " | ".join(imap.notes)
    assert "Turn on IMAP in the settings: https://example.net/settings/imap" in notes
    assert "IMAP help: https://example.net/help/imap" in notes
    assert "OAuth2" in notes
    assert [c.rank for c in cands] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<notxml", "not valid XML"),
        (b"<html><body>hi</body></html>", "not a clientConfig"),
        (b"<clientConfig/>", "no <emailProvider>"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><clientConfig/>',
            "DTD",
        ),
        (b"<clientConfig>" + b" " * 600_000 + b"</clientConfig>", "too large"),
    ],
)
def test_client_config_rejects(data: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        parse_client_config(data)


def test_placeholders() -> None:
    assert (
        fill_placeholders("%EMAILLOCALPART%+x@%EMAILDOMAIN%", "a.b@c.example") == "a.b+x@c.example"
    )
    assert fill_placeholders("%REALNAME%", "a@b.c") == "%REALNAME%"


def test_provider_table() -> None:
    outlook = provider_for_domain("Hotmail.com")
    assert outlook is not None and outlook.name == "Outlook.com"
    cands = {c.protocol: c for c in outlook.candidates("me@hotmail.com")}
    assert (cands["imap"].host, cands["imap"].port, cands["imap"].security) == (
        "outlook.office365.com",
        993,
        Security.SSL,
    )
    assert (cands["smtp"].host, cands["smtp"].port, cands["smtp"].security) == (
        "smtp-mail.outlook.com",
        587,
        Security.STARTTLS,
    )
    assert cands["pop3"].port == 995
    assert any("OAuth2" in n for n in cands["imap"].notes)
    assert any("POP is off by default" in n and "https://" in n for n in cands["pop3"].notes)
    assert all(c.source is Source.BUILTIN and c.trusted for c in cands.values())

    icloud = provider_for_domain("me.com")
    assert icloud is not None
    ic = {c.protocol: c for c in icloud.candidates("jane.doe@me.com")}
    assert ic["imap"].username == "jane.doe" and ic["smtp"].username == "jane.doe@me.com"
    assert "pop3" not in ic

    proton = provider_for_domain("proton.me")
    assert proton is not None
    assert all(c.host == "127.0.0.1" for c in proton.candidates("x@proton.me"))
    assert any("Bridge" in n for n in proton.candidates("x@proton.me")[0].notes)

    gmail_pop = [
        c
        for c in provider_for_domain("gmail.com").candidates("a@gmail.com")
        if c.protocol == "pop3"
    ]  # type: ignore[union-attr]
    assert any("POP must be enabled" in n for n in gmail_pop[0].notes)

    for domain in (
        "gmail.com",
        "yahoo.com",
        "aol.com",
        "icloud.com",
        "fastmail.com",
        "gmx.net",
        "web.de",
        "zoho.com",
        "yandex.ru",
        "mail.ru",
        "t-online.de",
        "comcast.net",
        "office365.com",
    ):
        assert provider_for_domain(domain) is not None, domain
    m365 = provider_for_mx("outlook.com")
    assert m365 is not None and m365.name == "Microsoft 365"
    google = provider_for_mx("google.com")
    assert google is not None and "Google" in google.name
    assert provider_for_host("pop.gmail.com") is not None


def test_builtin_answers_without_network() -> None:
    # no DNS server configured and none reachable: the table alone answers
    found = discover("someone@gmail.com")
    assert found.incoming is not None and found.incoming.host == "imap.gmail.com"
    assert found.smtp is not None and (found.smtp.port, found.smtp.security) == (465, Security.SSL)
    assert [r.status for r in found.reports] == ["found"] + ["skipped"] * 6
    doc = found.to_json()
    assert doc["email"] == "someone@gmail.com"
    assert doc["chosen"]["incoming"]["source"] == "builtin"
    assert set(doc["candidates"][0]) == {
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


def test_pop3_requested() -> None:
    found = discover("someone@gmail.com", DiscoveryOptions(protocol="pop3"))
    assert found.incoming is not None and found.incoming.host == "pop.gmail.com"


def test_split_address() -> None:
    assert split_address(" Jo@Example.COM ") == ("Jo", "example.com")
    for bad in ("nobody", "@example.com", "jo@", "jo@localhost", "j o@example.com"):
        with pytest.raises(UsageError):
            split_address(bad)


def test_registered_domain_uses_public_suffix_list() -> None:
    assert registered_domain("tenant.mail.protection.outlook.com") == "outlook.com"
    assert registered_domain("aspmx.l.google.com") == "google.com"
    assert registered_domain("mx1.example.co.uk") == "example.co.uk"
    assert registered_domain("co.uk") is None


def test_srv_candidates_priority_and_dot() -> None:
    records = {
        "_imaps._tcp": [
            SrvRecord(0, 10, 993, "imap1.example.com"),
            SrvRecord(10, 5, 993, "imap2.example.com"),
        ],
        "_pop3s._tcp": [SrvRecord(0, 0, 0, "")],
        "_submission._tcp": [SrvRecord(0, 1, 587, "smtp.example.com")],
    }
    cands, not_offered = srv_candidates("a@example.com", records)
    assert [(c.protocol, c.host, c.security) for c in cands] == [
        ("imap", "imap1.example.com", Security.SSL),
        ("imap", "imap2.example.com", Security.SSL),
        ("smtp", "smtp.example.com", Security.STARTTLS),
    ]
    assert not_offered == ["_pop3s._tcp: the domain says this service is not offered"]


def _c(
    protocol: str, security: Security, source: Source, *, trusted: bool = True, rank: int = 0
) -> Candidate:
    return Candidate(
        protocol,
        f"{protocol}.example.com",
        1,
        security,
        "u",
        ("password",),
        source,
        trusted,
        (),
        rank,
    )


def test_choose_rules() -> None:
    cands = [
        _c("imap", Security.STARTTLS, Source.AUTOCONFIG, rank=0),
        _c("imap", Security.SSL, Source.AUTOCONFIG, rank=1),
        _c("imap", Security.SSL, Source.BUILTIN, trusted=False),
        _c("pop3", Security.SSL, Source.ISPDB),
        _c("smtp", Security.NONE, Source.AUTOCONFIG),
        _c("smtp", Security.STARTTLS, Source.GUESS),
    ]
    incoming, smtp = choose(cands, protocol=None, insecure=False)
    # untrusted is skipped; implicit TLS beats STARTTLS inside a source
    assert incoming is cands[1]
    # plaintext is never chosen by itself: the guess wins over it
    assert smtp is cands[5]
    _, smtp_insecure = choose(cands, protocol=None, insecure=True)
    assert smtp_insecure is cands[4]
    pop, _ = choose(cands, protocol="pop3", insecure=False)
    assert pop is cands[3]
