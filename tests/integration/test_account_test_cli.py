"""`mailbag account test NAME [--json] [--no-send]` end to end, in process, against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mailbag.config import (
    Account,
    SecretRef,
    SecretSource,
    Server,
    SmtpServer,
    load_config,
    save_account,
)
from mailbag.config.model import Protocol
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.sandbox import Sandbox

STEP_KEYS = {"name", "status", "detail", "hint", "ms"}


def add_account(
    home: Path,
    sb: Sandbox,
    name: str,
    password: str,
    *,
    port: int | None = None,
    user: str = "carol",
) -> None:
    pw_file = home / f"{name}.pw"
    pw_file.write_text(password + "\n")
    secret = SecretRef(SecretSource.COMMAND, f"cat {pw_file}")
    login = sb.address(user)
    save_account(
        Paths.from_env({"MAILBAG_HOME": str(home)}),
        Account(
            name=name,
            email=login,
            protocol=Protocol.IMAP,
            incoming=Server(
                "localhost", port or sb.ports.imaps, Security.SSL, login, secret=secret
            ),
            smtp=SmtpServer("localhost", sb.smtp_port, Security.STARTTLS, login, secret=secret),
            ca_file=sb.ca_file,
        ),
    )


def test_json_report_and_exit_0(sandbox: Sandbox, mailbag_home: Path, cli: Any) -> None:
    add_account(mailbag_home, sandbox, "good", sandbox.password("carol"))
    code, out, err = cli("account", "test", "good", "--json", "--no-send")
    assert code == 0, err
    doc = json.loads(out)  # stdout is exactly one JSON document
    assert set(doc) == {"account", "ok", "steps"}
    assert doc["account"] == "good" and doc["ok"] is True
    names = [s["name"] for s in doc["steps"]]
    assert names[:6] == ["dns", "connect", "tls", "capabilities", "login", "inbox"]
    assert names[6:11] == [
        "smtp-dns",
        "smtp-connect",
        "smtp-tls",
        "smtp-capabilities",
        "smtp-login",
    ]
    assert names[11:] == ["send", "receive"]
    for step in doc["steps"]:
        assert set(step) == STEP_KEYS
        assert step["status"] in ("ok", "skipped")
        assert isinstance(step["ms"], (int, float))
    assert doc["steps"][-1]["status"] == "skipped"
    # without NAME the default account is tested
    code, out, err = cli("account", "test", "--json", "--no-send")
    assert code == 0, err
    assert json.loads(out)["account"] == "good"


def test_human_output_lists_steps_with_marks_and_fix_exit_1(
    sandbox: Sandbox, mailbag_home: Path, cli: Any
) -> None:
    # SSL/TLS configured on the STARTTLS port
    add_account(mailbag_home, sandbox, "broken", sandbox.password("carol"), port=sandbox.ports.imap)
    code, out, _ = cli("account", "test", "broken", "--no-send")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("✓ dns")
    tls = next(line for line in lines if line.startswith("✗ tls"))
    assert "ms" in tls and "speaks plain text first" in tls
    assert any("fix: set the security to STARTTLS" in line for line in lines)
    assert any(line.startswith("- login") and "skipped because" in line for line in lines)
    assert any(line.startswith("✓ smtp-login") for line in lines)
    assert lines[-1] == "account 'broken': 1 failed (tls)"


def test_secret_never_appears_in_output_or_trace(
    sandbox: Sandbox, mailbag_home: Path, cli: Any, tmp_path: Path
) -> None:
    secret = sandbox.password("carol")
    add_account(mailbag_home, sandbox, "traced", secret)
    trace = tmp_path / "trace.log"
    code, out, err = cli("account", "test", "traced", "--no-send", "--trace", str(trace), "-vv")
    assert code == 0, out + err
    code_json, out_json, err_json = cli("account", "test", "traced", "--no-send", "--json", "-v")
    assert code_json == 0
    transcript = trace.read_text()
    assert "LOGIN" in transcript or "AUTHENTICATE" in transcript  # the login was traced...
    assert "AUTH PLAIN" in transcript
    for text in (out, err, out_json, err_json, transcript):
        assert secret not in text  # ...but never the password
    assert "<redacted>" in transcript


def test_unknown_account_is_a_configuration_error(mailbag_home: Path, cli: Any) -> None:
    code, out, err = cli("account", "test", "nope", "--json")
    assert code == 2
    assert out == ""
    assert "nope" in err


def test_round_trip_records_whether_the_server_files_sent_mail(
    fresh_sandbox: Sandbox, mailbag_home: Path, cli: Any
) -> None:
    sb = fresh_sandbox
    paths = Paths.from_env({"MAILBAG_HOME": str(mailbag_home)})
    add_account(mailbag_home, sb, "rt", sb.password("bob"), user="bob")
    sb.smtp_policy.save_sent = True
    code, out, err = cli("account", "test", "rt", "--json")
    assert code == 0, out + err
    steps = {s["name"]: s for s in json.loads(out)["steps"]}
    assert steps["send"]["status"] == "ok" and steps["receive"]["status"] == "ok"
    assert "filed a copy in Sent" in steps["receive"]["detail"]
    assert "server_saves_sent = true" in err
    assert load_config(paths).account("rt").server_saves_sent is True

    sb.smtp_policy.save_sent = False
    code, out, err = cli("account", "test", "rt")
    assert code == 0, out + err
    assert "did not file a copy in Sent" in out
    assert load_config(paths).account("rt").server_saves_sent is False
    with sb.control("bob") as imap:
        assert imap.uids("INBOX") == [] and imap.uids("Sent") == []
