"""The outbox records (durable files, recovery, lock) and the pure `settle` decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbag.config.model import Account, Protocol, Server, SmtpServer
from mailbag.errors import AuthError, NetworkError, UsageError
from mailbag.protocols.transport import Security
from mailbag.store.outbox import CopyState, Outbox, OutboxLocked, OutboxRecord, OutboxState
from mailbag.sync.outbox import (
    Attempt,
    Reply,
    backoff_seconds,
    due,
    explain_reply,
    prepare_raw,
    retry,
    settle,
)

NOW = 1_800_000_000.0
OK = Reply(250, "2.1.5 OK")


def record(*recipients: str, state: OutboxState = OutboxState.QUEUED) -> OutboxRecord:
    return OutboxRecord(
        id="r1",
        account="acct",
        state=state,
        message_id="<m@example.org>",
        envelope_from="me@example.org",
        recipients=list(recipients),
    )


# --- the files -----------------------------------------------------------------------------


def test_add_get_save_remove(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    box.create()
    r = box.add(record("a@example.org"), b"Subject: x\r\n\r\nbody\r\n")
    assert box.ids() == [r.id]
    assert box.read_message(r.id) == b"Subject: x\r\n\r\nbody\r\n"
    got = box.get(r.id)
    assert got.size == 20 and got.state is OutboxState.QUEUED
    got.state = OutboxState.SENT
    got.copy = CopyState.DONE
    box.save(got)
    assert box.get(r.id).state is OutboxState.SENT
    assert not list((tmp_path / "outbox" / "queue" / r.id).glob("*.tmp"))
    box.remove(r.id)
    assert box.ids() == []
    with pytest.raises(UsageError):
        box.get(r.id)
    with pytest.raises(UsageError):
        box.get("../../etc")


def test_recover_settles_interrupted_attempts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    box.create()
    a = box.add(record("a@example.org", state=OutboxState.SENDING), b"x")
    b = box.add(record("b@example.org", state=OutboxState.DATA), b"y")
    c = box.add(record("c@example.org", state=OutboxState.QUEUED), b"z")
    half = box.tmp_dir / "halfwritten"
    half.mkdir()
    (half / "message.eml").write_bytes(b"partial")
    with box.locked():
        changed = box.recover()
    assert sorted(r.id for r in changed) == sorted([a.id, b.id])
    assert box.get(a.id).state is OutboxState.QUEUED  # never handed over: safe to retry
    assert box.get(b.id).state is OutboxState.UNCERTAIN  # maybe delivered: user decides
    assert box.get(c.id).state is OutboxState.QUEUED
    assert not half.exists()


def test_lock_excludes_a_second_sender(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    box.create()
    other = Outbox(tmp_path / "outbox")
    # a separate open file description, as another process would have
    with box.locked(), pytest.raises(OutboxLocked), other.locked(wait=0.2):
        pass
    with other.locked():
        pass


def test_state_file_is_plain_json(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    box.create()
    r = box.add(record("a@example.org"), b"x")
    data = json.loads((box.queue_dir / r.id / "state.json").read_text())
    assert data["state"] == "queued" and data["recipients"] == ["a@example.org"]


# --- settle --------------------------------------------------------------------------------


def test_all_accepted_is_sent() -> None:
    r = settle(
        record("a@x.org", "b@x.org"),
        Attempt(mail=OK, rcpt={"a@x.org": OK, "b@x.org": OK}, data_end=Reply(250, "queued")),
        NOW,
    )
    assert r.state is OutboxState.SENT
    assert r.delivered == ["a@x.org", "b@x.org"] and r.recipients == []
    assert r.sent_at == NOW and r.last_error is None


def test_offline_stays_queued_with_backoff() -> None:
    r = record("a@x.org")
    r.attempts = 3
    r = settle(r, Attempt(error=NetworkError("connection refused", cause="refused")), NOW)
    assert r.state is OutboxState.QUEUED
    assert r.next_attempt == NOW + 240
    assert r.last_error is not None and r.last_error["cause"] == "refused"


def test_auth_failure_keeps_message_queued() -> None:
    r = settle(record("a@x.org"), Attempt(error=AuthError("535 5.7.8 bad")), NOW)
    assert r.state is OutboxState.QUEUED


def test_message_too_big_is_permanent() -> None:
    r = settle(
        record("a@x.org"),
        Attempt(error=UsageError("message too big"), error_permanent=True),
        NOW,
    )
    assert r.state is OutboxState.FAILED


@pytest.mark.parametrize(("code", "state"), [(451, OutboxState.QUEUED), (554, OutboxState.FAILED)])
def test_data_reply(code: int, state: OutboxState) -> None:
    r = settle(
        record("a@x.org"),
        Attempt(mail=OK, rcpt={"a@x.org": OK}, data_end=Reply(code, "5.7.1 spam")),
        NOW,
    )
    assert r.state is state
    assert r.delivered == []
    assert r.last_error is not None and f"{code} 5.7.1 spam" in r.last_error["message"]


def test_mail_from_refused() -> None:
    r = settle(record("a@x.org"), Attempt(mail=Reply(553, "5.7.1 not yours")), NOW)
    assert r.state is OutboxState.FAILED
    assert r.last_error is not None and r.last_error["reply"] == "553 5.7.1 not yours"


def test_partial_acceptance_is_not_success() -> None:
    r = settle(
        record("a@x.org", "b@y.org"),
        Attempt(
            mail=OK,
            rcpt={"a@x.org": OK, "b@y.org": Reply(554, "5.7.1 Relay access denied")},
            data_end=Reply(250, "ok"),
        ),
        NOW,
    )
    assert r.state is OutboxState.FAILED
    assert r.delivered == ["a@x.org"]
    assert r.rejected == [{"address": "b@y.org", "reply": "554 5.7.1 Relay access denied"}]
    # a retry sends only to the refused one, never again to a@x.org
    assert r.recipients == []


def test_deferred_recipient_retried_alone() -> None:
    r = settle(
        record("a@x.org", "b@y.org"),
        Attempt(
            mail=OK,
            rcpt={"a@x.org": OK, "b@y.org": Reply(450, "4.2.0 greylisted")},
            data_end=Reply(250, "ok"),
        ),
        NOW,
    )
    assert r.state is OutboxState.QUEUED
    assert r.delivered == ["a@x.org"] and r.recipients == ["b@y.org"]


def test_every_recipient_refused() -> None:
    r = settle(
        record("a@x.org"),
        Attempt(mail=OK, rcpt={"a@x.org": Reply(550, "5.1.1 no such user")}),
        NOW,
    )
    assert r.state is OutboxState.FAILED
    assert r.rejected[0]["address"] == "a@x.org"


def test_cut_after_data_is_uncertain_never_retried() -> None:
    r = settle(
        record("a@x.org"),
        Attempt(mail=OK, rcpt={"a@x.org": OK}, cut_after_data=NetworkError("reset")),
        NOW,
    )
    assert r.state is OutboxState.UNCERTAIN
    assert due([r], NOW + 10**6, respect_backoff=False) == []


def test_cut_before_data_is_retried() -> None:
    r = settle(
        record("a@x.org"),
        Attempt(mail=OK, rcpt={"a@x.org": OK}, cut_before_data=NetworkError("reset")),
        NOW,
    )
    assert r.state is OutboxState.QUEUED and r.delivered == []


def test_due_respects_backoff_unless_asked() -> None:
    q = record("a@x.org")
    q.next_attempt = NOW + 100
    sent = record("b@x.org", state=OutboxState.SENT)
    sent.id = "r2"
    failed = record("c@x.org", state=OutboxState.FAILED)
    failed.id = "r3"
    assert due([q, sent, failed], NOW, respect_backoff=True) == ["r2"]
    assert due([q, sent, failed], NOW, respect_backoff=False) == ["r1", "r2"]
    sent.copy = CopyState.DONE
    assert due([sent], NOW, respect_backoff=False) == []


def test_backoff_grows_and_caps() -> None:
    assert [backoff_seconds(n) for n in (1, 2, 3)] == [60, 120, 240]
    assert backoff_seconds(50) == 3600


def test_retry_requeues_refused_recipients(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    box.create()
    r = record("a@x.org", "b@y.org")
    r = settle(
        r,
        Attempt(
            mail=OK,
            rcpt={"a@x.org": OK, "b@y.org": Reply(554, "no")},
            data_end=Reply(250, "ok"),
        ),
        NOW,
    )
    box.add(r, b"x")
    again = retry(box, r.id)
    assert again.state is OutboxState.QUEUED and again.recipients == ["b@y.org"]
    assert again.delivered == ["a@x.org"]


# --- raw files and reply explanations -------------------------------------------------------


def _account() -> Account:
    server = Server("mail.example.org", 993, Security.SSL, "me@example.org")
    smtp = SmtpServer("mail.example.org", 465, Security.SSL, "me@example.org")
    return Account(
        name="acct",
        email="me@example.org",
        protocol=Protocol.IMAP,
        incoming=server,
        smtp=smtp,
        identities=("alias@example.org",),
    )


def test_prepare_raw_strips_bcc_and_fills_ids() -> None:
    raw = (
        b"From: Alias <alias@example.org>\nTo: a@x.org, b@y.org\nBcc: hidden@z.org,\n"
        b" other@z.org\nSubject: raw\nX-Keep: 1\n\nbody line\n"
    )
    data, rec = prepare_raw(raw, _account())
    assert b"Bcc" not in data and b"hidden@z.org" not in data and b"other@z.org" not in data
    assert b"X-Keep: 1\r\n" in data and data.endswith(b"\r\n\r\nbody line\r\n")
    assert rec.recipients == ["a@x.org", "b@y.org", "hidden@z.org", "other@z.org"]
    assert rec.bcc == ["hidden@z.org", "other@z.org"]
    assert rec.envelope_from == "alias@example.org"
    assert data.startswith(b"Message-ID: <") and b"\r\nDate: " in data
    assert rec.message_id in data.decode()


def test_prepare_raw_keeps_given_ids_and_refuses_bad_input() -> None:
    raw = (
        b"To: a@x.org\r\nMessage-ID: <given@x.org>\r\n"
        b"Date: Mon, 1 Jan 2026 00:00:00 +0000\r\n\r\nb\r\n"
    )
    data, rec = prepare_raw(raw, _account())
    assert data == raw and rec.message_id == "<given@x.org>"
    assert rec.envelope_from == "me@example.org"  # no From of ours: the account's address
    with pytest.raises(UsageError):
        prepare_raw(b"Subject: none\r\n\r\nb\r\n", _account())  # no recipients
    with pytest.raises(UsageError):
        prepare_raw(b"To: a@x.org)<b@evil.test>\r\n\r\nb\r\n", _account())


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        ("550 5.1.1 <x@example.org>: Recipient address rejected: User unknown", "does not exist"),
        ("554 5.7.1 <x@elsewhere.example>: Relay access denied", "pass mail on"),
        ("552 5.3.4 Message size exceeds fixed limit", "too big"),
        ("451 4.7.1 Greylisted, try again later", "try later"),
        ("554 5.7.1 Message rejected as spam", "abusive"),
        ("550 5.7.60 SMTP; Client does not have permissions to send as this sender", "From"),
    ],
)
def test_explain_reply(reply: str, words: str) -> None:
    hint = explain_reply(reply)
    assert hint is not None and words in hint


def test_explain_unknown_reply() -> None:
    assert explain_reply("250 2.0.0 OK") is None
