"""Sending against the real sandbox: SMTP submission + Dovecot.

This module runs its own sandbox with its own users (it changes server state:
SMTP policy switches, Sent folders), so other tests' mailboxes are never touched.
Tests that stop servers use `fresh_sandbox`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbag.config import (
    Account,
    Config,
    Protocol,
    SecretRef,
    SecretSource,
    Server,
    SmtpServer,
    load_config,
    save_account,
)
from mailbag.message.addresses import parse_address
from mailbag.message.compose import Attachment, build, draft_from_flags
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from mailbag.store.outbox import Outbox, OutboxState
from mailbag.sync.outbox import enqueue, retry
from mailbag.sync.sending import send_outbox

pytestmark = pytest.mark.sandbox

USERS = {
    "sam": "sam-secret",
    "rita": "rita-secret",
    "ross": "ross-secret",
    "bea": "bea-secret",
    "otto": "otto-secret",
    "polly": "polly-secret",
}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(users=USERS) as box:
        yield box


def make_account(
    sb: Sandbox,
    user: str,
    *,
    name: str | None = None,
    protocol: Protocol = Protocol.IMAP,
    smtp_ssl: bool = False,
    server_saves_sent: bool = False,
) -> Account:
    secret = SecretRef(SecretSource.COMMAND, f"echo {sb.password(user)}")
    incoming_port = sb.ports.imaps if protocol is Protocol.IMAP else sb.ports.pop3s
    return Account(
        name=name or user,
        email=sb.address(user),
        protocol=protocol,
        display_name=user.capitalize() + " Tester",
        incoming=Server(sb.host, incoming_port, Security.SSL, sb.address(user), secret=secret),
        smtp=SmtpServer(
            sb.host,
            sb.smtps_port if smtp_ssl else sb.smtp_port,
            Security.SSL if smtp_ssl else Security.STARTTLS,
            sb.address(user),
            secret=secret,
        ),
        ca_file=sb.ca_file,
        server_saves_sent=server_saves_sent,
    )


def setup_home(home: Path, *accounts: Account) -> tuple[Paths, Config]:
    paths = Paths.from_env({"MAILBAG_HOME": str(home)})
    for i, account in enumerate(accounts):
        save_account(paths, account, make_default=i == 0)
    return paths, load_config(paths)


def parsed(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def with_id(sb: Sandbox, user: str, folder: str, message_id: str) -> list[bytes]:
    """Every message in `folder` of `user` whose Message-ID is `message_id`."""
    with sb.control(user) as c:
        bodies = c.fetch_bodies(folder)
    out = []
    for data in bodies.values():
        m = re.search(rb"(?im)^Message-ID:\s*(<[^>]*>)", data)
        if m and m.group(1).decode() == message_id:
            out.append(data)
    return out


def trace_headers_then(delivered: bytes, composed: bytes) -> None:
    """The delivered message is the composed one with only trace headers in front."""
    assert delivered.endswith(composed), "the message changed on the way"
    prefix = delivered[: len(delivered) - len(composed)]
    names = {
        line.split(b":", 1)[0].lower()
        for line in prefix.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    }
    assert names <= {b"return-path", b"delivered-to", b"received", b"x-peer"}, names


# --- the round trip ------------------------------------------------------------------------


def test_message_arrives_byte_for_byte(sb: Sandbox, tmp_path: Path) -> None:
    paths, config = setup_home(tmp_path / "home", make_account(sb, "sam"))
    pdf = tmp_path / "Bericht über Köln.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40)
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"plain\nlines\n")
    draft = draft_from_flags(
        from_=parse_address("Sam Tester <sam@sandbox.test>"),
        to=["Rita <rita@sandbox.test>"],
        cc=["ross@sandbox.test"],
        subject="Grüße – a test with ümlauts",
        body="Hällo Rita,\n.\n..leading dots\nFrom the start of a line\n" + "x" * 1200,
        attach=[pdf, notes],
    )
    composed = build(draft)
    outbox = Outbox.open(paths)
    record = enqueue(outbox, config.account("sam"), composed)
    result = send_outbox(paths, config, ids=[record.id])
    assert result.ok, result.reports[0].error
    report = result.reports[0]
    assert sorted(r["address"] for r in report.recipients if r["status"] == "accepted") == [
        "rita@sandbox.test",
        "ross@sandbox.test",
    ]
    assert outbox.ids() == []  # sent and copied: nothing left behind

    for user in ("rita", "ross"):
        got = with_id(sb, user, "INBOX", composed.message_id)
        assert len(got) == 1
        trace_headers_then(got[0], composed.data)
        msg = parsed(got[0])
        assert msg["Subject"] == "Grüße – a test with ümlauts"
        body = msg.get_body(preferencelist=("plain",))
        assert body is not None
        assert body.get_content().replace("\r\n", "\n").startswith("Hällo Rita,\n.\n..leading")
        atts = list(msg.iter_attachments())
        assert [a.get_filename() for a in atts] == ["Bericht über Köln.pdf", "notes.txt"]
        assert atts[0].get_content_type() == "application/pdf"
        assert atts[0].get_payload(decode=True) == pdf.read_bytes()
        assert atts[1].get_payload(decode=True) == notes.read_bytes()
    # the Sent copy: exactly once, the same bytes
    sent = with_id(sb, "sam", "Sent", composed.message_id)
    assert len(sent) == 1
    assert sent[0].endswith(composed.data)


def test_bcc_gets_it_without_a_bcc_header(sb: Sandbox, tmp_path: Path) -> None:
    setup_home(tmp_path / "home", make_account(sb, "sam"))
    home = str(tmp_path / "home")
    code = run_cli(
        home,
        "send",
        "--to",
        "rita@sandbox.test",
        "--bcc",
        "bea@sandbox.test",
        "--subject",
        "secret copy",
        "--body",
        "hi",
        "--json",
    )
    assert code.returncode == 0, code.stderr
    doc = json.loads(code.stdout)
    mid = doc["message_id"]
    for user in ("rita", "bea"):
        got = with_id(sb, user, "INBOX", mid)
        assert len(got) == 1
        assert b"bea@sandbox.test" not in got[0].split(b"\r\n\r\n", 1)[0].split(b"Delivered-To")[0]
        assert parsed(got[0])["Bcc"] is None
    # the sender's own copy says who was on Bcc
    sent = with_id(sb, "sam", "Sent", mid)
    assert len(sent) == 1 and parsed(sent[0])["Bcc"] == "bea@sandbox.test"


def run_cli(
    home: str, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "MAILBAG_HOME": home, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mailbag", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


# --- header injection ----------------------------------------------------------------------

EVIL = b"=?UTF-8?Q?hi=0ABcc:_x@evil?="


def test_injection_from_user_input_is_refused(sb: Sandbox, tmp_path: Path) -> None:
    setup_home(tmp_path / "home", make_account(sb, "sam"))
    home = str(tmp_path / "home")
    for args in (
        ["--to", "rita@sandbox.test", "--subject", "hi\nBcc: x@evil.test"],
        ["--to", "rita@sandbox.test", "--subject", EVIL.decode()],
        ["--to", "rita@sandbox.test\r\nBcc: x@evil.test", "--subject", "s"],
        ["--to", "rita@sandbox.test)<x@evil.test>", "--subject", "s"],
    ):
        res = run_cli(home, "send", *args, "--body", "b")
        assert res.returncode == 2, (args, res.stderr)
        assert "error" in res.stderr
    assert Outbox.open(Paths.from_env({"MAILBAG_HOME": home})).ids() == []


def original_in_store(paths: Paths, account: str, data: bytes) -> int:
    with Store.open(paths) as store:
        folder = store.folder(account, "INBOX", role="inbox")
        return store.add_bytes(folder, data).id


EDITOR = textwrap.dedent(
    """\
    import sys
    path = sys.argv[1]
    text = open(path, encoding="utf-8").read()
    head, sep, body = text.partition("\\n\\n")
    extra = {extra!r}
    for line in extra.get("replace", []):
        old, new = line
        head = head.replace(old, new)
    body = extra.get("body", "") + body
    open(path, "w", encoding="utf-8").write(head + sep + body)
    """
)


def editor(tmp_path: Path, **extra: object) -> dict[str, str]:
    script = tmp_path / "fake_editor.py"
    script.write_text(EDITOR.format(extra=extra))
    return {"EDITOR": f"{sys.executable} {script}", "VISUAL": "false"}


def test_reply_all_headers_and_injection_from_original(sb: Sandbox, tmp_path: Path) -> None:
    paths, _ = setup_home(tmp_path / "home", make_account(sb, "otto"))
    original = (
        b"From: Rita <rita@sandbox.test>\r\n"
        b"To: otto@sandbox.test, Ross <ross@sandbox.test>\r\n"
        b"Cc: OTTO@sandbox.test, ross@sandbox.test, bea@sandbox.test\r\n"
        b"Subject: " + EVIL + b"\r\n"
        b"Message-ID: <orig-1@sandbox.test>\r\n"
        b"References: <root@sandbox.test>\r\n"
        b"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\n"
        b"Can you check this?\r\n"
    )
    mid = original_in_store(paths, "otto", original)
    res = run_cli(
        str(tmp_path / "home"),
        "reply",
        str(mid),
        "--all",
        "--json",
        stdin="s\n",
        env=editor(tmp_path, body="Checked.\n"),
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    accepted = sorted(r["address"] for r in doc["recipients"])
    # no duplicates, none of the user's own addresses, nobody from the subject
    assert accepted == ["bea@sandbox.test", "rita@sandbox.test", "ross@sandbox.test"]
    got = with_id(sb, "rita", "INBOX", doc["message_id"])
    assert len(got) == 1
    msg = parsed(got[0])
    assert msg["Subject"] == "Re: hi Bcc: x@evil"
    assert msg["Bcc"] is None
    assert msg["In-Reply-To"] == "<orig-1@sandbox.test>"
    assert msg["References"] == "<root@sandbox.test> <orig-1@sandbox.test>"
    assert [a.addr_spec for a in msg["To"].addresses] == ["rita@sandbox.test"]
    assert sorted(a.addr_spec for a in msg["Cc"].addresses) == [
        "bea@sandbox.test",
        "ross@sandbox.test",
    ]
    text = msg.get_content().replace("\r\n", "\n")
    assert text.startswith("Checked.\n")
    assert "Rita <rita@sandbox.test> wrote:\n> Can you check this?" in text
    # the original is now flagged as answered in the local store
    with Store.open(paths) as store:
        m = store.get(mid)
        assert m is not None and "\\Answered" in m.flags


def test_plain_reply_goes_to_reply_to(sb: Sandbox, tmp_path: Path) -> None:
    paths, _ = setup_home(tmp_path / "home", make_account(sb, "otto"))
    original = (
        b"From: Ross <ross@sandbox.test>\r\nReply-To: bea@sandbox.test\r\n"
        b"To: otto@sandbox.test\r\nCc: rita@sandbox.test\r\nSubject: Re: RE: plans\r\n"
        b"Message-ID: <orig-2@sandbox.test>\r\n\r\nplans\r\n"
    )
    mid = original_in_store(paths, "otto", original)
    res = run_cli(
        str(tmp_path / "home"), "reply", str(mid), "--json", stdin="s\n", env=editor(tmp_path)
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [r["address"] for r in doc["recipients"]] == ["bea@sandbox.test"]
    got = with_id(sb, "bea", "INBOX", doc["message_id"])
    assert parsed(got[0])["Subject"] == "Re: plans"


def test_forward_inline_and_as_attachment(sb: Sandbox, tmp_path: Path) -> None:
    paths, _ = setup_home(tmp_path / "home", make_account(sb, "otto"))
    original = (
        b"From: Ross <ross@sandbox.test>\r\nTo: otto@sandbox.test\r\nSubject: report\r\n"
        b"Message-ID: <orig-3@sandbox.test>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"
        b"\r\n\r\nthe r\xc3\xa9port text\r\n"
        b"--b1\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="r.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
    )
    mid = original_in_store(paths, "otto", original)
    home = str(tmp_path / "home")
    to_rita = editor(tmp_path, replace=[["To: \n", "To: rita@sandbox.test\n"]], body="FYI\n")
    res = run_cli(home, "forward", str(mid), "--json", stdin="s\n", env=to_rita)
    assert res.returncode == 0, res.stderr
    inline = parsed(with_id(sb, "rita", "INBOX", json.loads(res.stdout)["message_id"])[0])
    assert inline["Subject"] == "Fwd: report"
    text = inline.get_body(preferencelist=("plain",))
    assert text is not None
    content = text.get_content()
    assert "---------- Forwarded message ----------" in content
    assert "the réport text" in content
    att = next(iter(inline.iter_attachments()))
    assert (att.get_filename(), att.get_payload(decode=True)) == ("r.pdf", b"%PDF-1.4\n")

    res = run_cli(home, "forward", str(mid), "--as-attachment", "--json", stdin="s\n", env=to_rita)
    assert res.returncode == 0, res.stderr
    got = with_id(sb, "rita", "INBOX", json.loads(res.stdout)["message_id"])
    assert len(got) == 1
    assert original in got[0]  # the original travels unchanged, byte for byte
    inner = next(iter(parsed(got[0]).iter_attachments()))
    assert inner.get_content_type() == "message/rfc822"


def test_compose_saved_as_draft(sb: Sandbox, tmp_path: Path) -> None:
    setup_home(tmp_path / "home", make_account(sb, "polly"))
    env = editor(
        tmp_path,
        replace=[["Subject: \n", "Subject: unfinished\n"], ["Bcc: \n", "Bcc: bea@sandbox.test\n"]],
        body="half a thought\n",
    )
    res = run_cli(str(tmp_path / "home"), "compose", "--json", stdin="d\n", env=env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["state"] == "draft-saved"
    drafts = with_id(sb, "polly", "Drafts", doc["message_id"])
    assert len(drafts) == 1
    assert parsed(drafts[0])["Bcc"] == "bea@sandbox.test"  # a draft keeps its Bcc
    with sb.control("polly") as c:
        flags = c.flags("Drafts")
    assert any("\\Draft" in f for f in flags.values())
    assert with_id(sb, "bea", "INBOX", doc["message_id"]) == []  # nothing was sent


def test_editor_abort_and_eof_keeps_a_draft(sb: Sandbox, tmp_path: Path) -> None:
    setup_home(tmp_path / "home", make_account(sb, "polly"))
    home = str(tmp_path / "home")
    res = run_cli(home, "compose", "--to", "rita@sandbox.test", stdin="a\n", env=editor(tmp_path))
    assert res.returncode == 1 and "aborted" in res.stderr
    env = editor(tmp_path, body="some words\n")
    res = run_cli(home, "compose", "--json", stdin="", env=env)  # end of input
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"] == "draft-saved"


# --- failures --------------------------------------------------------------------------------


def test_permanent_rejection_is_reported_and_kept(sb: Sandbox, tmp_path: Path) -> None:
    setup_home(tmp_path / "home", make_account(sb, "sam"))
    home = str(tmp_path / "home")
    sb.smtp_policy.reject_data = "554 5.7.1 Message rejected as spam"
    try:
        res = run_cli(home, "send", "--to", "rita@sandbox.test", "--subject", "buy", "--body", "x")
    finally:
        sb.smtp_policy.reject_data = None
    assert res.returncode == 1
    assert "554 5.7.1 Message rejected as spam" in res.stderr
    assert "abusive" in res.stderr  # translated
    listing = json.loads(run_cli(home, "outbox", "--json").stdout)
    assert [r["state"] for r in listing] == ["failed"]
    res = run_cli(home, "outbox", "retry", listing[0]["id"])
    assert res.returncode == 0
    res = run_cli(home, "outbox", "flush", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(run_cli(home, "outbox", "--json").stdout) == []
    assert len(with_id(sb, "rita", "INBOX", listing[0]["message_id"])) == 1


def test_partial_acceptance_is_not_success(sb: Sandbox, tmp_path: Path) -> None:
    setup_home(tmp_path / "home", make_account(sb, "sam"))
    home = str(tmp_path / "home")
    res = run_cli(
        home,
        "send",
        "--to",
        "rita@sandbox.test, someone@elsewhere.example",
        "--subject",
        "partial",
        "--body",
        "x",
        "--json",
    )
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    status = {r["address"]: (r["status"], r["reply"]) for r in doc["recipients"]}
    assert status["rita@sandbox.test"][0] == "accepted"
    assert status["someone@elsewhere.example"][0] == "rejected"
    assert "Relay access denied" in str(status["someone@elsewhere.example"][1])
    assert len(with_id(sb, "rita", "INBOX", doc["message_id"])) == 1
    # the part that went out is in Sent once
    assert len(with_id(sb, "sam", "Sent", doc["message_id"])) == 1


def test_too_big_for_the_server(sb: Sandbox, tmp_path: Path) -> None:
    paths, config = setup_home(tmp_path / "home", make_account(sb, "sam"))
    assert sb.smtp is not None
    old = sb.smtp.size_limit
    sb.smtp.size_limit = 20_000
    sb.stop_service("smtp")
    sb.start_service("smtp")
    try:
        draft = draft_from_flags(
            from_=parse_address("sam@sandbox.test"), to=["rita@sandbox.test"], subject="big"
        )
        draft.attachments.append(Attachment("big.bin", os.urandom(40_000)))
        outbox = Outbox.open(paths)
        record = enqueue(outbox, config.account("sam"), build(draft))
        result = send_outbox(paths, config, ids=[record.id])
    finally:
        sb.smtp.size_limit = old
        sb.stop_service("smtp")
        sb.start_service("smtp")
    report = result.reports[0]
    assert report.state == "failed"
    assert report.error is not None and "accepts at most" in report.error["message"]


def test_server_saves_sent_means_no_second_copy(sb: Sandbox, tmp_path: Path) -> None:
    paths, config = setup_home(
        tmp_path / "home", make_account(sb, "sam", server_saves_sent=True, smtp_ssl=True)
    )
    sb.smtp_policy.save_sent = True
    try:
        composed = build(
            draft_from_flags(
                from_=parse_address("sam@sandbox.test"),
                to=["ross@sandbox.test"],
                subject="gmail-like",
                body="x",
            )
        )
        record = enqueue(Outbox.open(paths), config.account("sam"), composed)
        result = send_outbox(paths, config, ids=[record.id])
    finally:
        sb.smtp_policy.save_sent = False
    assert result.ok
    assert result.reports[0].copy == "skipped"
    assert len(with_id(sb, "sam", "Sent", composed.message_id)) == 1  # the server's own


def test_pop3_account_keeps_sent_locally(sb: Sandbox, tmp_path: Path) -> None:
    paths, config = setup_home(tmp_path / "home", make_account(sb, "sam", protocol=Protocol.POP3))
    composed = build(
        draft_from_flags(
            from_=parse_address("sam@sandbox.test"), to=["ross@sandbox.test"], subject="p", body="x"
        )
    )
    record = enqueue(Outbox.open(paths), config.account("sam"), composed)
    assert send_outbox(paths, config, ids=[record.id]).ok
    with Store.open(paths) as store:
        folder = store.folder_by_role("sam", "sent")
        assert folder is not None
        copies = [m for m in store.folder_messages(folder) if m.message_id == composed.message_id]
        assert len(copies) == 1
        assert store.read_bytes(copies[0]) == composed.data
    assert with_id(sb, "sam", "Sent", composed.message_id) == []


def test_raw_file_is_sent_as_it_is(sb: Sandbox, tmp_path: Path) -> None:
    setup_home(tmp_path / "home", make_account(sb, "sam"))
    raw = (
        b"From: Sam <sam@sandbox.test>\r\nTo: ross@sandbox.test\r\n"
        b"Bcc: bea@sandbox.test\r\nSubject: raw one\r\nMessage-ID: <raw-1@sandbox.test>\r\n"
        b"X-Custom: kept\r\n\r\nraw body\r\n"
    )
    f = tmp_path / "msg.eml"
    f.write_bytes(raw)
    res = run_cli(str(tmp_path / "home"), "send", "--raw", str(f), "--json")
    assert res.returncode == 0, res.stderr
    for user in ("ross", "bea"):
        got = with_id(sb, user, "INBOX", "<raw-1@sandbox.test>")
        assert len(got) == 1
        assert b"Bcc:" not in got[0] and b"X-Custom: kept\r\n" in got[0]
        assert got[0].endswith(b"\r\n\r\nraw body\r\n")


# --- the outbox under failure ----------------------------------------------------------------


def test_outbox_survives_smtp_down(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    sb = fresh_sandbox
    setup_home(tmp_path / "home", make_account(sb, "alice"))
    home = str(tmp_path / "home")
    sb.stop_service("smtp")
    res = run_cli(
        home, "send", "--to", "bob@sandbox.test", "--subject", "later", "--body", "x", "--json"
    )
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["state"] == "queued"
    assert "refused" in doc["error"]["message"]
    listing = json.loads(run_cli(home, "outbox", "--json").stdout)
    assert [(r["id"], r["state"]) for r in listing] == [(doc["id"], "queued")]
    # still down: a flush keeps it
    assert run_cli(home, "outbox", "flush").returncode == 1
    sb.start_service("smtp")
    res = run_cli(home, "outbox", "flush", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(run_cli(home, "outbox", "--json").stdout) == []
    assert len(with_id(sb, "bob", "INBOX", doc["message_id"])) == 1
    assert len(with_id(sb, "alice", "Sent", doc["message_id"])) == 1


KILLER = textwrap.dedent(
    """\
    import os, signal, sys
    from mailbag.config import load_config
    from mailbag.paths import Paths
    from mailbag.sync.sending import send_outbox

    target = sys.argv[1]

    def on_event(event, record):
        if event == target:
            os.kill(os.getpid(), signal.SIGKILL)

    paths = Paths.from_env()
    send_outbox(paths, load_config(paths), respect_backoff=False, on_event=on_event)
    print("not killed")
    """
)


@pytest.mark.parametrize(
    ("event", "after_kill"),
    [
        ("attempt", "queued"),  # before connecting
        ("connected", "queued"),  # logged in, before MAIL FROM
        ("data-pending", "uncertain"),  # state recorded, final "." not sent
        ("data-reply", "uncertain"),  # server accepted, not recorded yet
        ("settled", "sent"),  # recorded, Sent copy not made
        ("copy-pending", "sent"),  # APPEND about to start
        ("copy-done", "sent"),  # APPENDed, not recorded
    ],
)
def test_sigkill_mid_send_never_loses_or_duplicates(
    sb: Sandbox, tmp_path: Path, event: str, after_kill: str
) -> None:
    home = tmp_path / "home"
    paths, config = setup_home(home, make_account(sb, "sam"))
    composed = build(
        draft_from_flags(
            from_=parse_address("sam@sandbox.test"),
            to=["polly@sandbox.test"],
            subject=f"kill at {event}",
            body="x",
        )
    )
    outbox = Outbox.open(paths)
    record = enqueue(outbox, config.account("sam"), composed)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run(
        [sys.executable, str(script), event],
        env={**os.environ, "MAILBAG_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -9, proc.stdout + proc.stderr
    # the next run (another process in real life) recovers and finishes the job
    result = send_outbox(paths, load_config(paths), respect_backoff=False)
    delivered = with_id(sb, "polly", "INBOX", composed.message_id)
    if after_kill == "uncertain":
        # maybe delivered: never resent by itself, kept for the user to decide
        assert outbox.get(record.id).state is OutboxState.UNCERTAIN
        assert len(delivered) == (1 if event == "data-reply" else 0)
        if event == "data-pending":
            retry(outbox, record.id)
            assert send_outbox(paths, load_config(paths), respect_backoff=False).ok
            delivered = with_id(sb, "polly", "INBOX", composed.message_id)
        else:
            return
    else:
        assert result.ok, [r.to_json() for r in result.reports]
    assert len(delivered) == 1
    assert outbox.ids() == []
    assert len(with_id(sb, "sam", "Sent", composed.message_id)) == 1


def test_outbox_listing_human(sb: Sandbox, tmp_path: Path) -> None:
    setup_home(tmp_path / "home", make_account(sb, "sam"))
    home = str(tmp_path / "home")
    res = run_cli(
        home, "send", "--queue", "--to", "rita@sandbox.test", "--subject", "queued", "--body", "x"
    )
    assert res.returncode == 0
    out = run_cli(home, "outbox")
    assert "queued" in out.stdout and "rita@sandbox.test" in out.stdout


def test_body_from_stdin_and_file_with_trace(sb: Sandbox, tmp_path: Path) -> None:
    setup_home(tmp_path / "home", make_account(sb, "sam"))
    home = str(tmp_path / "home")
    trace = tmp_path / "trace.log"
    res = run_cli(
        home,
        "send",
        "--trace",
        str(trace),
        "--to",
        "ross@sandbox.test",
        "--subject",
        "from stdin",
        "--json",
        stdin="piped text ü\n",
    )
    assert res.returncode == 0, res.stderr
    got = with_id(sb, "ross", "INBOX", json.loads(res.stdout)["message_id"])
    body = parsed(got[0]).get_content()
    assert body.replace("\r\n", "\n") == "piped text ü\n"
    log = trace.read_text()
    assert "MAIL FROM:<sam@sandbox.test>" in log and "<redacted>" in log
    assert sb.password("sam") not in log
    f = tmp_path / "body.txt"
    f.write_text("from a file\n")
    res = run_cli(
        home, "send", "--to", "ross@sandbox.test", "--subject", "file", "--body-file", str(f)
    )
    assert res.returncode == 0, res.stderr
    assert "sent 'file' to ross@sandbox.test; copy saved to Sent" in res.stderr


def test_sync_sends_the_outbox_first(sb: Sandbox, tmp_path: Path) -> None:
    paths, _ = setup_home(tmp_path / "home", make_account(sb, "polly"))
    home = str(tmp_path / "home")
    res = run_cli(
        home, "send", "--queue", "--to", "otto@sandbox.test", "--subject", "via sync", "--body", "x"
    )
    assert res.returncode == 0, res.stderr
    res = run_cli(home, "sync", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [r["state"] for r in doc["outbox"]] == ["sent"]
    mid = doc["outbox"][0]["message_id"]
    assert len(with_id(sb, "otto", "INBOX", mid)) == 1
    assert Outbox.open(paths).ids() == []
    # the Sent copy came down with the same sync
    with Store.open(paths) as store:
        assert [m.subject for m in store.messages(account="polly") if m.message_id == mid] == [
            "via sync"
        ]
