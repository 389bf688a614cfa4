"""Secrets: test keyring, password command, stdin, and the no-backend message."""

from __future__ import annotations

import io
import signal
import sys
from typing import Any

import pytest

from mailbag.config import Account, Protocol, SecretRef, SecretSource, Server, SmtpServer
from mailbag.config.secrets import (
    SERVICE,
    delete_secret,
    get_secret,
    keyring_problem,
    read_secret_stream,
    run_password_command,
    store_secret,
)
from mailbag.errors import SecretError
from mailbag.protocols.transport import Security
from mailbag.record import replace


def account(ref: SecretRef, smtp_ref: SecretRef | None = None) -> Account:
    return Account(
        name="w",
        email="me@example.com",
        protocol=Protocol.IMAP,
        incoming=Server("imap.example.com", 993, Security.SSL, "me", secret=ref),
        smtp=SmtpServer("smtp.example.com", 465, Security.SSL, "me", secret=smtp_ref or ref),
    )


def test_keyring_store_get_delete(memory_keyring: Any) -> None:
    ref = SecretRef(SecretSource.KEYRING, "w:incoming")
    acc = account(ref, SecretRef(SecretSource.KEYRING, "w:smtp"))
    assert keyring_problem() is None
    with pytest.raises(SecretError) as info:
        get_secret(acc, "incoming")
    assert info.value.hint is not None and "mailbag account set-password w" in info.value.hint
    store_secret(ref, "pa ss\u00e9")
    store_secret(SecretRef(SecretSource.KEYRING, "w:smtp"), "smtp-pw")
    assert memory_keyring.store[(SERVICE, "w:incoming")] == "pa ss\u00e9"
    assert get_secret(acc, "incoming") == "pa ss\u00e9"
    assert get_secret(acc, "smtp") == "smtp-pw"
    assert delete_secret(ref) is True
    assert delete_secret(ref) is False
    assert (SERVICE, "w:incoming") not in memory_keyring.store


@pytest.mark.usefixtures("no_keyring")
def test_no_backend_says_so_and_offers_alternatives() -> None:
    problem = keyring_problem()
    assert problem is not None and "no system keyring backend" in problem
    ref = SecretRef(SecretSource.KEYRING, "w:incoming")
    with pytest.raises(SecretError) as info:
        store_secret(ref, "secret")
    hint = info.value.hint or ""
    assert "--password-command" in hint and "--password-stdin" in hint
    assert "keyrings.alt" in hint
    with pytest.raises(SecretError, match="no system keyring"):
        get_secret(account(ref), "incoming")
    assert delete_secret(ref) is False


def test_password_command_without_shell() -> None:
    cmd = f"{sys.executable} -c \"print('first line'); print('second')\""
    assert run_password_command(cmd) == "first line"
    acc = account(SecretRef(SecretSource.COMMAND, cmd))
    assert get_secret(acc, "incoming") == "first line"
    assert get_secret(acc, "smtp") == "first line"


def test_password_command_with_shell_syntax() -> None:
    assert run_password_command("printf 'abc\\ndef\\n' | tail -n 1") == "def"


def test_password_command_failure_reports_status_and_stderr_not_stdout() -> None:
    cmd = (
        f"{sys.executable} -c \"import sys; print('TOP' + 'SECRET'); "
        "sys.stderr.write('gpg: decryption failed\\n'); sys.exit(3)\""
    )
    with pytest.raises(SecretError) as info:
        run_password_command(cmd)
    msg = info.value.message
    assert "exit status 3" in msg
    assert "gpg: decryption failed" in msg
    assert "TOPSECRET" not in msg


def test_password_command_missing_program_and_empty_output() -> None:
    with pytest.raises(SecretError, match="not found"):
        run_password_command("no-such-program-mailbag-test --flag")
    with pytest.raises(SecretError, match="printed no password"):
        run_password_command("true")


def test_password_command_timeout() -> None:
    with pytest.raises(SecretError, match="did not finish"):
        run_password_command("sleep 5", timeout=0.3)


def test_stdin() -> None:
    assert read_secret_stream(io.StringIO("s3cret\r\nignored\n")) == "s3cret"
    with pytest.raises(SecretError, match="no password"):
        read_secret_stream(io.StringIO(""))


def test_none_source() -> None:
    acc = account(
        SecretRef(SecretSource.KEYRING, "w:incoming"),
        SecretRef(SecretSource.NONE, ""),
    )
    acc = replace(acc, smtp=replace(acc.smtp, requires_auth=False))
    with pytest.raises(SecretError, match="no smtp password"):
        get_secret(acc, "smtp")


def test_password_command_with_much_output_on_both_streams_and_default_signals() -> None:
    # more than a pipe holds on each stream at once (no deadlock), the first line kept;
    # SIGPIPE is the command's as usual (Python ignores it for itself): `yes | head` ends
    cmd = (
        f"{sys.executable} -c \"import sys; sys.stderr.write('e' * 300000); "
        "print('pw'); print('x' * 300000)\""
    )
    assert run_password_command(cmd) == "pw"
    assert run_password_command("yes secret | head -n 1") == "secret"
    ignored = int(run_password_command("grep SigIgn /proc/self/status").split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    with pytest.raises(SecretError, match="exit status -9"):
        run_password_command("kill -9 $$")
