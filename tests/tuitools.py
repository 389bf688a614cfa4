"""Helpers for the interactive-client tests: a mailbag home holding one sandbox account,
and waiting for the app to get somewhere."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailbag.config import save_account
from mailbag.paths import Paths
from mailbag.sandbox import Sandbox


def sandbox_home(
    tmp_path: Path, sb: Sandbox, user: str, name: str, display_name: str | None = None
) -> Paths:
    """Paths under `tmp_path` whose config has `user`'s sandbox account as the default
    (implicit TLS both ways, the password from a command: no keyring needed)."""
    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    account = sb.account(user, name=name, password_command=True)
    if display_name is not None:
        account = dataclasses.replace(account, display_name=display_name)
    save_account(paths, account, make_default=True)
    return paths


def status_line(app: Any) -> str:
    """What the main screen's status bar says."""
    return str(app.query_one("#status").render())


async def wait_for(
    pilot: Any,
    check: Callable[[], object],
    timeout: float = 20.0,
    *,
    explain: Callable[[], object] | None = None,
) -> None:
    """Let the app run (workers, timers, pushed mail) until `check()` holds; after
    `timeout` seconds fail, saying what `explain()` (else the status bar) shows."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            shown = explain() if explain is not None else status_line(pilot.app)
            raise AssertionError(f"the screen did not get there in time ({shown})")
        await pilot.pause(0.05)
