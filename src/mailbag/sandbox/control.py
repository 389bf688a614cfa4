"""Change server state as another mail client would, for tests and the demo.

Uses the stdlib `imaplib` (with a verifying TLS context) on purpose: it is an
independent client, so tests of mailbag's own IMAP code are not checked against
themselves.
"""

from __future__ import annotations

import contextlib
import imaplib
import ssl
import time
from collections.abc import Iterable
from types import TracebackType

from mailbag.errors import SandboxError


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapControl:
    """An IMAP session as `user` on the sandbox, for setting up and disturbing state."""

    def __init__(self, host: str, port: int, ca_file: str, user: str, password: str) -> None:
        ctx = ssl.create_default_context(cafile=ca_file)
        self.imap = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
        self.imap.login(user, password)

    def __enter__(self) -> ImapControl:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            self.imap.logout()

    def _ok(self, typ: str, data: list[object], what: str) -> list[object]:
        if typ != "OK":
            raise SandboxError(f"sandbox IMAP {what} failed: {data!r}")
        return data

    def create(self, mailbox: str) -> None:
        typ, data = self.imap.create(_quote(mailbox))
        if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(
            d for d in data if isinstance(d, bytes)
        ):
            raise SandboxError(f"sandbox IMAP CREATE {mailbox} failed: {data!r}")

    def append(
        self,
        mailbox: str,
        message: bytes,
        flags: Iterable[str] = (),
        when: float | None = None,
    ) -> int:
        """APPEND and return the new UID (Dovecot answers APPENDUID)."""
        flag_text = "(" + " ".join(flags) + ")" if flags else None
        date = imaplib.Time2Internaldate(when if when is not None else time.time())
        typ, data = self.imap.append(_quote(mailbox), flag_text, date, message)
        self._ok(typ, list(data), "APPEND")
        text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
        # [APPENDUID <uidvalidity> <uid>] Append completed.
        if "APPENDUID" in text:
            return int(text.split("APPENDUID", 1)[1].split()[1].rstrip("]"))
        raise SandboxError(f"no APPENDUID in {text!r}")

    def select(self, mailbox: str) -> int:
        typ, data = self.imap.select(_quote(mailbox))
        self._ok(typ, list(data), f"SELECT {mailbox}")
        return int(data[0] or 0)

    def uids(self, mailbox: str) -> list[int]:
        self.select(mailbox)
        typ, data = self.imap.uid("SEARCH", "ALL")
        self._ok(typ, list(data), "SEARCH")
        raw = data[0] or b""
        return [int(x) for x in raw.split()] if isinstance(raw, bytes) else []

    def fetch_bodies(self, mailbox: str) -> dict[int, bytes]:
        """UID -> exact BODY[] bytes for every message in the mailbox."""
        self.select(mailbox)
        typ, data = self.imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        self._ok(typ, list(data), "FETCH")
        out: dict[int, bytes] = {}
        for item in data:
            if isinstance(item, tuple):
                head = item[0].decode()
                uid = int(head.split("UID ", 1)[1].split()[0])
                out[uid] = item[1]
        return out

    def flags(self, mailbox: str) -> dict[int, set[str]]:
        self.select(mailbox)
        typ, data = self.imap.uid("FETCH", "1:*", "(UID FLAGS)")
        self._ok(typ, list(data), "FETCH FLAGS")
        out: dict[int, set[str]] = {}
        for item in data:
            if not isinstance(item, bytes):
                continue
            text = item.decode()
            uid = int(text.split("UID ", 1)[1].split()[0].rstrip(")"))
            flags = text.split("FLAGS (", 1)[1].split(")", 1)[0].split()
            out[uid] = set(flags)
        return out

    def store(self, mailbox: str, uids: Iterable[int], op: str, flags: Iterable[str]) -> None:
        """op is '+FLAGS', '-FLAGS' or 'FLAGS'."""
        self.select(mailbox)
        uid_set = ",".join(str(u) for u in uids)
        typ, data = self.imap.uid("STORE", uid_set, op, "(" + " ".join(flags) + ")")
        self._ok(typ, list(data), "STORE")

    def expunge(self, mailbox: str, uids: Iterable[int]) -> None:
        self.store(mailbox, uids, "+FLAGS", ["\\Deleted"])
        uid_set = ",".join(str(u) for u in uids)
        typ, data = self.imap.uid("EXPUNGE", uid_set)
        self._ok(typ, list(data), "UID EXPUNGE")

    def move(self, mailbox: str, uids: Iterable[int], target: str) -> None:
        self.select(mailbox)
        uid_set = ",".join(str(u) for u in uids)
        typ, data = self.imap.uid("MOVE", uid_set, _quote(target))
        self._ok(typ, list(data), "MOVE")

    def rename(self, old: str, new: str) -> None:
        typ, data = self.imap.rename(_quote(old), _quote(new))
        self._ok(typ, list(data), "RENAME")

    def delete_mailbox(self, mailbox: str) -> None:
        typ, data = self.imap.delete(_quote(mailbox))
        self._ok(typ, list(data), "DELETE")

    def mailboxes(self) -> list[str]:
        typ, data = self.imap.list()
        self._ok(typ, list(data), "LIST")
        names = []
        for item in data:
            if isinstance(item, bytes):
                name = item.decode().rsplit(' "/" ', 1)[1]
                names.append(name.strip('"'))
        return names
