"""The account model: frozen values, validated on construction.

Loading and saving (`config.toml`) and secrets live in sibling modules; this
module only says what an account is. Secrets are never fields here: an account
names where its secret comes from (`SecretRef`), not the secret itself.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from mailbag.errors import ConfigError
from mailbag.protocols.transport import Endpoint, Security
from mailbag.record import FrozenRecord, replace


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


# The classes here are frozen records (mailbag.record): plain code, no dataclass to
# build at import (every command loads this module); `replace` works as for dataclasses.


class SecretRef(FrozenRecord):
    """Where a secret comes from; `key` is the keyring user name or the command."""

    __slots__ = ("key", "source")
    source: SecretSource
    key: str

    def __init__(self, source: SecretSource = SecretSource.KEYRING, key: str = "") -> None:
        self._set("source", source)
        self._set("key", key)


class Server(FrozenRecord):
    """An incoming mail server: where it is, how to reach it, who logs in and how."""

    __slots__ = ("auth", "host", "port", "secret", "security", "username")
    host: str
    port: int
    security: Security
    username: str
    auth: AuthMethod
    secret: SecretRef

    def __init__(
        self,
        host: str,
        port: int,
        security: Security,
        username: str,
        auth: AuthMethod = AuthMethod.PASSWORD,
        secret: SecretRef | None = None,
    ) -> None:
        self._set("host", host)
        self._set("port", port)
        self._set("security", security)
        self._set("username", username)
        self._set("auth", auth)
        self._set("secret", SecretRef() if secret is None else secret)
        if not self.host or any(c.isspace() for c in self.host):
            raise ConfigError(f"invalid host name {self.host!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"invalid port {self.port}: must be 1-65535")

    def endpoint(self, ca_file: Path | None, timeout: float = 30.0) -> Endpoint:
        return Endpoint(self.host, self.port, self.security, ca_file, timeout)


class SmtpServer(Server):
    """The submission (SMTP) server of an account."""

    __slots__ = ("requires_auth",)
    #: "outgoing server requires authentication"
    requires_auth: bool

    def __init__(
        self,
        host: str,
        port: int,
        security: Security,
        username: str,
        auth: AuthMethod = AuthMethod.PASSWORD,
        secret: SecretRef | None = None,
        requires_auth: bool = True,
    ) -> None:
        self._set("requires_auth", requires_auth)
        super().__init__(host, port, security, username, auth, secret)


class SyncOptions(FrozenRecord):
    """Per-account IMAP sync options (`[accounts.NAME.sync]`)."""

    __slots__ = ("exclude", "include", "mass_delete_threshold")
    #: folder name globs to sync (fnmatch syntax, `/` or the server's delimiter as written)
    include: tuple[str, ...]
    #: folder name globs never synced, even when `include` matches
    exclude: tuple[str, ...]
    #: a run that would delete more than this many messages from one side of one
    #: folder stops and asks for --force (missing local state is never a deletion)
    mass_delete_threshold: int

    def __init__(
        self,
        include: tuple[str, ...] = ("*",),
        exclude: tuple[str, ...] = (),
        mass_delete_threshold: int = 50,
    ) -> None:
        self._set("include", include)
        self._set("exclude", exclude)
        self._set("mass_delete_threshold", mass_delete_threshold)
        if self.mass_delete_threshold < 0:
            raise ConfigError(
                f"invalid mass_delete_threshold {self.mass_delete_threshold}: must be 0 or more"
            )


class PopOptions(FrozenRecord):
    """Per-account POP3 download options (`[accounts.NAME.pop]`)."""

    __slots__ = (
        "delete_after_days",
        "delete_when_deleted_here",
        "leave_on_server",
        "max_per_session",
        "max_size",
        "oversize",
    )
    #: keep messages on the server after downloading them (the safe default)
    leave_on_server: bool
    #: when leaving mail on the server, delete it there this many days after download
    delete_after_days: int | None
    #: delete a message on the server when it is deleted here
    delete_when_deleted_here: bool
    #: messages larger than this many bytes are not downloaded (None = no limit)
    max_size: int | None
    #: what happens to a message over max_size: "skip" (stays on the server only) or
    #: "headers" (only its header is stored here; the server copy is never removed)
    oversize: str
    #: download at most this many messages per sync (None = no cap); the rest next time
    max_per_session: int | None

    def __init__(
        self,
        leave_on_server: bool = True,
        delete_after_days: int | None = None,
        delete_when_deleted_here: bool = False,
        max_size: int | None = None,
        oversize: str = "skip",
        max_per_session: int | None = None,
    ) -> None:
        self._set("leave_on_server", leave_on_server)
        self._set("delete_after_days", delete_after_days)
        self._set("delete_when_deleted_here", delete_when_deleted_here)
        self._set("max_size", max_size)
        self._set("oversize", oversize)
        self._set("max_per_session", max_per_session)
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


class OAuth2Settings(FrozenRecord):
    """How an account signs in with OAuth2 (`[accounts.NAME.oauth2]`, or once per
    provider in `[oauth2.PROVIDER]`). Empty values mean "the provider's default";
    the provider definitions and flows live in `mailbag.auth`."""

    __slots__ = (
        "authorize_url",
        "client_id",
        "client_secret_keyring",
        "device_url",
        "issuer",
        "provider",
        "revocation_url",
        "scopes",
        "tenant",
        "token_url",
    )
    provider: str
    client_id: str
    #: keyring entry (service "mailbag") holding the client secret; "" = public client
    client_secret_keyring: str
    #: Microsoft authority: common, consumers, organizations or a tenant ID
    tenant: str
    scopes: tuple[str, ...]
    issuer: str
    authorize_url: str
    token_url: str
    device_url: str
    revocation_url: str

    def __init__(
        self,
        provider: str = "generic",
        client_id: str = "",
        client_secret_keyring: str = "",
        tenant: str = "",
        scopes: tuple[str, ...] = (),
        issuer: str = "",
        authorize_url: str = "",
        token_url: str = "",
        device_url: str = "",
        revocation_url: str = "",
    ) -> None:
        self._set("provider", provider)
        self._set("client_id", client_id)
        self._set("client_secret_keyring", client_secret_keyring)
        self._set("tenant", tenant)
        self._set("scopes", scopes)
        self._set("issuer", issuer)
        self._set("authorize_url", authorize_url)
        self._set("token_url", token_url)
        self._set("device_url", device_url)
        self._set("revocation_url", revocation_url)
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
        changes = {
            name: getattr(fallback, name)
            for name in self._all_fields()
            if name != "provider" and not getattr(self, name)
        }
        return replace(self, **changes)


class Account(FrozenRecord):
    """One account as `config.toml` describes it (validated, immutable)."""

    __slots__ = (
        "ca_file",
        "display_name",
        "email",
        "identities",
        "incoming",
        "name",
        "oauth2",
        "pop",
        "protocol",
        "server_saves_sent",
        "smtp",
        "sync",
    )
    name: str
    email: str
    protocol: Protocol
    incoming: Server
    smtp: SmtpServer
    display_name: str
    identities: tuple[str, ...]
    ca_file: Path | None
    #: the server files sent mail into Sent by itself (learned by `account test`)
    server_saves_sent: bool
    sync: SyncOptions
    pop: PopOptions
    #: OAuth2 sign-in settings (used when a server's auth is oauth2)
    oauth2: OAuth2Settings | None

    def __init__(
        self,
        name: str,
        email: str,
        protocol: Protocol,
        incoming: Server,
        smtp: SmtpServer,
        display_name: str = "",
        identities: tuple[str, ...] = (),
        ca_file: Path | None = None,
        server_saves_sent: bool = False,
        sync: SyncOptions | None = None,
        pop: PopOptions | None = None,
        oauth2: OAuth2Settings | None = None,
    ) -> None:
        self._set("name", name)
        self._set("email", email)
        self._set("protocol", protocol)
        self._set("incoming", incoming)
        self._set("smtp", smtp)
        self._set("display_name", display_name)
        self._set("identities", identities)
        self._set("ca_file", ca_file)
        self._set("server_saves_sent", server_saves_sent)
        self._set("sync", SyncOptions() if sync is None else sync)
        self._set("pop", PopOptions() if pop is None else pop)
        self._set("oauth2", oauth2)
        if "@" not in self.email or self.email.startswith("@") or self.email.endswith("@"):
            raise ConfigError(f"invalid email address {self.email!r}")
        if not self.name:
            raise ConfigError("account name must not be empty")

    @property
    def all_addresses(self) -> tuple[str, ...]:
        return (self.email, *self.identities)


#: Thunderbird's public ISPDB (clientConfig v1.1 by domain); queried at run time only
DEFAULT_ISPDB_URL = "https://autoconfig.thunderbird.net/v1.1/"


class DiscoverySettings(FrozenRecord):
    """Where discovery looks (`[discovery]`); every endpoint can be pointed elsewhere."""

    __slots__ = (
        "ca_file",
        "dns_port",
        "dns_server",
        "http_port",
        "https_port",
        "ispdb_url",
        "timeout",
    )
    #: base URL of the ISPDB; the domain is appended
    ispdb_url: str
    #: DNS server for SRV/MX/A look-ups (None = the system's resolver)
    dns_server: str | None
    dns_port: int
    #: port for the provider's autoconfig HTTPS fetches
    https_port: int
    #: port for plain-HTTP autoconfig (only ever tried with the user's consent)
    http_port: int
    #: trust exactly this CA for autoconfig/ISPDB HTTPS (None = the system's roots)
    ca_file: Path | None
    #: seconds each source may take
    timeout: float

    def __init__(
        self,
        ispdb_url: str = DEFAULT_ISPDB_URL,
        dns_server: str | None = None,
        dns_port: int = 53,
        https_port: int = 443,
        http_port: int = 80,
        ca_file: Path | None = None,
        timeout: float = 6.0,
    ) -> None:
        self._set("ispdb_url", ispdb_url)
        self._set("dns_server", dns_server)
        self._set("dns_port", dns_port)
        self._set("https_port", https_port)
        self._set("http_port", http_port)
        self._set("ca_file", ca_file)
        self._set("timeout", timeout)
