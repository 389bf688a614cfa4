"""`--help` of `account login` and `account add` teaches OAuth2 sign-in: what it is for,
where to get a client ID, and how to sign in without a browser."""

from __future__ import annotations

import pytest

from mailbag.cli.main import main


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_account_login_help(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "account", "login")
    assert "sign in again" in text
    assert "Signing in with OAuth2" in text  # where the registration steps are
    assert "--device" in text and "not possible with Gmail" in text
    assert "mailbag account login work --device" in text
    assert "no client ID of its own" in text


def test_account_add_help_explains_auth_and_the_client_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(capsys, "account", "add")
    assert "--auth {password,oauth2} how to log in" in text
    assert "Default: password when the server accepts one, else oauth2" in text
    assert "register one with the provider" in text
    assert "--oauth-client-id ID" in text
    assert "mailbag account add you@outlook.com --oauth-client-id ID" in text
