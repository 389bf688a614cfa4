"""Build outgoing messages: new mail, replies, forwards, and the editor template.

Messages are built with the stdlib `email` package (`EmailMessage`, policy
SMTP: CRLF line ends, RFC 2047 for non-ASCII headers, RFC 2231 for file names,
7-bit clean bodies). The policy SMTPUTF8 is used only when an address has a
non-ASCII local part.

Header injection is the danger here. Every header value is checked before it
is set: text typed by the user that contains CR, LF or other control characters
is refused (`UsageError`); text taken from a received message (its decoded
subject, names and ids can hold CR/LF, CVE-2024-6923) is flattened to one line.
After serialising, the header block is parsed again and must contain exactly the
headers we meant to write; anything else is a bug and nothing is sent.

Bcc recipients go into the envelope only, never into the message bytes.

This module never does I/O except reading attachment files the user named.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from email import policy as email_policy
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from pathlib import Path
from typing import cast

from mailbag.errors import MailbagError, UsageError
from mailbag.message.addresses import (
    Address,
    AddressError,
    dedupe,
    format_list,
    parse_address,
    parse_address_list,
    parse_header_addresses,
)
from mailbag.message.attachments import list_attachments
from mailbag.message.attachments import safe_filename as att_safe_name
from mailbag.message.parse import ParsedMessage, parse_message
from mailbag.message.render import render_body

__all__ = [
    "Attachment",
    "ComposeError",
    "Composed",
    "Draft",
    "build",
    "check_user_text",
    "draft_from_flags",
    "draft_from_message",
    "draft_from_template",
    "flatten_foreign_text",
    "forward_draft",
    "forward_subject",
    "reply_draft",
    "reply_subject",
    "template_from_draft",
]

#: the biggest attachment we read into memory (providers refuse far less)
MAX_ATTACHMENT = 100 * 1024 * 1024
#: quoted original text is cut here (a reply is not an archive)
MAX_QUOTED = 256 * 1024
#: References keeps the first id and the most recent ones (RFC 5322 3.6.4 advice)
MAX_REFERENCES = 20
MAX_SUBJECT = 998

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MSG_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|vs|antw)(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(?:(?:fwd?|wg|tr|vs)\s*:\s*)+", re.IGNORECASE)


class ComposeError(MailbagError):
    """The message could not be built safely."""


# --- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"

    @classmethod
    def from_path(cls, path: Path | str) -> Attachment:
        p = Path(path).expanduser()
        try:
            size = p.stat().st_size
            if size > MAX_ATTACHMENT:
                raise UsageError(
                    f"attachment {p} is too big ({size // (1024 * 1024)} MB)",
                    hint="mail servers refuse messages over 25-50 MB; share a link instead",
                )
            data = p.read_bytes()
        except IsADirectoryError as exc:
            raise UsageError(f"attachment {p} is a folder, not a file") from exc
        except OSError as exc:
            raise UsageError(f"cannot read attachment {p}: {exc.strerror or exc}") from exc
        return cls(safe_filename(p.name), data, guess_content_type(p.name))


def guess_content_type(filename: str) -> str:
    ctype, encoding = mimetypes.guess_type(filename, strict=False)
    if ctype is None or encoding is not None:
        # a compressed file (.tar.gz) is sent as the compressed bytes it is
        return "application/octet-stream" if encoding is None else _compressed_type(encoding)
    return ctype


def _compressed_type(encoding: str) -> str:
    return {
        "gzip": "application/gzip",
        "bzip2": "application/x-bzip2",
        "xz": "application/x-xz",
        "br": "application/x-brotli",
    }.get(encoding, "application/octet-stream")


def safe_filename(name: str) -> str:
    """A file name fit for a Content-Disposition parameter: no path, no controls."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = " ".join(_CONTROL.sub(" ", name).split())
    return name.lstrip(".") or "attachment"


@dataclass
class Draft:
    """A message being written. Built by flags, templates, reply or forward."""

    from_: Address
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    subject: str = ""
    body: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    #: the original message attached as message/rfc822 (forward as attachment)
    forwarded: bytes | None = None

    @property
    def recipients(self) -> list[Address]:
        return dedupe([*self.to, *self.cc, *self.bcc])


@dataclass(frozen=True)
class Composed:
    """A finished message: the exact bytes to send and the envelope for them."""

    data: bytes
    message_id: str
    subject: str
    envelope_from: str
    recipients: tuple[str, ...]
    bcc: tuple[str, ...]
    smtputf8: bool
    eight_bit: bool


# --- header text safety -------------------------------------------------------------------


def check_user_text(value: str, what: str) -> str:
    """Text the user typed for a header: refused if it could start a new header line."""
    if _CONTROL.search(value):
        raise UsageError(
            f"{what} contains a line break or control character",
            hint=f"write the {what} on one line",
        )
    if len(value) > MAX_SUBJECT:
        raise UsageError(f"{what} is too long ({len(value)} characters)")
    return value


def flatten_foreign_text(value: str) -> str:
    """Text from a received message (decoded): one line, control characters gone.

    Decoded text can itself look like an encoded word (``=?UTF-8?Q?...=0A...?=``
    nested one level down); the stdlib would decode it again when the text is put
    into a header, so decoding repeats until the text no longer changes.
    """
    text = " ".join(_CONTROL.sub(" ", value).split())[:MAX_SUBJECT]
    for _ in range(5):
        if "=?" not in text:
            break
        decoded = str(email_policy.default.header_factory("Subject", text))
        decoded = " ".join(_CONTROL.sub(" ", decoded).split())[:MAX_SUBJECT]
        if decoded == text:
            break
        text = decoded
    return text


def reply_subject(subject: str) -> str:
    """``Re:`` exactly once, however many Re:/RE:/Re[2]:/AW: the original had."""
    rest = _REPLY_PREFIX.sub("", subject, count=1)
    return f"Re: {rest}" if rest else "Re:"


def forward_subject(subject: str) -> str:
    rest = _FORWARD_PREFIX.sub("", subject, count=1)
    return f"Fwd: {rest}" if rest else "Fwd:"


def _valid_ids(text: str) -> list[str]:
    return _MSG_ID.findall(text)


# --- building -----------------------------------------------------------------------------


def new_message_id(domain: str) -> str:
    stamp = format(int(time.time() * 1000), "x")
    return f"<{stamp}.{secrets.token_hex(8)}@{domain}>"


def build(
    draft: Draft,
    *,
    now: dt.datetime | None = None,
    message_id: str | None = None,
    for_draft: bool = False,
) -> Composed:
    """Serialise `draft` into the bytes to send; raises UsageError on unusable input.

    For a draft (`for_draft`: recipients optional) the Bcc list is kept in the bytes: a
    draft is the user's own copy and must come back with its Bcc recipients.
    """
    if not draft.recipients and not for_draft:
        raise UsageError("no recipients", hint="give at least one of --to, --cc or --bcc")
    subject = check_user_text(draft.subject, "subject")
    smtputf8 = any(a.needs_smtputf8 for a in (draft.from_, *draft.recipients, *draft.reply_to))
    # cte_type 7bit: bodies are quoted-printable/base64, so no server needs 8BITMIME
    pol = (email_policy.SMTPUTF8 if smtputf8 else email_policy.SMTP).clone(cte_type="7bit")
    mid = message_id or new_message_id(draft.from_.domain)
    if not _MSG_ID.fullmatch(mid):
        raise ComposeError(f"invalid Message-ID {mid!r}")
    in_reply_to = draft.in_reply_to if draft.in_reply_to else None
    if in_reply_to is not None and not _MSG_ID.fullmatch(in_reply_to):
        in_reply_to = None
    references = [r for r in draft.references if _MSG_ID.fullmatch(r)]
    if len(references) > MAX_REFERENCES:
        references = [references[0], *references[-(MAX_REFERENCES - 1) :]]

    msg = EmailMessage(policy=pol)
    expected: list[str] = []

    def put(name: str, value: object) -> None:
        msg[name] = value
        # the stdlib decodes encoded words in text it is given (CVE-2024-6923):
        # what it would write must still be one line
        if _CONTROL.search(str(msg[name])):
            raise UsageError(
                f"the {name} header would contain a line break once decoded",
                hint="remove the =?...?= encoded text from it",
            )
        expected.append(name.lower())

    put("Date", format_datetime((now or dt.datetime.now(dt.UTC)).astimezone()))
    put("From", draft.from_.to_header())
    if draft.to:
        put("To", [a.to_header() for a in draft.to])
    if draft.cc:
        put("Cc", [a.to_header() for a in draft.cc])
    if draft.bcc and for_draft:
        put("Bcc", [a.to_header() for a in draft.bcc])
    if draft.reply_to:
        put("Reply-To", [a.to_header() for a in draft.reply_to])
    put("Subject", subject)
    put("Message-ID", mid)
    if in_reply_to:
        put("In-Reply-To", in_reply_to)
    if references:
        put("References", " ".join(references))

    body = draft.body.replace("\r\n", "\n").replace("\r", "\n")
    if body and not body.endswith("\n"):
        body += "\n"
    _set_text(msg, body)
    placeholder: str | None = None
    if draft.attachments or draft.forwarded is not None:
        msg.make_mixed()
        boundary = "=_mailbag_" + secrets.token_hex(16)
        if draft.forwarded is not None and boundary.encode() in draft.forwarded:
            raise ComposeError("MIME boundary collision; try again")
        msg.set_boundary(boundary)
        for att in draft.attachments:
            msg.attach(_attachment_part(att, pol))
        if draft.forwarded is not None:
            placeholder = secrets.token_hex(24)
            msg.attach(_forward_part(placeholder, pol))
    expected.append("mime-version")
    expected.append("content-type")
    if not msg.is_multipart():
        expected.append("content-transfer-encoding")

    data = msg.as_bytes()
    eight_bit = False
    if draft.forwarded is not None and placeholder is not None:
        original = normalize_crlf(draft.forwarded)
        eight_bit = any(b > 127 for b in original)
        if data.count(placeholder.encode()) != 1:
            raise ComposeError("could not place the forwarded message")
        data = data.replace(placeholder.encode(), original, 1)
        if not eight_bit:
            data = data.replace(b"Content-Transfer-Encoding: 8bit\r\n", b"", 1)
    _verify_header_block(data, expected)
    return Composed(
        data=data,
        message_id=mid,
        subject=subject,
        envelope_from=draft.from_.addr_spec,
        recipients=tuple(a.addr_spec for a in draft.recipients),
        bcc=tuple(a.addr_spec for a in dedupe(draft.bcc, exclude=[*draft.to, *draft.cc])),
        smtputf8=smtputf8,
        eight_bit=eight_bit,
    )


def normalize_crlf(data: bytes) -> bytes:
    """Every line ending CRLF, and a final one (SMTP's DATA needs both)."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _set_text(msg: EmailMessage | MIMEPart, body: str) -> None:
    if body.isascii() and all(len(line) <= 998 for line in body.split("\n")):
        msg.set_content(body, subtype="plain", charset="utf-8", cte="7bit")
    else:
        # 7-bit clean so no server needs 8BITMIME; the stdlib picks the shorter of
        # quoted-printable and base64 when the policy is 7-bit
        msg.set_content(body, subtype="plain", charset="utf-8")


def _attachment_part(att: Attachment, pol: email_policy.EmailPolicy[EmailMessage]) -> EmailMessage:
    if _CONTROL.search(att.filename):
        raise UsageError(f"attachment name {att.filename!r} contains control characters")
    maintype, _, subtype = att.content_type.partition("/")
    if not maintype or not subtype or _CONTROL.search(att.content_type):
        maintype, subtype = "application", "octet-stream"
    if maintype in ("multipart", "message"):
        # sent as opaque data: the bytes are the user's file, not MIME we vouch for
        maintype, subtype = "application", "octet-stream"
    # MIMEPart, not EmailMessage: a subpart carries no MIME-Version header
    part = cast(EmailMessage, MIMEPart(policy=pol))
    # bytes, base64: the attachment arrives exactly as the file is, text or not
    part.set_content(
        att.data,
        maintype=maintype,
        subtype=subtype,
        disposition="attachment",
        filename=att.filename,
        cte="base64",
    )
    return part


def _forward_part(placeholder: str, pol: email_policy.EmailPolicy[EmailMessage]) -> EmailMessage:
    # The stdlib cannot write an 8-bit message/rfc822 part byte-exactly (it
    # re-serialises parsed messages and fails on 8-bit strings), so the part is
    # built around a random placeholder that `build` swaps for the original bytes.
    part = cast(EmailMessage, MIMEPart(policy=pol))
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = 'attachment; filename="forwarded.eml"'
    part["Content-Transfer-Encoding"] = "8bit"
    part.set_payload(placeholder)
    return part


def _verify_header_block(data: bytes, expected: list[str]) -> None:
    """Defence in depth: the written headers are exactly the ones we set."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise ComposeError("composed message has no header/body separator")
    names: list[str] = []
    for line in data[: end + 2].split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            continue
        if b"\n" in line or b"\r" in line or b":" not in line:
            raise ComposeError("composed message has a malformed header line")
        names.append(line.split(b":", 1)[0].decode("ascii", "replace").lower())
    if sorted(names) != sorted(expected):
        raise ComposeError(
            "composed message headers differ from what was set; refusing to send",
            hint="this is a bug in mailbag; please report it with the subject and recipients",
            headers=names,
        )


# --- replies and forwards -------------------------------------------------------------------
# Received mail is hostile input: it is read with the bounded parser of
# `message.parse` (depth, part and header limits), never with the stdlib parser.


def _addresses(msg: ParsedMessage, name: str) -> list[Address]:
    return parse_header_addresses(msg.headers.get_all(name))


def choose_identity(msg: ParsedMessage, identities: Sequence[Address], default: Address) -> Address:
    """Reply from the address the original was sent to, if it is one of ours."""
    ours = {a.key: a for a in identities}
    for name in ("To", "Cc", "Delivered-To", "X-Original-To"):
        for a in _addresses(msg, name):
            if a.key in ours:
                chosen = ours[a.key]
                if chosen.display_name:
                    return chosen
                return replace(chosen, display_name=default.display_name)
    return default


def reply_draft(
    original: bytes,
    *,
    identities: Sequence[Address],
    default_from: Address,
    reply_all: bool = False,
) -> Draft:
    """A reply to `original` (its raw bytes).

    To: Reply-To if present, else From (and when the original is our own sent
    mail, its recipients). With `reply_all`, Cc gets the original To and Cc.
    The user's own addresses (`identities`, every account) and duplicates are
    left out.
    """
    msg = parse_message(original)
    own = [*identities, default_from]
    sender = _addresses(msg, "From")
    reply_to = _addresses(msg, "Reply-To")
    orig_to = _addresses(msg, "To")
    orig_cc = _addresses(msg, "Cc")
    own_keys = {a.key for a in own}
    from_self = bool(sender) and all(a.key in own_keys for a in sender)
    if reply_to:
        to = reply_to
    elif from_self:
        to = orig_to
    else:
        to = sender
    to = dedupe(to, exclude=own)
    cc: list[Address] = []
    if reply_all:
        cc = dedupe([*orig_to, *orig_cc], exclude=[*own, *to])
    if not to and cc:
        to, cc = cc[:1], cc[1:]
    subject = reply_subject(flatten_foreign_text(msg.subject))
    mid_ids = _valid_ids(msg.headers.get("Message-ID") or "")
    refs = _valid_ids(" ".join(msg.headers.get_all("References")))
    if not refs:
        refs = _valid_ids(msg.headers.get("In-Reply-To") or "")[:1]
    in_reply_to = mid_ids[0] if mid_ids else None
    references = [*refs, in_reply_to] if in_reply_to else refs
    body = "\n\n" + attribution(msg, sender) + "\n" + quote(original_text(msg))
    return Draft(
        from_=choose_identity(msg, identities, default_from),
        to=to,
        cc=cc,
        subject=subject,
        body=body,
        in_reply_to=in_reply_to,
        references=references,
    )


def attribution(msg: ParsedMessage, sender: list[Address]) -> str:
    who = "someone"
    if sender:
        s = sender[0]
        who = f"{s.display_name} <{s.addr_spec}>" if s.display_name else s.addr_spec
    date = msg.date
    when = date.strftime("On %a, %d %b %Y at %H:%M %z, ") if date is not None else ""
    return flatten_foreign_text(f"{when}{who} wrote:")


def quote(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    return "".join((">" if line.startswith(">") else "> ") + line + "\n" for line in lines)


def original_text(msg: ParsedMessage) -> str:
    """The readable text of a received message (HTML made plain), bounded."""
    content = render_body(msg).text
    if len(content) > MAX_QUOTED:
        content = content[:MAX_QUOTED] + "\n[... quoted text cut ...]\n"
    # quoting foreign text into our body is fine, but not its control characters
    return _BODY_CONTROL.sub("", content)


def forward_draft(original: bytes, *, from_: Address, as_attachment: bool = False) -> Draft:
    """A forward of `original`: inline (text quoted, attachments kept) or as message/rfc822."""
    msg = parse_message(original)
    subject = forward_subject(flatten_foreign_text(msg.subject))
    if as_attachment:
        return Draft(from_=from_, subject=subject, body="\n", forwarded=original)
    lines = ["", "", "---------- Forwarded message ----------"]
    for name in ("From", "Date", "Subject", "To", "Cc"):
        if name in ("From", "To", "Cc"):
            value = format_list(_addresses(msg, name))
        else:
            value = flatten_foreign_text(msg.headers.decoded(name))
        if value:
            lines.append(f"{name}: {value}")
    lines.append("")
    body = "\n".join(lines) + "\n" + original_text(msg)
    attachments = []
    for att in list_attachments(msg):
        payload, _ = msg.payload(att.part)
        name = safe_filename(att_safe_name(att.name, content_type=att.content_type))
        attachments.append(Attachment(name, payload, att.content_type))
    return Draft(from_=from_, subject=subject, body=body, attachments=attachments)


def draft_from_message(
    data: bytes, *, identities: Sequence[Address], default_from: Address
) -> Draft:
    """A saved draft (its raw bytes, e.g. from the Drafts folder) to continue writing.

    Read like received mail (bounded parser, lenient addresses, text flattened),
    because a Drafts folder can hold what other programs wrote. The From is kept
    when it is one of `identities`, else `default_from`. Threading headers, the
    text and the attachments are kept; a forwarded message (message/rfc822) comes
    back as `forwarded`.
    """
    msg = parse_message(data)
    from_ = default_from
    ours = {a.key: a for a in identities}
    for a in _addresses(msg, "From"):
        if a.key in ours:
            from_ = a if a.display_name else replace(a, display_name=default_from.display_name)
            break
    in_reply_to = _valid_ids(msg.headers.get("In-Reply-To") or "")
    attachments = []
    forwarded: bytes | None = None
    for att in list_attachments(msg):
        payload, _ = msg.payload(att.part)
        if att.content_type == "message/rfc822" and forwarded is None:
            # a forward as attachment: it stays one, with the same bytes (a file the
            # user attached is never sent as message/*, see `_attachment_part`)
            forwarded = payload
            continue
        name = safe_filename(att_safe_name(att.name, content_type=att.content_type))
        attachments.append(Attachment(name, payload, att.content_type))
    body = original_text(msg)
    return Draft(
        from_=from_,
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        bcc=_addresses(msg, "Bcc"),
        subject=flatten_foreign_text(msg.subject),
        body=body + "\n" if body and not body.endswith("\n") else body,
        attachments=attachments,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_valid_ids(" ".join(msg.headers.get_all("References"))),
        forwarded=forwarded,
    )


# --- the editor template --------------------------------------------------------------------

TEMPLATE_HELP = (
    "# Edit the headers and write your message below the blank line.\n"
    "# Lines starting with '#' in the header block are ignored.\n"
    "# 'Attach:' takes one file path per line; leave To empty to abort.\n"
)
_TEMPLATE_FIELDS = ("from", "to", "cc", "bcc", "subject", "attach", "reply-to")


def template_from_draft(draft: Draft) -> str:
    head = [
        TEMPLATE_HELP.rstrip("\n"),
        f"From: {draft.from_.display()}",
        f"To: {format_list(draft.to)}",
        f"Cc: {format_list(draft.cc)}",
        f"Bcc: {format_list(draft.bcc)}",
        f"Subject: {draft.subject}",
    ]
    if draft.reply_to:
        head.append(f"Reply-To: {format_list(draft.reply_to)}")
    for att in draft.attachments:
        head.append(f"# attached: {att.filename} ({att.content_type}, {len(att.data)} bytes)")
    head.append("Attach: ")
    return "\n".join(head) + "\n\n" + draft.body


def draft_from_template(
    text: str,
    base: Draft,
    *,
    identities: Sequence[Address] = (),
    attach_root: Path | None = None,
) -> Draft:
    """Read the edited template back. Threading headers and forwarded content come
    from `base`; everything the user can see comes from the text."""
    head, sep, body = text.replace("\r\n", "\n").partition("\n\n")
    if not sep:
        head, body = text, ""
    values: dict[str, list[str]] = {}
    last: str | None = None
    for line in head.split("\n"):
        if line.startswith("#") or not line.strip():
            continue
        if line[:1] in (" ", "\t") and last is not None:
            values[last][-1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        if not colon or key not in _TEMPLATE_FIELDS:
            raise UsageError(
                f"unknown header line in the template: {line[:60]!r}",
                hint="allowed: " + ", ".join(f.capitalize() for f in _TEMPLATE_FIELDS),
            )
        values.setdefault(key, []).append(value.strip())
        last = key

    def addrs(key: str) -> list[Address]:
        out: list[Address] = []
        for v in values.get(key, []):
            out.extend(parse_address_list(v, what=key.capitalize()))
        return out

    from_ = base.from_
    if values.get("from") and values["from"][0]:
        chosen = parse_address(values["from"][0], what="From")
        allowed = {a.key for a in (*identities, base.from_)}
        if chosen.key not in allowed:
            raise AddressError(
                f"From {chosen.addr_spec} is not one of this account's addresses",
                hint="add it as an identity of the account, or pick another account",
            )
        from_ = chosen
    attachments = list(base.attachments)
    for path in values.get("attach", []):
        if path:
            p = Path(path).expanduser()
            if not p.is_absolute() and attach_root is not None:
                p = attach_root / p
            attachments.append(Attachment.from_path(p))
    subject = " ".join(values.get("subject", [""]))
    return replace(
        base,
        from_=from_,
        to=addrs("to"),
        cc=addrs("cc"),
        bcc=addrs("bcc"),
        reply_to=addrs("reply-to"),
        subject=check_user_text(subject, "subject"),
        body=body,
        attachments=attachments,
    )


def draft_from_flags(
    *,
    from_: Address,
    to: Iterable[str] = (),
    cc: Iterable[str] = (),
    bcc: Iterable[str] = (),
    subject: str = "",
    body: str = "",
    attach: Iterable[Path | str] = (),
) -> Draft:
    """A draft from command-line values (each may hold several comma-separated addresses)."""

    def many(values: Iterable[str], what: str) -> list[Address]:
        out: list[Address] = []
        for v in values:
            out.extend(parse_address_list(v, what=what))
        return out

    return Draft(
        from_=from_,
        to=many(to, "--to"),
        cc=many(cc, "--cc"),
        bcc=many(bcc, "--bcc"),
        subject=check_user_text(subject, "subject"),
        body=body,
        attachments=[Attachment.from_path(p) for p in attach],
    )
