"""The account model: frozen values, validated on construction.

Loading and saving (`config.toml`) and secrets live in sibling modules; this
module only says what an account is. Secrets are never fields here: an account
names where its secret comes from (`SecretRef`), not the secret itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from mailbag.errors import ConfigError
from mailbag.protocols.transport import Endpoint, Security


class Protocol(StrEnum):
    IMAP = "imap"
    POP3 = "pop3"


class AuthMethod(StrEnum):
    PASSWORD = "password"  # noqa: S105 - SASL PLAIN / LOGIN (or USER/PASS on POP3)
    OAUTH2 = "oauth2"  # XOAUTH2 / OAUTHBEARER


class SecretSource(StrEnum):
    KEYRING = "keyring"  # the system keyring, under service "mailbag"
    COMMAND = "command"  # run a command, first line of its stdout is the secret
    NONE = "none"  # no secret (e.g. SMTP without authentication)


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from; `key` is the keyring user name or the command."""

    source: SecretSource = SecretSource.KEYRING
    key: str = ""


@dataclass(frozen=True)
class Server:
    """An incoming mail server: where it is, how to reach it, who logs in and how."""

    host: str
    port: int
    security: Security
    username: str
    auth: AuthMethod = AuthMethod.PASSWORD
    secret: SecretRef = field(default_factory=SecretRef)

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() for c in self.host):
            raise ConfigError(f"invalid host name {self.host!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"invalid port {self.port}: must be 1-65535")

    def endpoint(self, ca_file: Path | None, timeout: float = 30.0) -> Endpoint:
        return Endpoint(self.host, self.port, self.security, ca_file, timeout)


@dataclass(frozen=True)
class SmtpServer(Server):
    """The submission (SMTP) server of an account."""

    #: "outgoing server requires authentication"
    requires_auth: bool = True


@dataclass(frozen=True)
class SyncOptions:
    """Per-account IMAP sync options (`[accounts.NAME.sync]`)."""

    #: folder name globs to sync (fnmatch syntax, `/` or the server's delimiter as written)
    include: tuple[str, ...] = ("*",)
    #: folder name globs never synced, even when `include` matches
    exclude: tuple[str, ...] = ()
    #: a run that would delete more than this many messages from one side of one
    #: folder stops and asks for --force (missing local state is never a deletion)
    mass_delete_threshold: int = 50

    def __post_init__(self) -> None:
        if self.mass_delete_threshold < 0:
            raise ConfigError(
                f"invalid mass_delete_threshold {self.mass_delete_threshold}: must be 0 or more"
            )


@dataclass(frozen=True)
class PopOptions:
    """Per-account POP3 download options (`[accounts.NAME.pop]`)."""

    #: keep messages on the server after downloading them (the safe default)
    leave_on_server: bool = True
    #: when leaving mail on the server, delete it there this many days after download
    delete_after_days: int | None = None
    #: delete a message on the server when it is deleted here
    delete_when_deleted_here: bool = False
    #: messages larger than this many bytes are not downloaded (None = no limit)
    max_size: int | None = None
    #: what happens to a message over max_size: "skip" (stays on the server only) or
    #: "headers" (only its header is stored here; the server copy is never removed)
    oversize: str = "skip"
    #: download at most this many messages per sync (None = no cap); the rest next time
    max_per_session: int | None = None

    def __post_init__(self) -> None:
        if self.oversize not in ("skip", "headers"):
            raise ConfigError(f"invalid oversize {self.oversize!r}: must be 'skip' or 'headers'")
        if self.max_per_session is not None and self.max_per_session <= 0:
            raise ConfigError(
                f"invalid max_per_session {self.max_per_session}: must be a positive number"
            )
        if self.delete_after_days is not None and self.delete_after_days < 0:
            raise ConfigError(
                f"invalid delete_after_days {self.delete_after_days}: must be 0 or more"
            )
        if self.max_size is not None and self.max_size <= 0:
            raise ConfigError(f"invalid max_size {self.max_size}: must be a positive number")


def _https_or_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


#: the OAuth2 providers mailbag knows (`generic` is described by its endpoints)
OAUTH2_PROVIDERS = ("microsoft", "google", "generic")


@dataclass(frozen=True)
class OAuth2Settings:
    """How an account signs in with OAuth2 (`[accounts.NAME.oauth2]`, or once per
    provider in `[oauth2.PROVIDER]`). Empty values mean "the provider's default";
    the provider definitions and flows live in `mailbag.auth`."""

    provider: str = "generic"
    client_id: str = ""
    #: keyring entry (service "mailbag") holding the client secret; "" = public client
    client_secret_keyring: str = ""
    #: Microsoft authority: common, consumers, organizations or a tenant ID
    tenant: str = ""
    scopes: tuple[str, ...] = ()
    issuer: str = ""
    authorize_url: str = ""
    token_url: str = ""
    device_url: str = ""
    revocation_url: str = ""

    def __post_init__(self) -> None:
        if self.provider not in OAUTH2_PROVIDERS:
            raise ConfigError(
                f"unknown OAuth2 provider {self.provider!r}",
                hint="use one of: " + ", ".join(OAUTH2_PROVIDERS),
            )
        for url in (self.authorize_url, self.token_url, self.device_url, self.revocation_url):
            if url and not _https_or_loopback(url):
                raise ConfigError(
                    f"OAuth2 endpoint {url!r} must be an https:// URL",
                    hint="tokens may only travel over HTTPS (or to this machine)",
                )

    def merged(self, fallback: OAuth2Settings | None) -> OAuth2Settings:
        """These settings, with empty values taken from `fallback` (provider-wide)."""
        if fallback is None:
            return self
        from dataclasses import fields, replace

        changes = {
            f.name: getattr(fallback, f.name)
            for f in fields(self)
            if f.name != "provider" and not getattr(self, f.name)
        }
        return replace(self, **changes)


@dataclass(frozen=True)
class Account:
    """One account as `config.toml` describes it (validated, immutable)."""

    name: str
    email: str
    protocol: Protocol
    incoming: Server
    smtp: SmtpServer
    display_name: str = ""
    identities: tuple[str, ...] = ()
    ca_file: Path | None = None
    #: the server files sent mail into Sent by itself (learned by `account test`)
    server_saves_sent: bool = False
    sync: SyncOptions = field(default_factory=SyncOptions)
    pop: PopOptions = field(default_factory=PopOptions)
    #: OAuth2 sign-in settings (used when a server's auth is oauth2)
    oauth2: OAuth2Settings | None = None

    def __post_init__(self) -> None:
        if "@" not in self.email or self.email.startswith("@") or self.email.endswith("@"):
            raise ConfigError(f"invalid email address {self.email!r}")
        if not self.name:
            raise ConfigError("account name must not be empty")

    @property
    def all_addresses(self) -> tuple[str, ...]:
        return (self.email, *self.identities)


#: Thunderbird's public ISPDB (clientConfig v1.1 by domain); queried at run time only
DEFAULT_ISPDB_URL = "https://autoconfig.thunderbird.net/v1.1/"


@dataclass(frozen=True)
class DiscoverySettings:
    """Where discovery looks (`[discovery]`); every endpoint can be pointed elsewhere."""

    #: base URL of the ISPDB; the domain is appended
    ispdb_url: str = DEFAULT_ISPDB_URL
    #: DNS server for SRV/MX/A look-ups (None = the system's resolver)
    dns_server: str | None = None
    dns_port: int = 53
    #: port for the provider's autoconfig HTTPS fetches
    https_port: int = 443
    #: port for plain-HTTP autoconfig (only ever tried with the user's consent)
    http_port: int = 80
    #: trust exactly this CA for autoconfig/ISPDB HTTPS (None = the system's roots)
    ca_file: Path | None = None
    #: seconds each source may take
    timeout: float = 6.0
