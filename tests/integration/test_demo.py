"""`mailbag demo` as a script sees it: stdout not a TTY, so it lists and exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILBAG_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "mailbag", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_demo_prints_the_inbox_and_exits(tmp_path: Path) -> None:
    res = _run(["demo", "--messages", "30"], tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("INBOX of alice@sandbox.test")
    assert len(lines) > 10
    assert "Traceback" not in res.stderr


def test_demo_json_is_one_document_on_stdout(tmp_path: Path) -> None:
    res = _run(["demo", "--messages", "20", "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["folders"]["INBOX"] == 20
    assert len(doc["inbox"]) == 20
    assert {"uid", "date", "sender", "subject", "seen"} <= set(doc["inbox"][0])
