"""The real connections behind the outbox: SMTP submission, and the Sent/Drafts copies.

`send_outbox` is what the CLI (and `mailbag sync`) call. The SMTP session
comes from `mailbag.protocols.smtp`, the Sent and Drafts copies go to the IMAP
server by APPEND (`mailbag.protocols.imap`) or, for POP3 accounts, into the
local store. Before any APPEND the folder is searched for the Message-ID, so a
copy interrupted by a crash is never made twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mailbag.config import Account, Config
from mailbag.config.model import AuthMethod, Protocol
from mailbag.config.secrets import Which, get_secret
from mailbag.errors import MailbagError, NetworkError, ProtocolError
from mailbag.paths import Paths
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.store.outbox import Outbox, OutboxRecord
from mailbag.sync.outbox import (
    DataOutcome,
    EventCallback,
    FlushResult,
    Reply,
    SmtpSession,
    flush,
)

if TYPE_CHECKING:
    from mailbag.protocols.smtp import SmtpClient, SmtpReply

__all__ = ["SecretGetter", "send_outbox"]

SecretGetter = Callable[[Account, Which], str]

#: names tried, in order, when the server marks no folder \Sent / \Drafts (RFC 6154)
SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "INBOX.Sent", "INBOX/Sent")
DRAFTS_NAMES = ("Drafts", "INBOX.Drafts", "INBOX/Drafts")


def send_outbox(
    paths: Paths,
    config: Config,
    *,
    transcript: Transcript = NO_TRACE,
    ids: Sequence[str] | None = None,
    only_accounts: Sequence[str] | None = None,
    respect_backoff: bool = True,
    wait: float = 0.0,
    secret: SecretGetter = get_secret,
    on_event: EventCallback | None = None,
) -> FlushResult:
    """Send what is due in the outbox of `paths` (or exactly `ids`)."""
    outbox = Outbox.open(paths)
    return flush(
        outbox,
        dict(config.accounts),
        open_smtp=lambda account: open_smtp(account, secret, transcript),
        copier=lambda account, record, data: save_copy(
            paths, account, record, data, "sent", secret, transcript
        ),
        draft_saver=lambda account, record, data: save_copy(
            paths, account, record, data, "drafts", secret, transcript
        ),
        on_sent=lambda account, record: mark_answered(paths, record),
        ids=ids,
        only_accounts=only_accounts,
        respect_backoff=respect_backoff,
        wait=wait,
        on_event=on_event,
    )


# --- SMTP --------------------------------------------------------------------------------


def open_smtp(account: Account, secret: SecretGetter, transcript: Transcript) -> SmtpSession:
    """A logged-in submission session for `account`."""
    from mailbag.auth.login import open_smtp as connect

    smtp = account.smtp
    # OAuth2: the shared login gets an access token from the stored sign-in itself
    needs_password = smtp.requires_auth and smtp.auth is not AuthMethod.OAUTH2
    password = secret(account, "smtp") if needs_password else None
    return SubmissionSession(connect(account, secret=password, transcript=transcript))


class SubmissionSession:
    """`SmtpSession` on top of `mailbag.protocols.smtp.SmtpClient`."""

    def __init__(self, client: SmtpClient) -> None:
        self.client = client

    @property
    def size_limit(self) -> int | None:
        return self.client.size_limit

    @property
    def smtputf8(self) -> bool:
        return self.client.smtputf8

    @property
    def eight_bit_mime(self) -> bool:
        return self.client.eight_bit_mime

    def mail(self, sender: str, *, size: int, smtputf8: bool, eight_bit: bool) -> Reply:
        return _reply(self.client.mail(sender, size=size, smtputf8=smtputf8, eight_bit=eight_bit))

    def rcpt(self, recipient: str) -> Reply:
        return _reply(self.client.rcpt(recipient))

    def data(self, message: bytes, *, before_end: Callable[[], None]) -> DataOutcome:
        try:
            start, end = self.client.data(message, before_end=before_end)
        except NetworkError as exc:
            if exc.fields.get("after_end"):
                return DataOutcome(cut_after_end=exc)
            raise
        if end is None:
            return DataOutcome(refused=_reply(start))
        return DataOutcome(end=_reply(end))

    def close(self) -> None:
        # QUIT politely; a broken connection is simply closed
        self.client.quit()


def _reply(reply: SmtpReply) -> Reply:
    text = f"{reply.enhanced} {reply.text}" if reply.enhanced else reply.text
    return Reply(reply.code, text.strip())


# --- Sent and Drafts copies ---------------------------------------------------------------


def save_copy(
    paths: Paths,
    account: Account,
    record: OutboxRecord,
    data: bytes,
    role: str,
    secret: SecretGetter,
    transcript: Transcript,
) -> None:
    """File `data` in the account's Sent or Drafts folder, once."""
    if account.protocol is Protocol.POP3:
        _save_local(paths, account, record, data, role)
    else:
        _append_imap(account, record, data, role, secret, transcript)


def _save_local(
    paths: Paths, account: Account, record: OutboxRecord, data: bytes, role: str
) -> None:
    from mailbag.store.index import Store

    name = "Sent" if role == "sent" else "Drafts"
    flags = {"\\Seen"} if role == "sent" else {"\\Seen", "\\Draft"}
    with Store.open(paths) as store:
        folder = store.folder_by_role(account.name, role) or store.folder(
            account.name, name, role=role
        )
        for m in store.folder_messages(folder):
            if m.message_id == record.message_id and not m.gone:
                return  # a copy from an attempt that was interrupted after saving
        store.add_bytes(folder, data, flags=flags)


def _append_imap(
    account: Account,
    record: OutboxRecord,
    data: bytes,
    role: str,
    secret: SecretGetter,
    transcript: Transcript,
) -> None:
    from mailbag.auth.login import open_imap

    oauth2 = account.incoming.auth is AuthMethod.OAUTH2
    password = None if oauth2 else secret(account, "incoming")
    client = open_imap(account, secret=password, transcript=transcript)
    try:
        folder = _find_folder(client, role)
        client.select(folder)
        quoted = _quoted(record.message_id)
        if quoted is not None and client.uid_search(f"HEADER Message-ID {quoted}").count:
            return  # a copy from an attempt that was interrupted after the APPEND
        flags = ["\\Seen"] if role == "sent" else ["\\Seen", "\\Draft"]
        client.append(folder, data, flags)
    finally:
        with contextlib.suppress(MailbagError, OSError):
            client.logout()
        client.close()


def _quoted(text: str) -> str | None:
    """An IMAP quoted string, or None when the text cannot be one (then no search)."""
    if not text or len(text) > 900 or not all(0x20 <= ord(c) <= 0x7E for c in text):
        return None
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _find_folder(client: object, role: str) -> str:
    from mailbag.protocols.imap.client import ImapClient

    assert isinstance(client, ImapClient)
    wanted = "\\SENT" if role == "sent" else "\\DRAFTS"
    folders = client.list_folders()
    for info in folders:
        if info.special_use and info.special_use.upper() == wanted and info.selectable:
            return info.name
    names = {info.name.lower(): info.name for info in folders if info.selectable}
    for candidate in SENT_NAMES if role == "sent" else DRAFTS_NAMES:
        if candidate.lower() in names:
            return names[candidate.lower()]
    name = "Sent" if role == "sent" else "Drafts"
    try:
        client.create(name)
    except ProtocolError as exc:
        raise ProtocolError(
            f"the server has no {name} folder and refused to create one: {exc.message}",
            hint=f"create a {name} folder with another mail program or the webmail",
        ) from exc
    return name


def mark_answered(paths: Paths, record: OutboxRecord) -> None:
    """Flag the message a sent reply answers (\\Answered); the next sync pushes it."""
    if record.answers is None:
        return
    from mailbag.store.index import Store

    with Store.open(paths) as store:
        message = store.get(record.answers)
        if message is not None and not message.gone and "\\Answered" not in message.flags:
            with contextlib.suppress(MailbagError):
                store.set_flags(message, {*message.flags, "\\Answered"})
