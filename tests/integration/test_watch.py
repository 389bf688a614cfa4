"""Push mail through IMAP IDLE: the library loop and `mailbag watch`."""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.config import save_account
from mailbag.config.model import Account, Protocol, SecretRef, SecretSource, Server, SmtpServer
from mailbag.errors import MailbagError
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.sandbox import Sandbox
from mailbag.store.index import Message
from mailbag.sync.watch import WatchOptions, watch_account


@pytest.fixture(scope="module")
def watch_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        sb.fill("bob", 3, "INBOX", seed=11)
        yield sb


def _account(tmp_path: Path, sb: Sandbox, user: str = "bob") -> tuple[Paths, Account]:
    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    pw = tmp_path / "pw"
    pw.write_text(sb.password(user) + "\n")
    secret = SecretRef(SecretSource.COMMAND, f"cat {pw}")
    address = sb.address(user)
    account = Account(
        name="push",
        email=address,
        protocol=Protocol.IMAP,
        incoming=Server(sb.host, sb.ports.imap, Security.STARTTLS, address, secret=secret),
        smtp=SmtpServer(sb.host, sb.smtp_port, Security.STARTTLS, address, secret=secret),
        ca_file=sb.ca_file,
    )
    save_account(paths, account, make_default=True)
    return paths, account


def _wait_for_first_sync(paths: Paths, timeout: float = 60) -> None:
    """Until the watch has caught up with the INBOX once (its SELECT came first, so
    mail delivered from now on is new to it). A fixed sleep was not enough on a
    loaded machine: mail delivered before that SELECT is part of the initial download
    and rightly never reported. Read-only: the watch's own sync creates the index."""
    deadline = time.monotonic() + timeout
    while True:
        done = None
        if paths.index_file.exists():
            try:
                with sqlite3.connect(f"file:{paths.index_file}?mode=ro", uri=True) as db:
                    done = db.execute(
                        "SELECT f.last_sync FROM folders f JOIN accounts a ON a.id = f.account_id"
                        " WHERE a.name = 'push' AND f.name = 'INBOX'"
                    ).fetchone()
            except sqlite3.Error:
                pass  # (being created)
        if done and done[0] is not None:
            return
        assert time.monotonic() < deadline, "the watch never synced its INBOX"
        time.sleep(0.05)


def _message(subject: str) -> bytes:
    return f"From: carol@sandbox.test\r\nSubject: {subject}\r\n\r\nhi\r\n".encode()


def test_new_mail_is_reported_as_it_arrives(watch_sandbox: Sandbox, tmp_path: Path) -> None:
    paths, account = _account(tmp_path, watch_sandbox)
    got: queue.Queue[list[Message]] = queue.Queue()
    errors: list[MailbagError] = []
    stop = threading.Event()
    t = threading.Thread(
        target=watch_account,
        kwargs={
            "account": account,
            "paths": paths,
            "on_new": got.put,
            "on_error": errors.append,
            "stop": stop,
            "options": WatchOptions(wake_every=0.5),
        },
    )
    t.start()
    try:
        _wait_for_first_sync(paths)
        time.sleep(0.5)  # (time for a wrong report of the initial download to show)
        assert got.empty()  # the initial download (empty local INBOX) is not reported as new
        subject = f"pushed {time.time_ns()}"
        watch_sandbox.deliver("bob", _message(subject))
        batch = got.get(timeout=15)
        assert [m.subject for m in batch] == [subject]
        assert batch[0].folder == "INBOX" and batch[0].account == "push"

        # a dropped connection is reopened and mail that came meanwhile is reported
        watch_sandbox.drop_connections("bob")
        later = f"after the drop {time.time_ns()}"
        watch_sandbox.deliver("bob", _message(later))
        seen: list[str] = []
        deadline = time.monotonic() + 20
        while later not in seen and time.monotonic() < deadline:
            seen += [m.subject for m in got.get(timeout=20)]
        assert later in seen
    finally:
        stop.set()
        t.join(timeout=10)
    assert not t.is_alive()


def test_watch_command_prints_json_lines_and_runs_exec(
    watch_sandbox: Sandbox, tmp_path: Path
) -> None:
    paths, _ = _account(tmp_path, watch_sandbox, "carol")
    out_file = tmp_path / "exec.txt"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$MAILBAG_ID $MAILBAG_SUBJECT" >> {out_file}\n')
    hook.chmod(0o755)
    env = {**os.environ, "MAILBAG_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailbag",
            "watch",
            "--json",
            "--exec",
            str(hook),
            "--wake-every",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert "watching push/INBOX" in proc.stderr.readline()
        _wait_for_first_sync(paths)
        # a subject with a terminal escape: the hook gets it cleaned
        subject = f"watch cli {time.time_ns()} \x1b[31mred"
        watch_sandbox.deliver("carol", _message(subject))
        line = proc.stdout.readline()
        doc = json.loads(line)
        assert doc["subject"] == subject and doc["account"] == "push"
        assert {"id", "folder", "date", "from", "flags", "size"} <= set(doc)
        deadline = time.monotonic() + 10
        while not out_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = out_file.read_text()
        assert text.startswith(doc["id"] + " watch cli") and "\x1b" not in text
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_watch_refuses_pop3_accounts(tmp_path: Path, watch_sandbox: Sandbox) -> None:
    from mailbag.record import replace

    paths, account = _account(tmp_path, watch_sandbox)
    save_account(paths, replace(account, protocol=Protocol.POP3))
    env = {**os.environ, "MAILBAG_HOME": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-m", "mailbag", "watch", "push"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert res.returncode == 2 and "POP3 has no push" in res.stderr
