"""Composing: MIME shape, headers, replies, forwards, templates and header injection."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbag.errors import UsageError
from mailbag.message.addresses import parse_address, parse_address_list
from mailbag.message.compose import (
    Attachment,
    Draft,
    build,
    draft_from_flags,
    draft_from_template,
    forward_draft,
    forward_subject,
    reply_draft,
    reply_subject,
    template_from_draft,
)

ME = parse_address("Alice Example <alice@example.org>")
ALT = parse_address("alice@work.example")
NOW = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
EVIL_SUBJECT = "=?UTF-8?Q?hi=0ABcc:_x@evil?="


def parsed(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def text_of(msg: EmailMessage) -> str:
    content = msg.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]


def test_plain_message_shape() -> None:
    d = draft_from_flags(
        from_=ME,
        to=["Bob <bob@example.org>"],
        cc=["carol@example.org"],
        subject="Grüße aus Köln",
        body="Hällo\n.\nbye",
    )
    c = build(d, now=NOW, message_id="<x1@example.org>")
    assert b"\r\n" in c.data and b"\n" not in c.data.replace(b"\r\n", b"")
    assert all(b < 128 for b in c.data)  # 7-bit clean: no 8BITMIME needed
    msg = parsed(c.data)
    assert msg["Subject"] == "Grüße aus Köln"
    assert b"Subject: =?utf-8?" in c.data  # RFC 2047
    assert msg["Message-ID"] == "<x1@example.org>"
    assert msg["Date"].datetime == NOW
    assert msg["From"].addresses[0].addr_spec == "alice@example.org"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert text_of(msg) == "Hällo\n.\nbye\n"
    assert c.recipients == ("bob@example.org", "carol@example.org")
    assert c.envelope_from == "alice@example.org"
    assert not c.smtputf8 and not c.eight_bit


def test_generated_message_id_and_date() -> None:
    c1 = build(draft_from_flags(from_=ME, to=["b@example.org"], subject="s", body="b"))
    c2 = build(draft_from_flags(from_=ME, to=["b@example.org"], subject="s", body="b"))
    assert c1.message_id != c2.message_id
    assert c1.message_id.endswith("@example.org>")
    assert parsed(c1.data)["Date"].datetime.tzinfo is not None


def test_bcc_never_in_headers_but_in_envelope() -> None:
    d = draft_from_flags(
        from_=ME, to=["bob@example.org"], bcc=["secret@example.org"], subject="s", body="b"
    )
    c = build(d)
    assert b"secret@example.org" not in c.data
    assert "bcc" not in header_names(c.data)
    assert "secret@example.org" in c.recipients
    assert c.bcc == ("secret@example.org",)


def test_only_bcc_recipients() -> None:
    c = build(draft_from_flags(from_=ME, bcc=["x@example.org"], subject="s", body="b"))
    assert "to" not in header_names(c.data)
    assert c.recipients == ("x@example.org",)


def test_no_recipients_refused() -> None:
    with pytest.raises(UsageError):
        build(Draft(from_=ME, subject="s", body="b"))


def test_attachments_types_and_rfc2231_names(tmp_path: Path) -> None:
    pdf = tmp_path / "Résumé été.pdf"
    pdf.write_bytes(b"%PDF-1.4\x00\x01\xff binary")
    txt = tmp_path / "notes.txt"
    txt.write_bytes(b"line one\nline two without final newline")
    unknown = tmp_path / "data.zzqx"
    unknown.write_bytes(bytes(range(256)))
    d = draft_from_flags(
        from_=ME, to=["b@example.org"], subject="files", body="see", attach=[pdf, txt, unknown]
    )
    c = build(d)
    assert b"filename*=utf-8''R%C3%A9sum%C3%A9%20%C3%A9t%C3%A9.pdf" in c.data
    msg = parsed(c.data)
    assert msg.get_content_type() == "multipart/mixed"
    atts = list(msg.iter_attachments())
    assert [(a.get_filename(), a.get_content_type()) for a in atts] == [
        ("Résumé été.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
        ("data.zzqx", "application/octet-stream"),
    ]
    # the bytes arrive exactly as the files are
    assert [a.get_payload(decode=True) for a in atts] == [
        pdf.read_bytes(),
        txt.read_bytes(),
        unknown.read_bytes(),
    ]
    # subparts carry no MIME-Version (only the top level does)
    assert c.data.count(b"MIME-Version") == 1


def test_attachment_path_problems_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        Attachment.from_path(tmp_path / "missing.pdf")
    with pytest.raises(UsageError):
        Attachment.from_path(tmp_path)


def test_user_subject_with_newline_refused() -> None:
    for subject in ("hi\nBcc: x@evil.test", "hi\r\nBcc: x@evil.test", "hi\rX: y"):
        with pytest.raises(UsageError):
            draft_from_flags(from_=ME, to=["b@example.org"], subject=subject, body="b")
        with pytest.raises(UsageError):
            build(Draft(from_=ME, to=parse_address_list("b@example.org"), subject=subject))


def test_user_subject_encoded_word_with_newline_refused() -> None:
    # the stdlib decodes encoded words it is given (CVE-2024-6923): refused
    d = draft_from_flags(from_=ME, to=["b@example.org"], subject=EVIL_SUBJECT, body="b")
    with pytest.raises(UsageError, match="line break"):
        build(d)


def test_nested_encoded_word_in_original_is_flattened() -> None:
    # decodes once to the text "=?UTF-8?Q?hi=0ABcc:_x@evil?=", which decodes again
    nested = b"=?UTF-8?Q?=3D=3FUTF-8=3FQ=3Fhi=3D0ABcc=3A=5Fx=40evil=3F=3D?="
    original = ORIGINAL.replace(EVIL_SUBJECT.encode(), nested)
    c = build(reply_draft(original, identities=[ME], default_from=ME))
    assert header_names(c.data).count("bcc") == 0
    assert "\n" not in str(parsed(c.data)["Subject"])


ORIGINAL = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: alice@example.org, Carol <carol@example.org>\r\n"
    b"Cc: ALICE@example.org, dave@example.net, carol@example.org, alice@work.example\r\n"
    b"Subject: " + EVIL_SUBJECT.encode() + b"\r\n"
    b"Message-ID: <orig@example.org>\r\n"
    b"References: <r1@example.org> <r2@example.org>\r\n"
    b"In-Reply-To: <r2@example.org>\r\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
    b"\r\n"
    b"line one\r\n"
    b"> earlier quote\r\n"
)


def test_reply_headers_and_injection_flattened() -> None:
    d = reply_draft(ORIGINAL, identities=[ME, ALT], default_from=ME)
    c = build(d)
    msg = parsed(c.data)
    assert msg["Subject"] == "Re: hi Bcc: x@evil"
    assert header_names(c.data).count("bcc") == 0
    assert "x@evil" not in c.recipients
    assert msg["In-Reply-To"] == "<orig@example.org>"
    assert msg["References"] == "<r1@example.org> <r2@example.org> <orig@example.org>"
    assert [a.addr_spec for a in d.to] == ["bob@example.org"]
    assert d.cc == []
    body = text_of(msg)
    assert "Bob <bob@example.org> wrote:" in body
    assert "> line one\n>> earlier quote\n" in body


def test_reply_all_drops_own_addresses_and_duplicates() -> None:
    d = reply_draft(ORIGINAL, identities=[ME, ALT], default_from=ME, reply_all=True)
    assert [a.addr_spec for a in d.to] == ["bob@example.org"]
    assert [a.addr_spec for a in d.cc] == ["carol@example.org", "dave@example.net"]


def test_reply_honours_reply_to() -> None:
    original = b"Reply-To: list@lists.example\r\n" + ORIGINAL
    d = reply_draft(original, identities=[ME], default_from=ME, reply_all=True)
    assert [a.addr_spec for a in d.to] == ["list@lists.example"]
    assert "bob@example.org" not in [a.addr_spec for a in d.cc]


def test_reply_from_the_identity_it_was_sent_to() -> None:
    original = ORIGINAL.replace(b"To: alice@example.org,", b"To: alice@work.example,")
    original = original.replace(b"ALICE@example.org, ", b"")
    d = reply_draft(original, identities=[ALT, ME], default_from=ME)
    assert d.from_.addr_spec == "alice@work.example"


def test_reply_to_own_sent_message_goes_to_its_recipients() -> None:
    sent = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: x\r\n\r\nhi\r\n"
    d = reply_draft(sent, identities=[ME], default_from=ME)
    assert [a.addr_spec for a in d.to] == ["bob@example.org"]


def test_reply_without_message_id_or_with_bad_ids() -> None:
    original = b"From: b@example.org\r\nMessage-ID: not an id\r\nReferences: junk\r\n\r\nx\r\n"
    c = build(reply_draft(original, identities=[ME], default_from=ME))
    names = header_names(c.data)
    assert "in-reply-to" not in names and "references" not in names


def test_reply_html_only_original_is_quoted_as_text() -> None:
    original = (
        b"From: b@example.org\r\nSubject: h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style><script>x()</script></head>"
        b"<body><p>Hello <b>there</b></p><p>second</p></body></html>\r\n"
    )
    d = reply_draft(original, identities=[ME], default_from=ME)
    assert "> Hello there" in d.body and "> second" in d.body
    assert "x()" not in d.body and "p{}" not in d.body


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("hello", "Re: hello"),
        ("Re: hello", "Re: hello"),
        ("RE: Re: re:hello", "Re: hello"),
        ("Re[2]: AW: hello", "Re: hello"),
        ("", "Re:"),
        ("Regarding things", "Re: Regarding things"),
    ],
)
def test_reply_subject(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_forward_subject() -> None:
    assert forward_subject("Fwd: FW: x") == "Fwd: x"
    assert forward_subject("x") == "Fwd: x"


def test_forward_as_attachment_is_byte_exact() -> None:
    original = ORIGINAL.replace(b"line one", b"line \xc3\xa9 one")
    d = forward_draft(original, from_=ME, as_attachment=True)
    d.to = parse_address_list("eve@example.org")
    c = build(d)
    assert original in c.data
    assert c.eight_bit  # the original carried 8-bit text
    msg = parsed(c.data)
    assert msg["Subject"] == "Fwd: hi Bcc: x@evil"
    inner = next(iter(msg.iter_attachments()))
    assert inner.get_content_type() == "message/rfc822"


def test_forward_inline_keeps_text_and_attachments() -> None:
    original = (
        b"From: Bob <bob@example.org>\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nthe text\r\n"
        b"--b1\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="../../etc/r.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b1--\r\n"
    )
    d = forward_draft(original, from_=ME)
    assert "---------- Forwarded message ----------" in d.body
    assert "From: Bob <bob@example.org>" in d.body and "the text" in d.body
    assert [(a.filename, a.data) for a in d.attachments] == [("r.pdf", b"%PDF")]
    assert d.subject == "Fwd: report"


def test_template_round_trip(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("attached")
    base = reply_draft(ORIGINAL, identities=[ME, ALT], default_from=ME, reply_all=True)
    text = template_from_draft(base)
    assert text.startswith("#")
    edited = text.replace("\nBcc: \n", "\nBcc: boss@example.org\n").replace(
        "Attach: ", "Attach: a.txt"
    )
    edited += "My answer.\n"
    d = draft_from_template(edited, base, identities=[ME, ALT], attach_root=tmp_path)
    assert [a.addr_spec for a in d.bcc] == ["boss@example.org"]
    assert d.in_reply_to == "<orig@example.org>"  # threading survives editing
    assert d.attachments[0].filename == "a.txt"
    assert d.body.endswith("My answer.\n")
    assert d.subject == base.subject


def test_template_rejects_foreign_from_and_unknown_headers() -> None:
    base = Draft(from_=ME)
    with pytest.raises(UsageError):
        draft_from_template("From: mallory@evil.test\nTo: b@example.org\n\nx", base)
    with pytest.raises(UsageError):
        draft_from_template("To: b@example.org\nX-Evil: 1\n\nx", base)
    with pytest.raises(UsageError):
        draft_from_template("To: b@example.org\nSubject: a\nBcc: x@evil)<y@evil.test>\n\nx", base)


def test_template_accepts_another_identity() -> None:
    d = draft_from_template(
        "From: alice@work.example\nTo: b@example.org\n\nx", Draft(from_=ME), identities=[ME, ALT]
    )
    assert d.from_.addr_spec == "alice@work.example"


def test_smtputf8_when_local_part_is_not_ascii() -> None:
    c = build(draft_from_flags(from_=ME, to=["josé@example.org"], subject="s", body="b"))
    assert c.smtputf8
    assert "josé@example.org".encode() in c.data


def test_long_body_lines_are_encoded() -> None:
    c = build(draft_from_flags(from_=ME, to=["b@example.org"], subject="s", body="x" * 5000))
    assert max(len(line) for line in c.data.split(b"\r\n")) <= 998
    assert text_of(parsed(c.data)) == "x" * 5000 + "\n"
