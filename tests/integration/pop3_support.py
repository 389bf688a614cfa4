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


# --- until mailbag.protocols.pop3 lands: a stdlib client behind the engine's PopWire ----------

import poplib  # noqa: E402
import ssl  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from typing import BinaryIO  # noqa: E402

from mailbag.errors import NetworkError, ProtocolError  # noqa: E402
from mailbag.protocols.trace import Transcript  # noqa: E402

poplib._MAXLINE = 1 << 20  # type: ignore[attr-defined]


class PoplibWire:
    def __init__(self, account: Account, password: str) -> None:
        ctx = ssl.create_default_context(cafile=str(account.ca_file))
        try:
            self.p = poplib.POP3_SSL(account.incoming.host, account.incoming.port, context=ctx)
        except ConnectionRefusedError as exc:
            raise NetworkError("refused", cause="refused") from exc
        self.p.user(account.incoming.username)
        self.p.pass_(password)
        self._caps = frozenset(self.p.capa())

    def capabilities(self) -> frozenset[str]:
        return self._caps

    def uidl_all(self) -> dict[int, str]:
        try:
            _, lines, _ = self.p.uidl()
        except poplib.error_proto as exc:
            raise ProtocolError(str(exc)) from exc
        return {int(a): b.decode() for a, b in (ln.split() for ln in lines)}

    def list_all(self) -> dict[int, int]:
        _, lines, _ = self.p.list()
        return {int(a): int(b) for a, b in (ln.split() for ln in lines)}

    def top(self, number: int, lines: int) -> bytes:
        _, got, _ = self.p.top(number, lines)
        return b"".join(ln + b"\r\n" for ln in got)

    def retr_into(
        self, numbers: Sequence[int], open_sink: Callable[[int], BinaryIO]
    ) -> Iterator[int]:
        for n in numbers:
            try:
                _, lines, _ = self.p.retr(n)
            except (OSError, EOFError, poplib.error_proto) as exc:
                raise NetworkError(f"dropped: {exc}", cause="dropped") from exc
            open_sink(n).write(b"".join(ln + b"\r\n" for ln in lines))
            yield n

    def dele(self, number: int) -> None:
        self.p.dele(number)

    def quit(self) -> None:
        self.p.quit()

    def close(self) -> None:
        self.p.close()


def poplib_connect(account: Account, password: str, transcript: Transcript) -> PoplibWire:
    return PoplibWire(account, password)
