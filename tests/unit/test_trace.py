from __future__ import annotations

from pathlib import Path

import pytest

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


def test_a_line_written_while_the_transcript_closes_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a helper thread may still be logging in (`sync.early`) when the command ends and
    # closes the transcript: its line is dropped, nothing raised in that thread
    from mailbag.protocols import trace

    path = tmp_path / "t.log"
    t = Transcript(path)
    t.sent("imap", b"A1 NOOP")

    def closing() -> tuple[()]:
        t.close()  # (between the check for an open file and the write)
        return ()

    monkeypatch.setattr(trace, "_secret_patterns", closing)
    t.sent("imap", b"A2 NOOP")
    assert path.read_text().splitlines()[-1].endswith("C: A1 NOOP")
