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
    #: "outgoing server requires authentication"
    requires_auth: bool = True


@dataclass(frozen=True)
class Account:
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

    def __post_init__(self) -> None:
        if "@" not in self.email or self.email.startswith("@") or self.email.endswith("@"):
            raise ConfigError(f"invalid email address {self.email!r}")
        if not self.name:
            raise ConfigError("account name must not be empty")

    @property
    def all_addresses(self) -> tuple[str, ...]:
        return (self.email, *self.identities)
