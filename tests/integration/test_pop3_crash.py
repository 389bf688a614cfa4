"""SIGKILL during POP3 download sessions, then run again: every message exactly once here,
nothing removed from the server that is not stored here.

The size is an environment variable so a long soak can run locally:
MAILBAG_TEST_POP3_CRASH_MESSAGES (default 40) and MAILBAG_TEST_POP3_RANDOM_KILLS (default 6).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from pop3_support import server_bodies, take_user

from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store

CHILD = Path(__file__).with_name("pop3_child.py")
MESSAGES = int(os.environ.get("MAILBAG_TEST_POP3_CRASH_MESSAGES", "40"))
RANDOM_KILLS = int(os.environ.get("MAILBAG_TEST_POP3_RANDOM_KILLS", "6"))


def spec(sb: Sandbox, user: str, home: Path, *, leave: bool, crash: str = "") -> str:
    return json.dumps(
        {
            "user": user,
            "email": sb.address(user),
            "password": sb.password(user),
            "port": sb.ports.pop3s,
            "ca_file": str(sb.ca_file),
            "home": str(home),
            "leave": leave,
            "batch": 7,
            "crash": crash,
        }
    )


def run_child(spec_json: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, str(CHILD), spec_json], capture_output=True, timeout=120, check=False
    )
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.decode()[-3000:]
    return proc.returncode, proc.stdout.decode().strip()


def local(home: Path, user: str) -> Counter[bytes]:
    """Every message the local store holds for the account, as the user would see them."""
    paths = Paths(config_dir=home, data_dir=home / "data", state_dir=home / "state")
    with Store.open(paths) as store:
        folder = store.folder(user, "INBOX", role="inbox")
        store.recover(folder)  # what the next session does first
        store.commit()
        return Counter(store.read_bytes(m) for m in store.messages(account=user))


def check_invariants(sb: Sandbox, user: str, home: Path, original: Counter[bytes]) -> None:
    here = local(home, user)
    # never twice, and never anything that was not on the server
    assert all(n == 1 for n in here.values()), "a message is stored twice"
    assert not (here - original), "a stored message differs from the server's"
    # whatever left the server is stored here
    on_server = Counter(server_bodies(sb, user))
    removed = original - on_server
    assert not (removed - here), f"{sum((removed - here).values())} removed but not stored"


def test_sigkill_at_each_step_of_download_and_removal(pop_sandbox: Sandbox, tmp_path: Path) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, MESSAGES, seed=11)
    original = Counter(server_bodies(sb, user))
    assert len(original) == MESSAGES
    home = tmp_path / "home"
    points = [
        "add:3",  # mid-batch, nothing committed yet
        "fsync:5",  # files being fsynced, COMMIT not reached
        "deliver:2",  # committed, renames into new/ under way
        "commit:2",  # right after a batch commit
        "add:9",
        "dele:3",  # DELEs sent, no QUIT: the server commits nothing
        "quit:0",  # every DELE sent, killed before QUIT
        "quit:1",  # QUIT acknowledged, killed before the ledger heard of it
    ]
    outcomes = []
    for point in points:
        outcomes.append((point, *run_child(spec(sb, user, home, leave=False, crash=point))))
        check_invariants(sb, user, home, original)
    # each point must really have been reached, or the test proves nothing
    assert all(code == -signal.SIGKILL for _, code, _ in outcomes), outcomes
    assert run_child(spec(sb, user, home, leave=False))[0] == 0
    check_invariants(sb, user, home, original)
    assert server_bodies(sb, user) == []
    assert local(home, user) == original


def test_sigkill_at_random_moments_leave_on_server(pop_sandbox: Sandbox, tmp_path: Path) -> None:
    sb, user = pop_sandbox, take_user()
    sb.fill(user, MESSAGES, seed=12)
    original = Counter(server_bodies(sb, user))
    home = tmp_path / "home"
    rng = random.Random(5)
    for _ in range(RANDOM_KILLS):
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), spec(sb, user, home, leave=True)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.15, 0.9))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-3000:]
        check_invariants(sb, user, home, original)
    assert run_child(spec(sb, user, home, leave=True))[0] == 0
    assert local(home, user) == original
    assert Counter(server_bodies(sb, user)) == original
