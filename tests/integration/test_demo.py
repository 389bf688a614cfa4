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


def test_demo_adds_tests_syncs_lists_and_cleans_up(tmp_path: Path) -> None:
    res = _run(["demo", "--messages", "30"], tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    # the synced inbox: the welcome note on top, then sample mail, 25 lines
    assert len(lines) == 25
    assert "Welcome to mailbag" in lines[0]
    # it went through the normal path: account test steps, a sync, then removal
    for step in ("✓ login", "✓ inbox", "✓ smtp-login", "✓ send", "✓ receive"):
        assert step in res.stderr
    assert "saved account 'demo'" in res.stderr
    assert "31 new" in res.stderr or "new," in res.stderr
    assert "removed account 'demo'" in res.stderr
    assert "Traceback" not in res.stderr and "deprecated" not in res.stderr
    config = (tmp_path / "config.toml").read_text()
    assert "[accounts.demo" not in config
    assert "local mail removed" in res.stderr
    assert not (tmp_path / "data" / "mail" / "demo").exists()


def test_demo_json_is_one_document_on_stdout(tmp_path: Path) -> None:
    res = _run(["demo", "--messages", "20", "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert len(doc) == 21  # 20 samples + the welcome note, all in INBOX
    assert doc[0]["subject"] == "Welcome to mailbag"
    assert {"id", "account", "folder", "date", "from", "subject", "flags"} <= set(doc[0])
    assert {m["account"] for m in doc} == {"demo"}


def test_demo_keeps_a_real_account_named_demo(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'default = "demo"\n\n[accounts.demo]\nemail = "me@example.org"\nprotocol = "imap"\n\n'
        '[accounts.demo.incoming]\nhost = "imap.example.org"\nport = 993\nsecurity = "ssl"\n\n'
        '[accounts.demo.smtp]\nhost = "smtp.example.org"\nport = 465\nsecurity = "ssl"\n'
    )
    res = _run(["demo", "--messages", "5"], tmp_path)
    assert res.returncode == 2
    assert "not a demo account" in res.stderr
    assert "imap.example.org" in (tmp_path / "config.toml").read_text()
