"""Helpers for the interactive-client tests: a mailbag home holding one sandbox account."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
