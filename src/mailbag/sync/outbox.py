"""Sending what is in the Outbox: one SMTP transaction per message, recorded
around the DATA phase so that a crash neither loses nor doubles a message.

The decisions are pure (`settle`: what an attempt's replies mean for the
record, `due`: what to try now); the I/O (`flush`, `send_record`) drives the
SMTP client from `mailbag.protocols.smtp` and, for the Sent copy, the IMAP
client (or the local store for POP3 accounts).

Rules:
- Before MAIL FROM the record says `sending` (safe to retry after a crash).
- Right before the final "." of DATA leaves, the record says `data` (fsynced).
  A crash, timeout or cut connection from then until the reply is recorded
  leaves it `uncertain`: it may have been delivered, so it is never resent
  automatically; `mailbag outbox retry ID` resends on the user's word.
- 4xx replies and network trouble keep the message queued, with backoff.
- 5xx replies make it `failed`, kept for the user; the reply is quoted.
- Recipients the server accepted are recorded and never sent to again, so a
  partial acceptance followed by a retry reaches only the others.
- The Sent copy is made once: `appending` is recorded before the APPEND, and
  after a crash the Sent folder is searched for the Message-ID first.

Nothing here prints; progress goes to the `on_event` callback.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailbag.config.model import Account
from mailbag.config.model import Protocol as MailProtocol
from mailbag.errors import (
    AuthError,
    ConfigError,
    MailbagError,
    NetworkError,
    ProtocolError,
    UsageError,
)
from mailbag.message.compose import Composed
from mailbag.protocols.smtp import ReplyCode
from mailbag.store.outbox import CopyState, Outbox, OutboxRecord, OutboxState

__all__ = [
    "Attempt",
    "Reply",
    "backoff_seconds",
    "due",
    "settle",
]

#: first retry after a minute, doubling, at most every hour
BACKOFF_BASE = 60.0
BACKOFF_MAX = 3600.0


@dataclass(frozen=True)
class Reply(ReplyCode):
    """An SMTP reply as the sender needs it."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


@dataclass
class Attempt:
    """What happened in one SMTP transaction (values only, for `settle`)."""

    #: the attempt ended before MAIL FROM (offline, TLS, AUTH, a check failed)
    error: MailbagError | None = None
    #: whether that error means the message itself must change (too big, needs SMTPUTF8)
    error_permanent: bool = False
    mail: Reply | None = None
    rcpt: dict[str, Reply] = field(default_factory=dict)
    #: reply to DATA (354 expected) when it was not 354
    data_start: Reply | None = None
    #: reply to the end of the message
    data_end: Reply | None = None
    #: the connection failed after the final "." was sent and before the reply
    cut_after_data: MailbagError | None = None
    #: the connection failed during MAIL/RCPT/DATA before the final "."
    cut_before_data: MailbagError | None = None


def backoff_seconds(failures: int) -> float:
    return float(min(BACKOFF_BASE * 2 ** max(failures - 1, 0), BACKOFF_MAX))


def _error(message: str, reply: Reply | None, *, permanent: bool, cause: str) -> dict[str, Any]:
    return {
        "message": message,
        "reply": str(reply) if reply is not None else None,
        "code": reply.code if reply is not None else None,
        "permanent": permanent,
        "cause": cause,
    }


def _defer(record: OutboxRecord, now: float, error: dict[str, Any]) -> OutboxRecord:
    record.state = OutboxState.QUEUED
    record.last_error = error
    record.next_attempt = now + backoff_seconds(record.attempts)
    record.note("deferred", error["message"])
    return record


def _fail(record: OutboxRecord, error: dict[str, Any]) -> OutboxRecord:
    record.state = OutboxState.FAILED
    record.last_error = error
    record.next_attempt = None
    record.note("failed", error["message"])
    return record


def settle(record: OutboxRecord, attempt: Attempt, now: float) -> OutboxRecord:
    """The record after `attempt` (mutated and returned). Pure: no I/O."""
    record.attempt_id = None
    if attempt.error is not None:
        err = _error(
            attempt.error.message,
            None,
            permanent=attempt.error_permanent,
            cause=str(attempt.error.fields.get("cause", type(attempt.error).__name__)),
        )
        if attempt.error.hint:
            err["hint"] = attempt.error.hint
        return _fail(record, err) if attempt.error_permanent else _defer(record, now, err)
    if attempt.cut_after_data is not None:
        record.state = OutboxState.UNCERTAIN
        record.last_error = _error(
            "the connection ended after the message was handed over "
            f"({attempt.cut_after_data.message}); it may have been delivered",
            None,
            permanent=False,
            cause="uncertain",
        )
        record.next_attempt = None
        record.note("uncertain", record.last_error["message"])
        return record
    mail = attempt.mail
    if mail is not None and not mail.ok:
        msg = f"the server refused the sender {record.envelope_from}: {mail}"
        err = _error(msg, mail, permanent=mail.permanent, cause="mail-from")
        return _fail(record, err) if mail.permanent else _defer(record, now, err)
    accepted = [r for r in record.recipients if r in attempt.rcpt and attempt.rcpt[r].ok]
    deferred = [r for r in record.recipients if r in attempt.rcpt and attempt.rcpt[r].transient]
    refused = [r for r in record.recipients if r in attempt.rcpt and attempt.rcpt[r].permanent]
    # recipients the attempt never reached (cut off mid-RCPT) stay to be tried
    untried = [r for r in record.recipients if r not in attempt.rcpt]
    if attempt.cut_before_data is not None or mail is None:
        cut = attempt.cut_before_data
        text = cut.message if cut is not None else "the transaction did not start"
        return _defer(record, now, _error(text, None, permanent=False, cause="network"))
    for r in refused:
        record.rejected.append({"address": r, "reply": str(attempt.rcpt[r])})
    if not accepted:
        record.recipients = [*deferred, *untried]
        if record.recipients:
            first = attempt.rcpt[deferred[0]] if deferred else None
            return _defer(
                record,
                now,
                _error(
                    f"the server deferred the recipients: {first}",
                    first,
                    permanent=False,
                    cause="rcpt",
                ),
            )
        first = attempt.rcpt[refused[0]] if refused else None
        return _fail(
            record,
            _error(
                f"the server refused every recipient: {first}",
                first,
                permanent=True,
                cause="rcpt",
            ),
        )
    record.recipients = [*accepted, *deferred, *untried]
    reply = attempt.data_start if attempt.data_start is not None else attempt.data_end
    if reply is None:
        return _defer(
            record, now, _error("no reply to the message", None, permanent=False, cause="data")
        )
    if not reply.ok:
        msg = f"the server refused the message: {reply}"
        err = _error(msg, reply, permanent=reply.permanent, cause="data")
        return _fail(record, err) if reply.permanent else _defer(record, now, err)
    # accepted: these recipients are done for good
    record.delivered.extend(accepted)
    record.recipients = [*deferred, *untried]
    record.sent_at = record.sent_at or now
    record.note("accepted", f"{reply} for {', '.join(accepted)}")
    if record.recipients:
        first = attempt.rcpt[deferred[0]] if deferred else None
        return _defer(
            record,
            now,
            _error(
                "sent to " + ", ".join(accepted) + "; the others were deferred, will retry them",
                first,
                permanent=False,
                cause="rcpt",
            ),
        )
    if record.rejected:
        record.state = OutboxState.FAILED
        record.last_error = _error(
            "sent to "
            + ", ".join(record.delivered)
            + "; refused: "
            + "; ".join(f"{x['address']} ({x['reply']})" for x in record.rejected),
            None,
            permanent=True,
            cause="partial",
        )
        record.next_attempt = None
        return record
    record.state = OutboxState.SENT
    record.last_error = None
    record.next_attempt = None
    return record


def due(records: Sequence[OutboxRecord], now: float, *, respect_backoff: bool) -> list[str]:
    """IDs to try now: queued ones (when their backoff has passed), and sent ones
    whose Sent copy is still to be made."""
    out = []
    for r in records:
        if r.state is OutboxState.QUEUED:
            if not respect_backoff or r.next_attempt is None or r.next_attempt <= now:
                out.append(r.id)
        elif (
            r.state is OutboxState.SENT and r.copy in (CopyState.PENDING, CopyState.APPENDING)
        ) or (r.state is OutboxState.DRAFT):
            out.append(r.id)
        elif r.state is OutboxState.FAILED and r.delivered and r.copy is CopyState.PENDING:
            # partly delivered: the copy of what went out is still owed
            out.append(r.id)
    return out


def retry(outbox: Outbox, record_id: str) -> OutboxRecord:
    """The user asks to send a failed or uncertain message again."""
    with outbox.locked(wait=30):
        record = outbox.get(record_id)
        if record.state not in (OutboxState.FAILED, OutboxState.UNCERTAIN, OutboxState.QUEUED):
            raise UsageError(
                f"outbox message {record_id} is {record.state.value}; nothing to retry"
            )
        if record.state is OutboxState.FAILED and record.rejected:
            record.recipients = [*record.recipients, *(x["address"] for x in record.rejected)]
            record.rejected = []
        record.state = OutboxState.QUEUED
        record.next_attempt = None
        record.note("retry", "requested by the user")
        outbox.save(record)
        return record


def drop(outbox: Outbox, record_id: str) -> OutboxRecord:
    with outbox.locked(wait=30):
        record = outbox.get(record_id)
        outbox.remove(record_id)
        return record


# --- what a refusal means ------------------------------------------------------------------

# Enhanced status codes (RFC 3463) and texts that submission servers commonly
# answer with, and what the user can do. Provider-specific login refusals are
# translated by `mailbag.diagnose.causes.translate_reply`; this table is about
# sending. Kept in one function so it can move into the diagnose table.
_SEND_REPLIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\b5\.7\.60\b|SendAsDenied|not allowed to send as|Sender address rejected", re.I
        ),
        "the server does not let this account send with that From address; send from the "
        "account's own address or ask the provider to allow the alias",
    ),
    (
        re.compile(
            r"\b5\.1\.1\b|user unknown|no such user|mailbox unavailable|"
            r"does not exist|recipient address rejected",
            re.I,
        ),
        "the recipient address does not exist: check it for typos",
    ),
    (
        re.compile(
            r"relay access denied|relaying denied|\b5\.7\.1\b.*relay|"
            r"not permitted to relay",
            re.I,
        ),
        "the server refuses to pass mail on for this sender: log in (the account's SMTP "
        "username/password) or send through your own provider's server",
    ),
    (
        re.compile(r"\b5\.3\.4\b|\b552\b|message (?:size|too big)|exceeds.*size", re.I),
        "the message is too big for the server: remove or shrink attachments",
    ),
    (
        re.compile(r"\b5\.7\.26\b|\bDMARC\b|\bSPF\b|\bDKIM\b", re.I),
        "the receiving side could not authenticate the sender domain (SPF/DKIM/DMARC): "
        "send from your provider's server with your own address",
    ),
    (
        re.compile(
            r"\b4\.7\.0\b.*(?:rate|limit)|too many (?:messages|recipients|connections)|"
            r"rate limit|try again later|\b421\b|\b4\.2\.1\b|greylist",
            re.I,
        ),
        "the server asks to try later (rate limit or greylisting); mailbag retries by itself",
    ),
    (
        re.compile(
            r"\bspam\b|\b5\.7\.(?:0|1)\b.*(?:policy|content|block)|"
            r"\b5\.7\.(?:5\d\d|7\d\d)\b",
            re.I,
        ),
        "the server judged the message or the account as abusive; change the content or "
        "ask the provider why (quote the reply above)",
    ),
    (
        re.compile(r"\b5\.7\.0\b.*STARTTLS|must issue a STARTTLS|encryption required", re.I),
        "the server wants TLS: set the account's SMTP security to starttls or ssl",
    ),
    (
        re.compile(r"\b530\b|\b5\.7\.0\b.*auth|authentication required", re.I),
        "the server wants a login before sending: check the account's SMTP username and "
        "password (mailbag account set-password NAME --smtp)",
    ),
)


def explain_reply(reply: str) -> str | None:
    """What a sending refusal means for the user, when it is a known one."""
    for pattern, hint in _SEND_REPLIES:
        if pattern.search(reply):
            return hint
    return None


# --- putting messages into the outbox ---------------------------------------------------


def enqueue(
    outbox: Outbox, account: Account, composed: Composed, *, answers: int | None = None
) -> OutboxRecord:
    """Write a composed message to the outbox (durably), queued for sending."""
    record = OutboxRecord(
        id="",
        account=account.name,
        state=OutboxState.QUEUED,
        message_id=composed.message_id,
        envelope_from=composed.envelope_from,
        recipients=list(composed.recipients),
        subject=composed.subject,
        bcc=list(composed.bcc),
        smtputf8=composed.smtputf8,
        eight_bit=composed.eight_bit,
        answers=answers,
    )
    record.note("queued")
    return outbox.add(record, composed.data)


def enqueue_draft(outbox: Outbox, account: Account, composed: Composed) -> OutboxRecord:
    """A draft waits in the outbox until it is saved to the Drafts folder."""
    record = OutboxRecord(
        id="",
        account=account.name,
        state=OutboxState.DRAFT,
        message_id=composed.message_id,
        envelope_from=composed.envelope_from,
        recipients=[],
        subject=composed.subject,
    )
    record.note("draft")
    return outbox.add(record, composed.data)


_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def prepare_raw(data: bytes, account: Account) -> tuple[bytes, OutboxRecord]:
    """An RFC 5322 file to send as it is: recipients from To/Cc/Bcc (parsed
    strictly), Bcc lines removed, Message-ID and Date added when missing,
    line ends made CRLF. Nothing else is changed."""
    from mailbag.message.addresses import AddressError, parse_address_list
    from mailbag.message.compose import normalize_crlf
    from mailbag.message.parse import parse_headers

    data = normalize_crlf(data)
    headers, body_start = parse_headers(data)
    if not headers.fields:
        raise UsageError("the file has no header lines; is it an RFC 5322 message?")
    for name in ("to", "cc", "bcc", "from"):
        if name in headers.truncated:
            raise UsageError(f"the {name.capitalize()} header of the file is too large")
    recipients = []
    bcc = []
    for name in ("To", "Cc", "Bcc"):
        for value in headers.get_all(name):
            try:
                found = parse_address_list(value, what=f"the {name} header")
            except AddressError as exc:
                raise UsageError(exc.message, hint="fix the header in the file") from exc
            recipients.extend(found)
            if name == "Bcc":
                bcc.extend(found)
    if not recipients:
        raise UsageError("the file has no recipients (To, Cc or Bcc)")
    # envelope sender: the From address when it is one of the account's, else the account's
    sender = account.email
    from_values = headers.get_all("From")
    if from_values:
        try:
            found = parse_address_list(from_values[0], what="the From header")
        except AddressError as exc:
            raise UsageError(exc.message, hint="fix the header in the file") from exc
        own = {a.lower() for a in account.all_addresses}
        if len(found) == 1 and found[0].addr_spec.lower() in own:
            sender = found[0].addr_spec
    head, body = data[:body_start], data[body_start:]
    head = _strip_header(head, b"bcc")
    extra = b""
    message_id = headers.get("Message-ID") or ""
    if not message_id.strip():
        from mailbag.message.compose import new_message_id

        message_id = new_message_id(sender.rpartition("@")[2])
        extra += b"Message-ID: " + message_id.encode("ascii") + b"\r\n"
    if not headers.get("Date"):
        from email.utils import format_datetime

        extra += b"Date: " + format_datetime(dt.datetime.now(dt.UTC).astimezone()).encode()
        extra += b"\r\n"
    out = extra + head + body
    from mailbag.message.addresses import dedupe

    unique = dedupe(recipients)
    record = OutboxRecord(
        id="",
        account=account.name,
        state=OutboxState.QUEUED,
        message_id=message_id.strip(),
        envelope_from=sender,
        recipients=[a.addr_spec for a in unique],
        subject=headers.decoded("Subject"),
        bcc=[a.addr_spec for a in dedupe(bcc)],
        smtputf8=any(a.needs_smtputf8 for a in unique) or any(b > 127 for b in head),
        eight_bit=any(b > 127 for b in body),
    )
    return out, record


def _strip_header(head: bytes, name: bytes) -> bytes:
    """Remove every `name:` field (with its continuation lines) from a header block."""
    out: list[bytes] = []
    skipping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and line.strip():
            if not skipping:
                out.append(line)
            continue
        m = _HEADER_LINE.match(line)
        skipping = bool(m and m.group(1).lower() == name)
        if not skipping:
            out.append(line)
    return b"".join(out)


def enqueue_raw(outbox: Outbox, account: Account, data: bytes) -> OutboxRecord:
    out, record = prepare_raw(data, account)
    record.note("queued", "raw file")
    return outbox.add(record, out)


# --- the I/O: sending and copying --------------------------------------------------------

#: events reported to `on_event` (tests kill the process at each one)
EVENTS = (
    "attempt",  # state `sending` is on disk; connecting
    "connected",  # logged in; MAIL FROM next
    "data-pending",  # state `data` is on disk; the final "." is about to be sent
    "data-reply",  # the server answered the end of data; not yet recorded
    "settled",  # the attempt's outcome is on disk
    "copy-pending",  # copy state `appending` is on disk; APPEND next
    "copy-done",  # the Sent copy exists; not yet recorded
    "removed",  # the message left the outbox
)

EventCallback = Callable[[str, OutboxRecord], None]


class SmtpSession(Protocol):
    """What the sender needs from an SMTP connection (see `open_smtp`)."""

    @property
    def size_limit(self) -> int | None: ...

    @property
    def smtputf8(self) -> bool: ...

    @property
    def eight_bit_mime(self) -> bool: ...

    def mail(self, sender: str, *, size: int, smtputf8: bool, eight_bit: bool) -> Reply: ...

    def rcpt(self, recipient: str) -> Reply: ...

    def data(self, message: bytes, *, before_end: Callable[[], None]) -> DataOutcome: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DataOutcome:
    #: reply to DATA itself when it was not 354 (the message was never sent)
    refused: Reply | None = None
    #: reply to the end of the message
    end: Reply | None = None
    #: the connection broke after the final "." was sent (outcome unknown)
    cut_after_end: MailbagError | None = None


SmtpOpener = Callable[[Account], SmtpSession]
SentCopier = Callable[[Account, OutboxRecord, bytes], None]
SentHook = Callable[[Account, OutboxRecord], None]


@dataclass
class SendReport:
    """What happened to one outbox message in a flush (for the CLI and --json)."""

    id: str
    account: str
    state: str
    subject: str
    message_id: str
    recipients: list[dict[str, str | None]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    copy: str | None = None
    copy_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "state": self.state,
            "subject": self.subject,
            "message_id": self.message_id,
            "recipients": self.recipients,
            "error": self.error,
            "copy": self.copy,
            "copy_error": self.copy_error,
        }


def _report(record: OutboxRecord, attempt: Attempt | None) -> SendReport:
    rows: list[dict[str, str | None]] = []
    replies = attempt.rcpt if attempt is not None else {}
    for r in record.delivered:
        rows.append({"address": r, "status": "accepted", "reply": _s(replies.get(r))})
    for x in record.rejected:
        rows.append({"address": x["address"], "status": "rejected", "reply": x["reply"]})
    for r in record.recipients:
        status = "pending" if record.state is OutboxState.QUEUED else record.state.value
        if record.state is OutboxState.UNCERTAIN:
            status = "unknown"
        rows.append({"address": r, "status": status, "reply": _s(replies.get(r))})
    return SendReport(
        id=record.id,
        account=record.account,
        state=record.state.value,
        subject=record.subject,
        message_id=record.message_id,
        recipients=rows,
        error=record.last_error,
        copy=record.copy.value if record.sent_at else None,
    )


def _s(reply: Reply | None) -> str | None:
    return str(reply) if reply is not None else None


def _precheck(session: SmtpSession, record: OutboxRecord) -> tuple[MailbagError, bool] | None:
    """Checks against the server's EHLO before anything is uploaded."""
    limit = session.size_limit
    if limit and record.size > limit:
        return (
            UsageError(
                f"the message is {record.size // 1024} KB; the server accepts at most "
                f"{limit // 1024} KB",
                hint="remove or shrink attachments (share big files by link), then send again",
                cause="too-big",
            ),
            True,
        )
    if record.smtputf8 and not session.smtputf8:
        return (
            UsageError(
                "an address has non-ASCII characters before the @, and the server does not "
                "offer SMTPUTF8",
                hint="use an ASCII address for that recipient",
                cause="no-smtputf8",
            ),
            True,
        )
    if record.eight_bit and not session.eight_bit_mime:
        return (
            UsageError(
                "the message has 8-bit content (a forwarded message) and the server does not "
                "offer 8BITMIME",
                hint="forward inline instead of as an attachment",
                cause="no-8bitmime",
            ),
            True,
        )
    return None


def _transaction(
    session: SmtpSession,
    outbox: Outbox,
    record: OutboxRecord,
    data: bytes,
    emit: EventCallback,
) -> Attempt:
    """MAIL, RCPT..., DATA on an open session, recording `data` before the final dot."""
    attempt = Attempt()
    problem = _precheck(session, record)
    if problem is not None:
        attempt.error, attempt.error_permanent = problem
        return attempt
    try:
        attempt.mail = session.mail(
            record.envelope_from,
            size=record.size,
            smtputf8=record.smtputf8,
            eight_bit=record.eight_bit,
        )
        if not attempt.mail.ok:
            return attempt
        for rcpt in record.recipients:
            attempt.rcpt[rcpt] = session.rcpt(rcpt)
        if not any(reply.ok for reply in attempt.rcpt.values()):
            return attempt

        def before_end() -> None:
            record.state = OutboxState.DATA
            record.note("data", "handing the message over")
            outbox.save(record)
            emit("data-pending", record)

        outcome = session.data(data, before_end=before_end)
    except NetworkError as exc:
        if record.state is OutboxState.DATA:
            attempt.cut_after_data = exc
        else:
            attempt.cut_before_data = exc
        return attempt
    if outcome.refused is not None:
        attempt.data_start = outcome.refused
    elif outcome.cut_after_end is not None:
        attempt.cut_after_data = outcome.cut_after_end
    else:
        attempt.data_end = outcome.end
    emit("data-reply", record)
    return attempt


def send_record(
    outbox: Outbox,
    record: OutboxRecord,
    account: Account,
    *,
    open_smtp: SmtpOpener,
    emit: EventCallback,
    now: Callable[[], float] = time.time,
) -> Attempt:
    """One attempt for one queued message; the record is settled and saved."""
    data = outbox.read_message(record.id)
    record.state = OutboxState.SENDING
    record.attempts += 1
    record.attempt_id = secrets.token_hex(6)
    record.note("attempt", f"attempt {record.attempts}")
    outbox.save(record)
    emit("attempt", record)
    attempt = Attempt()
    session: SmtpSession | None = None
    try:
        session = open_smtp(account)
        emit("connected", record)
        attempt = _transaction(session, outbox, record, data, emit)
    except (NetworkError, AuthError, ProtocolError, ConfigError) as exc:
        # nothing was handed over: these happen before MAIL FROM
        if record.state is OutboxState.DATA:
            attempt.cut_after_data = exc
        else:
            attempt.error = exc
    finally:
        if session is not None:
            session.close()
    settle(record, attempt, now())
    outbox.save(record)
    emit("settled", record)
    return attempt


def make_copy(
    outbox: Outbox,
    record: OutboxRecord,
    account: Account,
    *,
    copier: SentCopier,
    emit: EventCallback,
) -> None:
    """File the sent message in Sent once (or not at all when the server does it)."""
    if record.copy in (CopyState.DONE, CopyState.SKIPPED) or not record.delivered:
        return
    if account.server_saves_sent and account.protocol is MailProtocol.IMAP:
        record.copy = CopyState.SKIPPED
        record.note("copy", "the server files sent mail itself")
        outbox.save(record)
        return
    data = sent_copy_bytes(outbox.read_message(record.id), record)
    was_appending = record.copy is CopyState.APPENDING
    record.copy = CopyState.APPENDING
    if not was_appending:
        outbox.save(record)
    emit("copy-pending", record)
    copier(account, record, data)
    emit("copy-done", record)
    record.copy = CopyState.DONE
    record.note("copy", "saved to Sent")
    outbox.save(record)


def sent_copy_bytes(data: bytes, record: OutboxRecord) -> bytes:
    """The user's own copy: the sent bytes, plus a Bcc header when there were Bcc
    recipients (so the user can see who got it; it never went to anyone)."""
    if not record.bcc:
        return data
    return b"Bcc: " + ", ".join(record.bcc).encode("utf-8") + b"\r\n" + data


@dataclass
class FlushResult:
    reports: list[SendReport] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    skipped_locked: bool = False

    @property
    def ok(self) -> bool:
        return all(r.state in ("sent", "removed", "draft-saved") for r in self.reports)


def flush(
    outbox: Outbox,
    accounts: dict[str, Account],
    *,
    open_smtp: SmtpOpener,
    copier: SentCopier,
    draft_saver: SentCopier | None = None,
    on_sent: SentHook | None = None,
    ids: Sequence[str] | None = None,
    only_accounts: Sequence[str] | None = None,
    respect_backoff: bool = True,
    wait: float = 0.0,
    on_event: EventCallback | None = None,
    now: Callable[[], float] = time.time,
) -> FlushResult:
    """Send what is due (or exactly `ids`), make the Sent copies, tidy the outbox."""

    def emit(event: str, record: OutboxRecord) -> None:
        if on_event is not None:
            on_event(event, record)

    result = FlushResult()
    with outbox.locked(wait=wait):
        result.recovered = [r.id for r in outbox.recover()]
        records = outbox.records()
        wanted = due(records, now(), respect_backoff=respect_backoff)
        by_id = {r.id: r for r in records}
        if ids is not None:
            wanted = [i for i in wanted if i in set(ids)]
        if only_accounts is not None:
            wanted = [i for i in wanted if by_id[i].account in set(only_accounts)]
        for rid in wanted:
            record = by_id[rid]
            account = accounts.get(record.account)
            if account is None:
                report = _report(record, None)
                report.error = {
                    "message": f"account {record.account!r} no longer exists",
                    "reply": None,
                    "code": None,
                    "permanent": True,
                    "cause": "no-account",
                }
                result.reports.append(report)
                continue
            result.reports.append(
                _flush_one(
                    outbox, record, account, open_smtp, copier, draft_saver, on_sent, emit, now
                )
            )
    return result


def _flush_one(
    outbox: Outbox,
    record: OutboxRecord,
    account: Account,
    open_smtp: SmtpOpener,
    copier: SentCopier,
    draft_saver: SentCopier | None,
    on_sent: SentHook | None,
    emit: EventCallback,
    now: Callable[[], float],
) -> SendReport:
    if record.state is OutboxState.DRAFT:
        return _save_draft(outbox, record, account, draft_saver, emit)
    attempt: Attempt | None = None
    if record.state is OutboxState.QUEUED:
        attempt = send_record(outbox, record, account, open_smtp=open_smtp, emit=emit, now=now)
        if on_sent is not None and attempt.data_end is not None and attempt.data_end.ok:
            try:
                on_sent(account, record)
            except MailbagError as exc:
                record.note("after-send", exc.message)
    report = _report(record, attempt)
    if record.delivered and record.copy in (CopyState.PENDING, CopyState.APPENDING):
        try:
            make_copy(outbox, record, account, copier=copier, emit=emit)
        except MailbagError as exc:
            # the message went out; only the copy waits for the next flush
            record.note("copy-failed", exc.message)
            outbox.save(record)
            report.copy_error = exc.message
        report.copy = record.copy.value
    if record.state is OutboxState.SENT and record.copy in (CopyState.DONE, CopyState.SKIPPED):
        outbox.remove(record.id)
        emit("removed", record)
    return report


def _save_draft(
    outbox: Outbox,
    record: OutboxRecord,
    account: Account,
    draft_saver: SentCopier | None,
    emit: EventCallback,
) -> SendReport:
    report = _report(record, None)
    if draft_saver is None:
        return report
    try:
        draft_saver(account, record, outbox.read_message(record.id))
    except MailbagError as exc:
        record.last_error = {
            "message": f"could not save the draft to Drafts: {exc.message}",
            "reply": None,
            "code": None,
            "permanent": False,
            "cause": "draft",
        }
        outbox.save(record)
        report.error = record.last_error
        return report
    outbox.remove(record.id)
    emit("removed", record)
    report.state = "draft-saved"
    return report
