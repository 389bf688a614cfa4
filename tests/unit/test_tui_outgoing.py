"""The compose screen's logic without a screen: starting points, the checks on what
the user wrote, the outbox hand-over, and the one-line outcomes for the status bar."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbag.config import save_account
from mailbag.config.model import Account, Protocol, SecretRef, SecretSource, Server, SmtpServer
from mailbag.errors import UsageError
from mailbag.message.compose import Attachment
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.store.index import Store
from mailbag.store.outbox import Outbox
from mailbag.sync.outbox import SendReport
from mailbag.tui.outgoing import Outgoing, human_size, summarize


def _paths(tmp_path: Path) -> Paths:
    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    secret = SecretRef(SecretSource.COMMAND, "echo x")
    for name, email in (("work", "me@example.org"), ("home", "me@home.example")):
        save_account(
            paths,
            Account(
                name=name,
                email=email,
                display_name="Me",
                protocol=Protocol.IMAP,
                incoming=Server("imap.example.org", 993, Security.SSL, email, secret=secret),
                smtp=SmtpServer("smtp.example.org", 465, Security.SSL, email, secret=secret),
            ),
            make_default=name == "work",
        )
    return paths


def _fields(**over: object) -> dict[str, object]:
    values: dict[str, object] = {
        "account": "work",
        "to": "ann@example.org",
        "cc": "",
        "bcc": "",
        "subject": "hi",
        "body": "text",
        "attachments": [],
    }
    values.update(over)
    return values


def test_new_uses_the_folder_account_or_the_default(tmp_path: Path) -> None:
    out = Outgoing(_paths(tmp_path))
    assert out.new().account == "work"
    assert out.new("home").draft.from_.addr_spec == "me@home.example"
    assert out.new("gone-account").account == "work"
    assert out.account_names() == ["work", "home"]


def test_finish_checks_what_the_user_wrote(tmp_path: Path) -> None:
    out = Outgoing(_paths(tmp_path))
    start = out.new()
    with pytest.raises(UsageError, match="no recipient"):
        out.finish(start, **_fields(to=""))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Cc"):
        out.finish(start, **_fields(cc="ann@"))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="line break"):
        out.finish(start, **_fields(subject="hi\r\nBcc: x@evil.example"))  # type: ignore[arg-type]
    draft = out.finish(start, **_fields(to="", for_draft=True))  # type: ignore[arg-type]
    assert draft.to == []
    # another account chosen in From: its address
    draft = out.finish(start, **_fields(account="home"))  # type: ignore[arg-type]
    assert draft.from_.addr_spec == "me@home.example"


def test_attachment_errors_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read attachment"):
        Outgoing.attachment(str(tmp_path / "nope.pdf"))
    with pytest.raises(UsageError, match="folder"):
        Outgoing.attachment(str(tmp_path))
    with pytest.raises(UsageError, match="no file"):
        Outgoing.attachment("  ")
    (tmp_path / "a.txt").write_bytes(b"abc")
    assert Outgoing.attachment(str(tmp_path / "a.txt")) == Attachment("a.txt", b"abc", "text/plain")


def test_queue_writes_to_the_outbox_and_a_reply_records_what_it_answers(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    with Store.open(paths) as store:
        inbox = store.folder("work", "INBOX", role="inbox")
        original = store.add_bytes(
            inbox,
            b"From: Ann <ann@example.org>\r\nTo: me@example.org, bo@example.org\r\n"
            b"Subject: plan\r\nMessage-ID: <p.1@example.org>\r\n\r\nok?\r\n",
        )
    out = Outgoing(paths)
    start = out.reply(original.short_id, reply_all=True)
    assert [a.addr_spec for a in start.draft.cc] == ["bo@example.org"]
    draft = out.finish(start, **_fields(to="ann@example.org", subject="Re: plan"))  # type: ignore[arg-type]
    queued = out.queue(start, "work", draft)
    record = Outbox.open(paths).get(queued.id)
    assert record.state.value == "queued" and record.answers == original.id
    assert b"In-Reply-To: <p.1@example.org>" in Outbox.open(paths).read_message(queued.id)
    saved = out.queue(start, "work", draft, as_draft=True)
    assert Outbox.open(paths).get(saved.id).state.value == "draft"
    assert out.pending() == 2
    lines = dict(out.outbox_lines())
    assert lines[queued.id].startswith("queued    Re: plan  to ann@example.org")
    assert out.drop(saved.id) == "Re: plan"
    assert out.pending() == 1


def test_forward_as_attachment_keeps_the_exact_bytes_until_removed(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    raw = (
        b"From: Ann <ann@example.org>\r\nTo: me@example.org\r\nSubject: offer\r\n"
        b"Message-ID: <o.1@example.org>\r\n\r\nsign\xc3\xa9d\r\n"
    )
    with Store.open(paths) as store:
        original = store.add_bytes(store.folder("work", "INBOX", role="inbox"), raw)
    out = Outgoing(paths)
    start = out.forward(original.short_id, as_attachment=True)
    assert (start.kind, start.draft.subject, start.draft.forwarded) == (
        "forward-attached",
        "Fwd: offer",
        raw,
    )
    draft = out.finish(start, **_fields(subject="Fwd: offer"))  # type: ignore[arg-type]
    assert draft.forwarded == raw
    queued = out.queue(start, "work", draft)
    assert raw in Outbox.open(paths).read_message(queued.id)
    dropped = out.finish(start, **_fields(keep_forwarded=False))  # type: ignore[arg-type]
    assert dropped.forwarded is None
    inline = out.forward(original.short_id)
    assert (inline.kind, inline.draft.forwarded) == ("forward", None)
    assert "signéd" in inline.draft.body


def _report(state: str, rows: list[tuple[str, str, str | None]], error: str = "") -> SendReport:
    return SendReport(
        id="x1",
        account="work",
        state=state,
        subject="Plan\x1b[31m",
        message_id="<m@x>",
        recipients=[{"address": a, "status": s, "reply": r} for a, s, r in rows],
        error={"message": error} if error else None,
    )


def test_summaries_are_one_clean_line() -> None:
    assert summarize(_report("removed", [("a@x.org", "accepted", "250 ok")])) == (
        "sent 'Plan' to a@x.org"
    )
    queued = summarize(_report("queued", [("a@x.org", "pending", None)], "connection refused"))
    assert queued.startswith("not sent yet: 'Plan")
    assert "waits in the outbox" in queued and queued.endswith("connection refused")
    partial = summarize(
        _report(
            "failed",
            [("a@x.org", "accepted", "250"), ("b@y.org", "rejected", "554 relay denied")],
            "sent to a@x.org; refused: b@y.org (554 relay denied)",
        )
    )
    assert partial == (
        "sent 'Plan' to a@x.org but not to everyone: refused b@y.org (554 relay denied)"
    )
    assert summarize(_report("draft-saved", [])) == "saved 'Plan' to Drafts"
    failed = summarize(_report("failed", [("b@y.org", "rejected", "550")], "refused"))
    assert failed.startswith("not sent: ") and "mailbag outbox" in failed
    assert "\x1b" not in failed and "\n" not in failed


def test_human_size() -> None:
    assert [human_size(n) for n in (13, 18_500, 3 * 1024 * 1024)] == ["13 B", "18.1 KB", "3.0 MB"]


def test_a_saved_draft_comes_back_as_it_was_written(tmp_path: Path) -> None:
    from mailbag.message.addresses import parse_address
    from mailbag.message.compose import Draft, build, draft_from_message

    me = parse_address("Me <me@example.org>")
    draft = Draft(
        from_=me,
        to=[parse_address("Ann <ann@example.org>")],
        cc=[parse_address("bo@example.org")],
        bcc=[parse_address("hidden@example.org")],
        subject="Re: plan (draft)",
        body="half written\n\n> quoted\n",
        attachments=[Attachment("n.txt", b"notes\n", "text/plain")],
        in_reply_to="<p.1@example.org>",
        references=["<p.0@example.org>", "<p.1@example.org>"],
    )
    data = build(draft, for_draft=True).data
    other = parse_address("other@example.org")
    back = draft_from_message(data, identities=[me], default_from=other)
    assert back == draft
    # a From that is not ours is replaced by the account's address
    assert draft_from_message(data, identities=[], default_from=other).from_ == other

    # a forward as attachment saved as a draft comes back as one, byte for byte
    original = b"From: A <a@x.org>\r\nSubject: hi\r\n\r\nsign\xc3\xa9d\r\n"
    forward = Draft(from_=me, subject="Fwd: hi", body="see below\n", forwarded=original)
    forward.attachments.append(Attachment("old.eml", original, "message/rfc822"))
    back = draft_from_message(build(forward, for_draft=True).data, identities=[me], default_from=me)
    assert back.forwarded == original
    # a file the user attached (even an .eml) travels as a plain attachment
    assert [(a.filename, a.content_type) for a in back.attachments] == [
        ("old.eml", "application/octet-stream")
    ]


def test_resume_only_drafts_and_the_old_one_goes_when_the_new_is_queued(tmp_path: Path) -> None:
    from mailbag.message.compose import Draft, build
    from mailbag.message.identity import from_address

    paths = _paths(tmp_path)
    out = Outgoing(paths)
    saved = build(
        Draft(from_=out.from_address("work"), subject="later", body="b"), for_draft=True
    ).data
    with Store.open(paths) as store:
        drafts = store.folder("work", "Drafts", role="drafts")
        inbox = store.folder("work", "INBOX", role="inbox")
        old = store.add_bytes(drafts, saved, flags={"\\Draft", "\\Seen"})
        mail = store.add_bytes(inbox, b"From: a@x.org\r\nSubject: s\r\n\r\nx\r\n")
    with pytest.raises(UsageError, match="only drafts"):
        out.resume(mail.short_id)
    start = out.resume(old.short_id)
    assert start.kind == "draft" and start.replaces == old.short_id
    assert start.draft.subject == "later" and start.draft.from_ == from_address(
        Outgoing(paths)._config().account("work")
    )
    draft = out.finish(start, **_fields(subject="later, done"))  # type: ignore[arg-type]
    out.queue(start, "work", draft)
    with Store.open(paths) as store:
        assert [m.subject for m in store.messages(account="work", folder="Drafts")] == []
        assert store.messages(account="work", folder="Trash") == []  # for good, not to Trash
