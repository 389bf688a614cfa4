from __future__ import annotations

import pytest

from mailbag.errors import SandboxError
from mailbag.sandbox.dovecot import find_dovecot


def test_missing_dovecot_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxError) as info:
        find_dovecot(extra=())
    assert "apt-get install dovecot-imapd dovecot-pop3d dovecot-lmtpd" in (info.value.hint or "")


def test_dovecot_is_found_here() -> None:
    # CI installs it through scripts/setup; its absence must fail, never skip
    assert find_dovecot().name == "dovecot"
