"""Shared fixtures: the real sandbox servers, and an isolated MAILBAG_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """One Dovecot + SMTP for the whole run. Tests that change server state use
    their own users or folders, or the `fresh_sandbox` fixture."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def fresh_sandbox() -> Iterator[Sandbox]:
    """A sandbox of its own, for tests that stop, restart or break servers."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def mailbag_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mailbag-home"
    home.mkdir()
    monkeypatch.setenv("MAILBAG_HOME", str(home))
    return home
