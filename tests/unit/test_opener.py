"""Opening a file with the system's handler: $MAILBAG_OPENER, else xdg-open; a real
process is started (a small script that records what it was given)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from mailbag.errors import UsageError
from mailbag.opener import open_file, opener_command


def _recorder(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "opened.txt"
    script = tmp_path / "viewer"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{out}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, out


def _wait_for(path: Path) -> str:
    deadline = time.monotonic() + 10
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, "the viewer was not started"
        time.sleep(0.02)
    return path.read_text()


def test_mailbag_opener_gets_the_file_as_its_last_argument(tmp_path: Path) -> None:
    script, out = _recorder(tmp_path)
    target = tmp_path / "a file; $(rm -rf x).pdf"  # no shell: the name is just a name
    target.write_bytes(b"%PDF")
    env = {"PATH": os.environ.get("PATH", ""), "MAILBAG_OPENER": f"{script} --flag"}
    proc = open_file(target, env)
    proc.wait(10)
    assert _wait_for(out).splitlines() == ["--flag", str(target)]


def test_xdg_open_is_the_default(tmp_path: Path) -> None:
    script, out = _recorder(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "xdg-open").symlink_to(script)
    env = {"PATH": str(bindir)}
    assert opener_command(env) == ["xdg-open"]
    open_file(tmp_path / "x.txt", env).wait(10)
    assert _wait_for(out).strip() == str(tmp_path / "x.txt")


def test_no_handler_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        opener_command({"PATH": str(tmp_path)})
    assert "MAILBAG_OPENER" in (err.value.hint or "")
    with pytest.raises(UsageError, match="MAILBAG_OPENER"):
        opener_command({"MAILBAG_OPENER": "'unbalanced", "PATH": ""})
    with pytest.raises(UsageError, match="cannot start"):
        open_file(tmp_path / "x", {"MAILBAG_OPENER": str(tmp_path / "missing"), "PATH": ""})
