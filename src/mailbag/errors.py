"""One exception tree for the whole library.

Every error carries a plain-language message and, where one is known, a hint
that tells the user what to do. The CLI turns these into one line and an exit
code; nothing below the CLI prints or exits.
"""

from __future__ import annotations


class MailbagError(Exception):
    """Base of every error mailbag raises on purpose."""

    #: exit code the CLI uses: 1 = the operation ran and failed, 2 = usage/configuration
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fields: dict[str, object] = dict(fields)

    def __str__(self) -> str:
        return self.message


class ConfigError(MailbagError):
    """Configuration is missing, malformed or inconsistent."""

    exit_code = 2


class UsageError(MailbagError):
    """The command was called with arguments that cannot work."""

    exit_code = 2


class SecretError(ConfigError):
    """A secret could not be read or stored."""


class NetworkError(MailbagError):
    """DNS, TCP connect, timeouts and dropped connections."""


class TLSError(NetworkError):
    """Handshake, certificate or STARTTLS policy failures."""


class AuthError(MailbagError):
    """The server refused the credentials or the mechanism."""


class ProtocolError(MailbagError):
    """The server said something we could not accept (or did not say what we need)."""


class StoreError(MailbagError):
    """The local Maildir or index cannot be read or written."""


class SyncError(MailbagError):
    """A sync step could not be completed safely."""


class SandboxError(MailbagError):
    """The local test servers could not be started."""
