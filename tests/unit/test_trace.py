from __future__ import annotations

from pathlib import Path

from mailbag.protocols.trace import Transcript


def test_credentials_are_redacted(tmp_path: Path) -> None:
    path = tmp_path / "trace.log"
    t = Transcript(path)
    t.sent("imap", b"a1 LOGIN alice@example.org hunter2\r\n")
    t.sent("pop3", b"PASS hunter2\r\n")
    t.sent("smtp", b"AUTH PLAIN AGFsaWNlAGh1bnRlcjI=\r\n")
    t.sent("smtp", b"aHVudGVyMg==\r\n", secret=True)
    t.sent("imap", b"a2 AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2tlbgEB\r\n")
    t.received("imap", b"a2 OK done\r\n")
    t.close()
    text = path.read_text()
    assert "hunter2" not in text and "AGFsaWNl" not in text and "aHVudGVy" not in text
    assert "dXNlcj1h" not in text
    assert text.count("<redacted>") == 5
    assert "S: a2 OK done" in text


def test_disabled_transcript_writes_nothing() -> None:
    t = Transcript(None)
    assert not t.enabled
    t.sent("imap", b"a1 LOGIN x y")
