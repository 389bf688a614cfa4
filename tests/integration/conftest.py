"""Fixtures for the account/discovery CLI tests: local DNS and autoconfig HTTPS servers."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailbag.cli.main import main
from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.sandbox.discovery import LocalDns, LocalHttps, client_config_xml

AUTOCONFIG = "/mail/config-v1.1.xml"


@dataclass
class Env:
    sandbox: Sandbox
    dns: LocalDns
    web: LocalHttps
    home: Path
    keyring: Any

    @property
    def paths(self) -> Paths:
        return Paths.from_env({"MAILBAG_HOME": str(self.home)})

    def serve_autoconfig(self) -> None:
        sb = self.sandbox
        self.web.documents[AUTOCONFIG] = client_config_xml(
            sb.domain,
            [
                ("imap", "localhost", sb.ports.imaps, "SSL"),
                ("pop3", "localhost", sb.ports.pop3s, "SSL"),
                ("smtp", "localhost", sb.smtps_port, "SSL"),
            ],
        )


@pytest.fixture
def discovery_env(
    sandbox: Sandbox, mailbag_home: Path, memory_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    yield from _discovery_env(sandbox, mailbag_home, memory_keyring, monkeypatch)


@pytest.fixture
def oauth_discovery_env(
    oauth_sandbox: Sandbox,
    mailbag_home: Path,
    memory_keyring: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Env]:
    """`discovery_env` around the OAuth2 sandbox (its local authorization server: `.oauth2`)."""
    yield from _discovery_env(oauth_sandbox, mailbag_home, memory_keyring, monkeypatch)


def _discovery_env(
    sandbox: Sandbox, mailbag_home: Path, memory_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    dns = LocalDns()
    dns.add(f"autoconfig.{sandbox.domain}", "A", "127.0.0.1")
    dns.add(sandbox.domain, "A", "127.0.0.1")
    with dns, LocalHttps(sandbox.certs) as web:
        (mailbag_home / "config.toml").write_text(
            "# discovery endpoints for this test\n"
            "[discovery]\n"
            f'dns_server = "127.0.0.1"\ndns_port = {dns.port}\n'
            f"https_port = {web.port}\n"
            f'ispdb_url = "https://localhost:{web.port}/v1.1/"\n'
            f'ca_file = "{sandbox.ca_file}"\n'
            "timeout = 2\n"
        )
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        yield Env(sandbox, dns, web, mailbag_home, memory_keyring)


def run_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class Cli:
    """Runs the CLI in-process: `cli("account", "list", stdin="")` -> (code, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(capsys, monkeypatch)


class TtyInput(io.StringIO):
    """Typed answers on a terminal (for the prompts `account add` shows on a TTY)."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def tty_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Like `cli`, but stdin looks like a terminal: `tty_cli(..., stdin="y\\n")`."""

    class TtyCli(Cli):
        def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
            self.monkeypatch.setattr(sys, "stdin", TtyInput(stdin))
            code = main(list(argv))
            out, err = self.capsys.readouterr()
            return code, out, err

    return TtyCli(capsys, monkeypatch)
