"""The clientConfig v1.1 format (provider autoconfig files and the ISPDB): bytes -> values.

Pure parsing, no I/O. The XML comes from the network, so it is size-limited and
any DTD is refused outright (no entity expansion of any kind).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mailbag.autoconfig.model import Candidate, OAuth2Info, Source
from mailbag.errors import ProtocolError
from mailbag.protocols.transport import Security

MAX_XML_BYTES = 512 * 1024

_SOCKET_TYPES = {"ssl": Security.SSL, "starttls": Security.STARTTLS, "plain": Security.NONE}
_AUTH_NAMES = {
    "password-cleartext": "password",
    "plain": "password",
    "password-encrypted": "password-encrypted",
    "secure": "password-encrypted",
    "oauth2": "oauth2",
    "none": "none",
    "ntlm": "ntlm",
    "gssapi": "gssapi",
    "client-ip-address": "client-ip-address",
    "tls-client-cert": "tls-client-cert",
}
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ServerEntry:
    """One `<incomingServer>` / `<outgoingServer>` as written (placeholders unresolved)."""

    protocol: str
    hostname: str
    port: int
    security: Security
    username: str
    auth: tuple[str, ...]


@dataclass(frozen=True)
class ClientConfig:
    provider_id: str = ""
    display_name: str = ""
    domains: tuple[str, ...] = ()
    servers: tuple[ServerEntry, ...] = ()
    #: `<enable visiturl>` and its instructions
    enable_url: str = ""
    enable_instructions: tuple[str, ...] = ()
    #: `<documentation url>` links with their descriptions
    documentation: tuple[tuple[str, str], ...] = ()
    oauth2: OAuth2Info | None = None
    skipped: tuple[str, ...] = field(default_factory=tuple)

    def notes(self) -> tuple[str, ...]:
        out: list[str] = []
        if self.enable_url or self.enable_instructions:
            text = " ".join(self.enable_instructions) or "enable mail access for clients first"
            out.append(f"{text.rstrip('.:')}: {self.enable_url}" if self.enable_url else text)
        for url, descr in self.documentation:
            out.append(f"{descr.rstrip('.:')}: {url}" if descr else f"documentation: {url}")
        if self.oauth2 is not None:
            out.append(
                f"supports OAuth2 sign-in (issuer {self.oauth2.issuer or 'unknown'}, "
                f"scope {self.oauth2.scope or 'unknown'})"
            )
        return tuple(out)

    def candidates(self, email: str, source: Source, trusted: bool) -> list[Candidate]:
        notes = self.notes()
        out = []
        for rank, s in enumerate(self.servers):
            host = fill_placeholders(s.hostname, email)
            if not _HOST_RE.match(host):
                continue
            server_notes = notes
            if "oauth2" in s.auth and "password" not in s.auth:
                server_notes = (*notes, "requires OAuth2 sign-in (no password login)")
            out.append(
                Candidate(
                    protocol=s.protocol,
                    host=host.lower(),
                    port=s.port,
                    security=s.security,
                    username=fill_placeholders(s.username, email),
                    auth=s.auth,
                    source=source,
                    trusted=trusted,
                    notes=server_notes,
                    rank=rank,
                    oauth2=self.oauth2,
                )
            )
        return out


def fill_placeholders(template: str, email: str) -> str:
    """Replace %EMAILADDRESS%, %EMAILLOCALPART% and %EMAILDOMAIN% (case-insensitively)."""
    local, _, domain = email.rpartition("@")
    values = {"EMAILADDRESS": email, "EMAILLOCALPART": local, "EMAILDOMAIN": domain}
    return re.sub(
        r"%([A-Za-z]+)%",
        lambda m: values.get(m.group(1).upper(), m.group(0)),
        template,
    )


def _text(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _lang_text(parent: ET.Element, tag: str) -> str:
    """The English text of repeated localized elements, else the first."""
    items = parent.findall(tag)
    for el in items:
        if el.get("lang", "en").lower().startswith("en"):
            return _text(el)
    return _text(items[0]) if items else ""


def _server(el: ET.Element, kind: str) -> ServerEntry | str:
    protocol = (el.get("type") or "").lower()
    if kind == "incoming" and protocol not in ("imap", "pop3"):
        return f"incoming server of type {protocol!r} (not supported)"
    if kind == "outgoing" and protocol != "smtp":
        return f"outgoing server of type {protocol!r} (not supported)"
    hostname = _text(el.find("hostname"))
    port_text = _text(el.find("port"))
    socket_text = _text(el.find("socketType")).lower()
    if not hostname:
        return f"{protocol} server without a hostname"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return f"{protocol} server {hostname} with invalid port {port_text!r}"
    security = _SOCKET_TYPES.get(socket_text)
    if security is None:
        return f"{protocol} server {hostname} with unknown socketType {socket_text!r}"
    auth = tuple(
        dict.fromkeys(
            _AUTH_NAMES.get(_text(a).lower(), _text(a).lower())
            for a in el.findall("authentication")
            if _text(a)
        )
    )
    return ServerEntry(
        protocol=protocol,
        hostname=hostname,
        port=int(port_text),
        security=security,
        username=_text(el.find("username")) or "%EMAILADDRESS%",
        auth=auth or ("password",),
    )


def _endpoint_ok(url: str) -> bool:
    """OAuth2 endpoints carry codes and tokens: HTTPS only (plain HTTP to this machine
    is allowed, for local test servers)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _oauth2(root: ET.Element, provider: ET.Element, skipped: list[str]) -> OAuth2Info | None:
    """Thunderbird's `<oAuth2>` block: a child of `<clientConfig>` in the ISPDB's files;
    some providers put it inside `<emailProvider>`, which is accepted too."""
    el = root.find("oAuth2")
    if el is None:
        el = provider.find("oAuth2")
    if el is None:
        return None
    info = OAuth2Info(
        issuer=_text(el.find("issuer")),
        scope=" ".join(_text(el.find("scope")).split()),
        auth_url=_text(el.find("authURL")),
        token_url=_text(el.find("tokenURL")),
    )
    if not info.auth_url or not info.token_url:
        skipped.append("<oAuth2> block without authURL and tokenURL")
        return None
    for url in (info.auth_url, info.token_url):
        if not _endpoint_ok(url):
            skipped.append(f"<oAuth2> block with a non-HTTPS endpoint {url!r}")
            return None
    return info


def parse_client_config(data: bytes) -> ClientConfig:
    """Parse a clientConfig v1.1 document; ProtocolError if it is not one."""
    if len(data) > MAX_XML_BYTES:
        raise ProtocolError(f"autoconfig document too large ({len(data)} bytes)")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise ProtocolError("autoconfig document has a DTD, which is not accepted")
    try:
        # safe here: any DTD was refused above, so there are no entities to expand
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as exc:
        raise ProtocolError(f"autoconfig document is not valid XML: {exc}") from exc
    if root.tag != "clientConfig":
        raise ProtocolError(f"not a clientConfig document (root element <{root.tag}>)")
    provider = root.find("emailProvider")
    if provider is None:
        raise ProtocolError("clientConfig has no <emailProvider>")
    servers: list[ServerEntry] = []
    skipped: list[str] = []
    for el in provider:
        if el.tag in ("incomingServer", "outgoingServer"):
            entry = _server(el, "incoming" if el.tag == "incomingServer" else "outgoing")
            if isinstance(entry, str):
                skipped.append(entry)
            else:
                servers.append(entry)
    enable = provider.find("enable")
    docs = tuple(
        (url, _lang_text(d, "descr"))
        for d in provider.findall("documentation")
        if (url := (d.get("url") or "").strip())
    )
    oauth2 = _oauth2(root, provider, skipped)
    return ClientConfig(
        provider_id=provider.get("id", ""),
        display_name=_text(provider.find("displayName")),
        domains=tuple(_text(d).lower() for d in provider.findall("domain") if _text(d)),
        servers=tuple(servers),
        enable_url=(enable.get("visiturl") or "").strip() if enable is not None else "",
        enable_instructions=(_lang_text(enable, "instruction"),)
        if enable is not None and enable.findall("instruction")
        else (),
        documentation=docs,
        oauth2=oauth2,
        skipped=tuple(skipped),
    )
