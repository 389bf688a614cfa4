from __future__ import annotations

import pytest

from mailbag.textsafe import clean_terminal


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain subject", "plain subject"),
        ("red \x1b[31malert\x1b[0m", "red alert"),
        ("title \x1b]0;pwned\x07 done", "title  done"),
        ("clip \x1b]52;c;ZXZpbA==\x07!", "clip !"),
        ("bidi \u202egnp.exe", "bidi gnp.exe"),
        ("isolate \u2066x\u2069", "isolate x"),
        ("nul\x00byte", "nulbyte"),
        ("c1 \x9b31m", "c1 31m"),
        ("line\r\nbreak", "line break"),
        ("tab\there", "tab here"),
        ("Zoë 日本", "Zoë 日本"),
    ],
)
def test_single_line(raw: str, expected: str) -> None:
    assert clean_terminal(raw) == expected


def test_keep_newlines_for_bodies() -> None:
    body = "first\r\nsecond\n\x1b[2Jthird\x07"
    assert clean_terminal(body, keep_newlines=True) == "first\nsecond\nthird"
