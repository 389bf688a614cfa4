"""Attachment names never leave the chosen folder and never overwrite a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostile import corpus
from mailbag.errors import UsageError
from mailbag.message.attachments import list_attachments, safe_filename, save_attachments
from mailbag.message.parse import parse_message


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../.ssh/authorized_keys", "authorized_keys"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("C:\\Users\\x\\evil.bat", "evil.bat"),
        ("..", "attachment.bin"),
        (".", "attachment.bin"),
        ("", "attachment.bin"),
        (None, "attachment.bin"),
        (".bashrc", "bashrc"),
        ("\x1b[31mred\x1b[0m.txt", "[31mred[0m.txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("a\x00b\x07c.txt", "abc.txt"),
        ("con.txt", "_con.txt"),
        ("x:y.txt", "x_y.txt"),
        ("Übersicht.pdf", "Übersicht.pdf"),
        ("dir/", "attachment.bin"),
    ],
)
def test_safe_filename(name: str | None, safe: str) -> None:
    assert safe_filename(name) == safe


def test_long_names_keep_their_extension() -> None:
    out = safe_filename("é" * 300 + ".pdf")
    assert out.endswith(".pdf") and len(out.encode()) <= 200


def test_hostile_names_are_listed_decoded() -> None:
    names = [a.name for a in list_attachments(parse_message(corpus()["path-traversal.eml"]))]
    assert "../../bashrc" in names  # RFC 2231 %2e%2e%2f decoded before sanitising
    assert "../split.txt" in names  # RFC 2231 continuations
    assert "../encoded-word.txt" in names


def test_save_stays_inside_the_folder_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "passwd").write_text("mine")
    outside = tmp_path / "victim.txt"
    (target / "same.txt").symlink_to(outside)  # a planted symlink is not followed
    msg = parse_message(corpus()["path-traversal.eml"])
    saved = save_attachments(msg, target)
    assert len(saved) == 11
    for _, path in saved:
        assert path.parent == target
        assert path.resolve().parent == target.resolve()
    assert (target / "passwd").read_text() == "mine"
    assert (target / "passwd (1)").read_text() == "root:x:0:0"
    assert not outside.exists()
    names = sorted(os.listdir(target))
    assert names == sorted(
        [
            "authorized_keys",
            "passwd",
            "passwd (1)",
            "system.ini",
            "bashrc",
            "split.txt",
            "attachment-6.bin",
            "same.txt",
            "same (1).txt",
            "same (2).txt",
            "ctrlname .txt",
            "encoded-word.txt",
            "attachment-11.png",
        ]
    )
    assert (target / "same (1).txt").read_text() == "first"
    assert (target / "same (2).txt").read_text() == "second"
    assert not any(tmp_path.glob("*bashrc")) and not (tmp_path / ".ssh").exists()


def test_save_into_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    msg = parse_message(corpus()["path-traversal.eml"])
    with pytest.raises(UsageError):
        save_attachments(msg, tmp_path / "nope")


def test_forwarded_message_is_saved_as_eml(tmp_path: Path) -> None:
    msg = parse_message(corpus()["forwarded.eml"])
    [(_att, path)] = save_attachments(msg, tmp_path)
    assert path.name == "the original.eml"
    assert path.read_bytes().startswith(b"From: Bob <bob@example.org>")
