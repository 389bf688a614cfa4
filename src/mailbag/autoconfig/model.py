"""What discovery produces: candidates that say where they came from and how far to trust them.

Plain values only; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from mailbag.config.model import DiscoverySettings
from mailbag.protocols.transport import Security


class Source(StrEnum):
    """Where a candidate came from, in priority order (first wins)."""

    BUILTIN = "builtin"
    AUTOCONFIG = "autoconfig"
    WELL_KNOWN = "well-known"
    ISPDB = "ispdb"
    SRV = "srv"
    MX = "mx"
    GUESS = "guess"

    @property
    def priority(self) -> int:
        return list(Source).index(self)


#: a server kind: the incoming protocols plus outgoing SMTP
KINDS = ("imap", "pop3", "smtp")

SECURITY_RANK = {Security.SSL: 0, Security.STARTTLS: 1, Security.NONE: 2}


@dataclass(frozen=True)
class OAuth2Info:
    """A provider's `<oAuth2>` block (Thunderbird's clientConfig extension): where its
    OAuth2 sign-in lives. The client ID is not in it: the user registers one."""

    #: the sign-in service's name (a host name in Thunderbird's files, e.g. login.yahoo.com)
    issuer: str = ""
    #: space-separated scopes to ask for
    scope: str = ""
    auth_url: str = ""
    token_url: str = ""

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split())

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "scopes": list(self.scopes),
            "authorize_url": self.auth_url,
            "token_url": self.token_url,
        }


@dataclass(frozen=True)
class Candidate:
    """One server setting somebody suggested."""

    protocol: str  # "imap" | "pop3" | "smtp"
    host: str
    port: int
    security: Security
    username: str
    auth: tuple[str, ...]  # "password", "oauth2", "password-encrypted", ...
    source: Source
    trusted: bool
    notes: tuple[str, ...] = ()
    #: the order the source listed it in (the provider's own preference)
    rank: int = 0
    #: the OAuth2 sign-in the same source published for these servers
    oauth2: OAuth2Info | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "protocol": self.protocol,
            "host": self.host,
            "port": self.port,
            "security": self.security.value,
            "username": self.username,
            "auth": list(self.auth),
            "source": self.source.value,
            "trusted": self.trusted,
            "notes": list(self.notes),
        }
        if self.oauth2 is not None:
            doc["oauth2"] = self.oauth2.to_json()
        return doc

    def with_notes(self, *notes: str) -> Candidate:
        return replace(self, notes=tuple(dict.fromkeys((*self.notes, *notes))))


@dataclass(frozen=True)
class SourceReport:
    """How one source went: "found", "nothing", "failed" or "skipped" (not waited for)."""

    source: Source
    status: str
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"source": self.source.value, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Discovery:
    """The outcome of `discover`: every candidate, and the choice made from them."""

    email: str
    candidates: tuple[Candidate, ...]
    incoming: Candidate | None
    smtp: Candidate | None
    reports: tuple[SourceReport, ...] = ()
    #: registered domains discovery may use without asking (address, MX)
    allowed_domains: tuple[str, ...] = ()
    #: why nothing (or only part) was chosen, in plain words
    problems: tuple[str, ...] = ()

    @property
    def oauth2(self) -> OAuth2Info | None:
        """The OAuth2 sign-in published with the chosen servers (incoming first)."""
        for chosen in (self.incoming, self.smtp):
            if chosen is not None and chosen.oauth2 is not None:
                return chosen.oauth2
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "candidates": [c.to_json() for c in self.candidates],
            "chosen": {
                "incoming": self.incoming.to_json() if self.incoming else None,
                "smtp": self.smtp.to_json() if self.smtp else None,
            },
            "sources": [r.to_json() for r in self.reports],
            "problems": list(self.problems),
            "oauth2": self.oauth2.to_json() if self.oauth2 is not None else None,
        }


@dataclass(frozen=True)
class DiscoveryOptions:
    """How discovery runs; the endpoints come from `[discovery]` in config.toml."""

    settings: DiscoverySettings = field(default_factory=DiscoverySettings)
    #: allow choosing a plaintext ("none") configuration
    insecure: bool = False
    #: also try plain-HTTP autoconfig (without the address): only with the user's consent
    allow_http: bool = False
    #: registered domains the user accepted although they are outside the address's domain
    allow_domains: frozenset[str] = frozenset()
    #: "imap" or "pop3" when the user asked for one; None = IMAP preferred
    protocol: str | None = None
    #: CA to trust when probing servers (the account's --ca-file)
    probe_ca_file: Path | None = None
    #: standard port -> port actually probed (tests run servers on free ports)
    port_map: dict[int, int] = field(default_factory=dict)
    #: sources to run (default: all)
    sources: tuple[Source, ...] = tuple(Source)
