"""Shared helpers for the POP3 tests: a sandbox with POP users of its own, accounts for it."""

from __future__ import annotations

import itertools
from pathlib import Path

from mailbag.config.model import (
    Account,
    PopOptions,
    Protocol,
    SecretRef,
    SecretSource,
    Server,
    SmtpServer,
)
from mailbag.protocols.transport import Security
from mailbag.sandbox import Sandbox

POP_USERS = {f"pop{i}": f"pop{i}-secret" for i in range(1, 41)}
_next_user = itertools.count(1)


def take_user() -> str:
    """A POP user no other test of this run has touched (empty mailbox)."""
    return f"pop{next(_next_user)}"


def pop_account(
    sb: Sandbox,
    user: str,
    *,
    pop: PopOptions | None = None,
    port: int | None = None,
    security: Security = Security.SSL,
    name: str | None = None,
) -> Account:
    secret = SecretRef(SecretSource.COMMAND, f"echo {sb.password(user)}")
    return Account(
        name=name or user,
        email=sb.address(user),
        protocol=Protocol.POP3,
        incoming=Server(
            sb.host,
            port or (sb.ports.pop3s if security is Security.SSL else sb.ports.pop3),
            security,
            sb.address(user),
            secret=secret,
        ),
        smtp=SmtpServer(sb.host, 1, Security.SSL, sb.address(user), secret=secret),
        ca_file=Path(sb.ca_file),
        pop=pop or PopOptions(),
    )


def server_bodies(sb: Sandbox, user: str) -> list[bytes]:
    """The exact messages in the server INBOX, in order (via an independent IMAP client)."""
    with sb.control(user) as imap:
        bodies = imap.fetch_bodies("INBOX")
    return [bodies[u] for u in sorted(bodies)]
