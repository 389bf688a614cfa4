"""The compose screen driven by Textual's Pilot against the real sandbox: write and send
(the message arrives in the recipient's mailbox, checked through an independent
IMAP session), reply with the right threading headers, reply all without our own
address, forward with an attachment, save a draft into Drafts, send while SMTP is
down (queued, reported, sent later), completion from the index, and the checks that
keep a bad message on screen instead of sending it."""

from __future__ import annotations

import asyncio
import email
import time
from collections.abc import Iterator
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Label, OptionList, Static, TextArea

from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.store.outbox import Outbox
from mailbag.tui.app import MailbagApp
from mailbag.tui.compose import AttachPicker, CompletionMenu, ComposeScreen
from tuitools import sandbox_home, wait_for

SIZE = (140, 45)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(services={"imap", "lmtp", "smtp"}) as sandbox:
        yield sandbox


def _home(tmp_path: Path, sb: Sandbox, user: str = "alice") -> Paths:
    return sandbox_home(tmp_path, sb, user, "work", display_name=user.capitalize())


def _status(app: MailbagApp) -> str:
    """The status bar's news, whole (the bar itself cuts it to one line)."""
    return app.status_text


def _arrived(sb: Sandbox, user: str, subject: str, folder: str = "INBOX") -> Message | None:
    with sb.control(user) as imap:
        for data in imap.fetch_bodies(folder).values():
            msg = email.message_from_bytes(data, policy=default_policy)
            if msg["Subject"] == subject:
                return msg
    return None


async def _wait_arrival(
    sb: Sandbox, user: str, subject: str, folder: str = "INBOX", timeout: float = 15.0
) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        msg = _arrived(sb, user, subject, folder)
        if msg is not None:
            return msg
        if time.monotonic() > deadline:
            raise AssertionError(f"{subject!r} did not arrive in {user}'s {folder}")
        await asyncio.sleep(0.2)


def _compose(app: MailbagApp) -> ComposeScreen:
    screen = app.screen
    assert isinstance(screen, ComposeScreen), f"not the compose screen: {screen!r}"
    return screen


def _fill(screen: ComposeScreen, **values: str) -> None:
    for widget_id, value in values.items():
        if widget_id == "body":
            screen.query_one("#compose-body", TextArea).load_text(value)
        else:
            screen.query_one(f"#{widget_id}", Input).value = value


def _error(screen: ComposeScreen) -> str:
    return str(screen.query_one("#compose-error", Static).render())


def _unique(text: str) -> str:
    return f"{text} {time.time_ns()}"


async def _go_to(pilot: Any, app: MailbagApp, subject: str) -> None:
    """Wait for the message with `subject` in the list, then move the cursor onto it."""
    await wait_for(pilot, lambda: any(r.subject == subject for r in app.model.rows()))
    index = next(i for i, r in enumerate(app.model.rows()) if r.subject == subject)
    await pilot.press(*["j"] * index)


def _app(paths: Paths, *, sync: bool = False) -> MailbagApp:
    return MailbagApp(paths, sync_on_start=sync, poll_seconds=0, push=False)


def test_compose_and_send_arrives(sb: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, sb)
    subject = _unique("hello from the compose screen")

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("c")
            await pilot.pause()
            screen = _compose(app)
            assert app.focused is screen.query_one("#to", Input)
            await pilot.press(*"bob@sandbox.test")
            _fill(screen, subject=subject, body="Hi Bob,\n\nthe numbers are in.\n")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert not isinstance(app.screen, ComposeScreen)
            await wait_for(pilot, lambda: "sent" in _status(app))
            assert f"sent {subject!r} to bob@sandbox.test" in _status(app)

    asyncio.run(scenario())
    msg = _arrived(sb, "bob", subject)
    assert msg is not None
    assert msg["From"] == "Alice <alice@sandbox.test>"
    assert msg.get_content().startswith("Hi Bob,")
    sent = _arrived(sb, "alice", subject, "Sent")
    assert sent is not None  # the copy went to Sent
    assert Outbox.open(paths).records() == []


def test_validation_errors_show_inline_and_nothing_is_sent(sb: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, sb)

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("c")
            await pilot.pause()
            screen = _compose(app)
            _fill(screen, subject="no one to send to", body="text")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is screen
            assert "no recipient" in _error(screen)

            _fill(screen, to="bob@sandbox.test, not an address@@")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is screen
            assert "To" in _error(screen)
            assert screen.query_one("#to", Input).has_class("-invalid")

            # header injection through a pasted line break is refused, never sent
            _fill(screen, to="bob@sandbox.test\r\nBcc: mallory@evil.example")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is screen
            assert "line break" in _error(screen)

            _fill(screen, to="bob@sandbox.test", cc="ok@sandbox.test", bcc="bad@")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert screen.query_one("#bcc", Input).has_class("-invalid")
            assert not screen.query_one("#to", Input).has_class("-invalid")

            # a file that does not exist: the picker returns a path, the screen explains
            _fill(screen, bcc="")
            await pilot.press("ctrl+o")
            await pilot.pause()
            picker = app.screen
            assert isinstance(picker, AttachPicker)
            picker.query_one("#attach-path", Input).value = str(tmp_path / "missing.pdf")
            picker.query_one("#attach-path", Input).focus()
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen
            assert "cannot read attachment" in _error(screen) and "missing.pdf" in _error(screen)
            assert screen.attachments == []

            # letters typed on a button do not reach the main screen's keys (q quits there)
            screen.query_one("#send").focus()
            await pilot.press("q", "d", "c", "slash")
            await pilot.pause()
            assert app.is_running and app.screen is screen

            # Escape with text written asks first; "keep writing" keeps it open
            await pilot.press("escape")
            await pilot.pause()
            await pilot.click("#keep")
            await pilot.pause()
            assert app.screen is screen
        assert Outbox.open(paths).records() == []

    asyncio.run(scenario())


def test_reply_has_the_threading_headers(sb: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, sb)
    subject = _unique("quarterly numbers")
    sb.deliver(
        "alice",
        (
            "From: Carol <carol@sandbox.test>\r\n"
            "To: Alice <alice@sandbox.test>, dave@sandbox.test\r\n"
            "Cc: bob@sandbox.test, alice@sandbox.test\r\n"
            f"Subject: {subject}\r\n"
            "Message-ID: <q3.1@sandbox.test>\r\n"
            "References: <q3.0@sandbox.test>\r\n"
            "Date: Mon, 02 Mar 2026 09:00:00 +0000\r\n\r\n"
            "Are the numbers final?\r\n"
        ).encode(),
    )

    async def scenario() -> None:
        app = _app(paths, sync=True)
        async with app.run_test(size=SIZE) as pilot:
            await _go_to(pilot, app, subject)
            await pilot.press("enter")
            await pilot.press("a")  # reply all first: check the recipients
            await pilot.pause()
            screen = _compose(app)
            assert screen.query_one("#to", Input).value == "Carol <carol@sandbox.test>"
            cc = screen.query_one("#cc", Input).value
            assert cc == "dave@sandbox.test, bob@sandbox.test"  # never our own address
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, ComposeScreen)

            await pilot.press("r")
            await pilot.pause()
            screen = _compose(app)
            assert screen.query_one("#subject", Input).value == f"Re: {subject}"
            assert screen.query_one("#cc", Input).value == ""
            body = screen.query_one("#compose-body", TextArea)
            assert app.focused is body
            assert "> Are the numbers final?" in body.text
            assert "Carol <carol@sandbox.test> wrote:" in body.text
            await pilot.press(*"Yes, final.")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "sent" in _status(app))
            # the answered message is marked (r) locally
            await wait_for(pilot, lambda: any("r" in r.marks for r in app.model.rows()))

    asyncio.run(scenario())
    reply = _arrived(sb, "carol", f"Re: {subject}")
    assert reply is not None
    assert reply["In-Reply-To"] == "<q3.1@sandbox.test>"
    assert reply["References"] == "<q3.0@sandbox.test> <q3.1@sandbox.test>"
    text = reply.get_content()
    assert text.startswith("Yes, final.") and "> Are the numbers final?" in text


def test_forward_with_attachment_and_one_added(sb: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, sb)
    subject = _unique("the contract")
    original = email.message.EmailMessage()
    original["From"] = "carol@sandbox.test"
    original["To"] = "alice@sandbox.test"
    original["Subject"] = subject
    original.set_content("Contract attached.\n")
    original.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="contract.pdf"
    )
    sb.deliver("alice", original.as_bytes())
    extra = tmp_path / "notes.txt"
    extra.write_text("my notes\n")

    async def scenario() -> None:
        app = _app(paths, sync=True)
        async with app.run_test(size=SIZE) as pilot:
            await _go_to(pilot, app, subject)
            await pilot.press("f")
            await pilot.pause()
            screen = _compose(app)
            assert screen.query_one("#subject", Input).value == f"Fwd: {subject}"
            listed = screen.query_one("#attachments", OptionList)
            assert str(listed.get_option_at_index(0).prompt) == "contract.pdf  (13 B)"
            assert "---------- Forwarded message ----------" in (
                screen.query_one("#compose-body", TextArea).text
            )
            # attach one more through the picker, remove it, attach it again
            for _ in range(2):
                await pilot.press("ctrl+o")
                await pilot.pause()
                picker = app.screen
                assert isinstance(picker, AttachPicker)
                picker.query_one("#attach-path", Input).value = str(extra)
                picker.query_one("#attach-path", Input).focus()
                await pilot.press("enter")
                await pilot.pause()
                assert [a.filename for a in screen.attachments] == ["contract.pdf", "notes.txt"]
                if _ == 0:
                    listed.focus()
                    listed.highlighted = 1
                    await pilot.press("delete")
                    assert [a.filename for a in screen.attachments] == ["contract.pdf"]
            screen.query_one("#to", Input).value = "bob@sandbox.test"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "sent" in _status(app))

    asyncio.run(scenario())
    fwd = _arrived(sb, "bob", f"Fwd: {subject}")
    assert fwd is not None
    files = {part.get_filename(): part.get_content() for part in fwd.iter_attachments()}
    assert files == {"contract.pdf": b"%PDF-1.4 fake", "notes.txt": "my notes\n"}


def _raw(sb: Sandbox, user: str, subject: str, folder: str = "INBOX") -> bytes:
    """The exact bytes of the message with `subject` in `user`'s `folder`."""
    with sb.control(user) as imap:
        for data in imap.fetch_bodies(folder).values():
            if email.message_from_bytes(data, policy=default_policy)["Subject"] == subject:
                return data
    raise AssertionError(f"{subject!r} is not in {user}'s {folder}")


def _rfc822_part(data: bytes) -> bytes:
    """The body of the one message/rfc822 part of `data`, cut out of the raw bytes
    (not re-serialised by a parser, so a changed byte shows)."""
    msg = email.message_from_bytes(data, policy=default_policy)
    boundary = msg.get_boundary()
    assert boundary is not None
    parts = data.split(b"\r\n--" + boundary.encode())
    found = [p for p in parts if b"\r\nContent-Type: message/rfc822\r\n" in p.split(b"\r\n\r\n")[0]]
    assert len(found) == 1, f"{len(found)} message/rfc822 parts"
    # the CRLF before a delimiter belongs to the delimiter (RFC 2046): what is left is
    # the part's content, ending with the original's own last line break
    return found[0].split(b"\r\n\r\n", 1)[1]


def test_forward_as_attachment_sends_the_original_unchanged(sb: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, sb)
    subject = _unique("the signed offer")
    # 8-bit text, an attachment, odd header folding: all must travel untouched
    sb.deliver(
        "alice",
        (
            b"From: Carol <carol@sandbox.test>\r\nTo: alice@sandbox.test\r\n"
            b"Subject: " + subject.encode() + b"\r\nMessage-ID: <offer.1@sandbox.test>\r\n"
            b"X-Folded: one\r\n\ttwo\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\nthe offer, sign\xc3\xa9d\r\n"
            b"--b1\r\nContent-Type: application/pdf\r\n"
            b'Content-Disposition: attachment; filename="offer.pdf"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
        ),
    )
    extra = tmp_path / "notes.txt"
    extra.write_text("my notes\n")

    async def scenario() -> None:
        app = _app(paths, sync=True)
        async with app.run_test(size=SIZE) as pilot:
            await _go_to(pilot, app, subject)
            # F, then removing the original: the screen knows it changed, and asks
            await pilot.press("F")
            await pilot.pause()
            screen = _compose(app)
            assert str(screen.query_one("#compose-title", Label).render()) == (
                "Forward as attachment"
            )
            listed = screen.query_one("#attachments", OptionList)
            assert str(listed.get_option_at_index(0).prompt).startswith(
                "forwarded.eml  (the original message, "
            )
            assert not screen.dirty
            listed.focus()
            listed.highlighted = 0
            await pilot.press("delete")
            assert screen.forwarded is None and screen.dirty
            assert str(listed.get_option_at_index(0).prompt).startswith("(none")
            await pilot.press("escape")
            await pilot.pause()
            await pilot.click("#discard")
            await pilot.pause()
            assert not isinstance(app.screen, ComposeScreen)

            await pilot.press("F")
            await pilot.pause()
            screen = _compose(app)
            assert app.focused is screen.query_one("#to", Input)
            assert screen.query_one("#subject", Input).value == f"Fwd: {subject}"
            # a file besides the original; removing the file keeps the original
            for _ in range(2):
                await pilot.press("ctrl+o")
                await pilot.pause()
                picker = app.screen
                assert isinstance(picker, AttachPicker)
                picker.query_one("#attach-path", Input).value = str(extra)
                picker.query_one("#attach-path", Input).focus()
                await pilot.press("enter")
                await pilot.pause()
            listed = screen.query_one("#attachments", OptionList)
            assert listed.option_count == 3
            listed.focus()
            listed.highlighted = 2
            await pilot.press("delete")
            assert screen.forwarded is not None
            assert [a.filename for a in screen.attachments] == ["notes.txt"]
            screen.query_one("#to", Input).focus()
            await pilot.press(*"bob@sandbox.test")
            screen.query_one("#compose-body", TextArea).load_text("See the offer below.\n")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "sent" in _status(app))

    asyncio.run(scenario())
    original = _raw(sb, "alice", subject)  # as the server has it (with its trace headers)
    got = _raw(sb, "bob", f"Fwd: {subject}")
    assert _rfc822_part(got) == original  # byte for byte
    fwd = email.message_from_bytes(got, policy=default_policy)
    assert [p.get_content_type() for p in fwd.iter_attachments()] == [
        "text/plain",
        "message/rfc822",
    ]
    body = fwd.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().startswith("See the offer below.")


def test_save_draft_lands_in_drafts_and_can_be_continued(sb: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, sb)
    subject = _unique("half-written thoughts")

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("c")
            await pilot.pause()
            screen = _compose(app)
            # a draft needs no recipient yet, but Bcc is kept in the user's own copy
            _fill(screen, bcc="bob@sandbox.test", subject=subject, body="to be continued")
            await pilot.press("escape")  # with text in it: asks
            await pilot.pause()
            await pilot.click("#draft")
            await wait_for(pilot, lambda: "saved" in _status(app))
            assert f"saved {subject!r} to Drafts" in _status(app)

    asyncio.run(scenario())
    draft = _arrived(sb, "alice", subject, "Drafts")
    assert draft is not None
    assert draft["Bcc"] == "bob@sandbox.test"
    assert _arrived(sb, "bob", subject) is None  # a draft is never sent
    with sb.control("alice") as imap:
        flags = imap.flags("Drafts")
    assert any("\\Draft" in f for f in flags.values())

    # later: sync, open Drafts, continue it (e), send it; the old draft goes away
    async def later() -> None:
        app = _app(paths, sync=True)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.folder_row("work", "Drafts") is not None)
            await wait_for(pilot, lambda: app.folder_row("work", "Drafts").total > 0)  # type: ignore[union-attr]
            app.open_folder("work", "Drafts")
            await _go_to(pilot, app, subject)
            await pilot.press("e")
            await pilot.pause()
            screen = _compose(app)
            assert screen.query_one("#bcc", Input).value == "bob@sandbox.test"
            body = screen.query_one("#compose-body", TextArea)
            assert body.text.startswith("to be continued")
            body.load_text("to be continued, and finished.\n")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "sent" in _status(app))
            await pilot.press("g")
            await wait_for(pilot, lambda: not any(r.subject == subject for r in app.model.rows()))

    asyncio.run(later())
    sent = _arrived(sb, "bob", subject)
    assert sent is not None and "Bcc" not in sent  # Bcc is never in what is sent
    assert sent.get_content().startswith("to be continued, and finished.")
    assert _arrived(sb, "alice", subject, "Drafts") is None


def test_offline_send_waits_in_the_outbox_and_goes_out_later(sb: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, sb)
    subject = _unique("written on the train")

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=SIZE) as pilot:
            sb.stop_service("smtp")
            try:
                await pilot.press("c")
                await pilot.pause()
                _fill(_compose(app), to="bob@sandbox.test", subject=subject, body="offline")
                await pilot.press("ctrl+s")
                await wait_for(pilot, lambda: "not sent yet" in _status(app))
                assert "waits in the outbox" in _status(app)
                records = Outbox.open(paths).records()
                assert [(r.subject, r.state.value) for r in records] == [(subject, "queued")]
            finally:
                sb.start_service("smtp")
            await pilot.press("g")  # get mail: the outbox goes first
            await wait_for(pilot, lambda: f"sent {subject!r}" in _status(app), timeout=30)
            assert Outbox.open(paths).records() == []

    asyncio.run(scenario())
    assert _arrived(sb, "bob", subject) is not None


def _shown(menu: CompletionMenu) -> bool:
    """The list is shown and laid out (its place and size are set a refresh after it is
    shown: under load a check can come in between)."""
    return bool(menu.display) and menu.region.height > 0


def _options(menu: OptionList) -> list[str]:
    return [str(menu.get_option_at_index(i).prompt) for i in range(menu.option_count)]


def test_address_completion_from_the_index(sb: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, sb, user="bob")
    subject = _unique("completion seed")
    # ranked by use: Quentin wrote twice, Quinn once
    for sender in ("Quentin Alpha <quentin@sandbox.test>",) * 2 + (
        "Quinn Beta <quinn@sandbox.test>",
    ):
        sb.deliver(
            "bob",
            f"From: {sender}\r\nTo: bob@sandbox.test\r\nSubject: {subject}\r\n\r\nhi\r\n".encode(),
        )

    async def scenario() -> None:
        app = _app(paths, sync=True)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: sum(r.subject == subject for r in app.model.rows()) == 3)
            await pilot.press("c")
            await pilot.pause()
            screen = _compose(app)
            to = screen.query_one("#to", Input)
            menu = screen.query_one(CompletionMenu)
            assert not menu.display
            # the second address of a list: the list shows the matches for it, best first
            await pilot.press(*"dave@sandbox.test, qu")
            await wait_for(pilot, lambda: _shown(menu))
            assert _options(menu) == [
                "Quentin Alpha <quentin@sandbox.test>",
                "Quinn Beta <quinn@sandbox.test>",
            ]
            assert menu.highlighted == 0
            assert menu.region.y == to.region.y + 1  # right under the field
            # ... its text right under the address being typed, not the field's left edge
            typed_at = to.content_region.x + len("dave@sandbox.test, ")
            assert menu.region.x + 2 == typed_at, (menu.region, to.content_region)
            # with the cursor moved to the first address, the list is not for it: Tab moves
            # on and changes nothing
            await pilot.press("home", "tab")
            # (waited for: under load the focus can move a frame after the key is handled)
            await wait_for(
                pilot,
                lambda: app.focused is not to and not menu.display,
                explain=lambda: (app.focused, menu.display),
            )
            assert to.value == "dave@sandbox.test, qu"
            to.focus()
            await pilot.press("end", "backspace", "u")
            await wait_for(pilot, lambda: _shown(menu))
            # ↓ then Tab takes the second; the first address stays; Tab stays in the field
            await pilot.press("down", "tab")
            await wait_for(
                pilot,
                lambda: to.value == "dave@sandbox.test, Quinn Beta <quinn@sandbox.test>, ",
                explain=lambda: to.value,
            )
            assert app.focused is to and not menu.display
            await pilot.pause(0.3)
            assert not menu.display  # accepting does not open the list again
            # a list that comes while one is shown (the lookup of a key typed just before
            # the ↓) keeps the match ↓ moved to, while that match is still in it
            screen._open_menu(to, ["A <a@x.test>", "B <b@x.test>"])
            menu.action_cursor_down()
            screen._open_menu(to, ["C <c@x.test>", "B <b@x.test>", "E <e@x.test>"])
            assert menu.highlighted == 1
            screen._open_menu(to, ["D <d@x.test>", "E <e@x.test>"])
            assert menu.highlighted == 0
            screen._forget()
            # the next address: Enter takes the highlighted one
            await pilot.press(*"qu")
            await wait_for(pilot, lambda: _shown(menu))
            await pilot.press("enter")
            assert to.value == (
                "dave@sandbox.test, Quinn Beta <quinn@sandbox.test>, "
                "Quentin Alpha <quentin@sandbox.test>, "
            )
            # Esc closes the list, not the screen; with the list closed Tab moves on
            await pilot.press(*"qu")
            await wait_for(pilot, lambda: _shown(menu))
            await pilot.press("escape")
            await pilot.pause(0.3)
            assert app.screen is screen and not menu.display
            assert to.value.endswith(", qu")
            await pilot.press("tab")
            cc = screen.query_one("#cc", Input)
            assert app.focused is cc
            # a later word of the name matches too; a mouse click picks
            await pilot.press(*"bet")
            await wait_for(pilot, lambda: _shown(menu))
            assert _options(menu) == ["Quinn Beta <quinn@sandbox.test>"]
            assert menu.region.y == cc.region.y + 1
            assert menu.region.x == cc.region.x  # the first address: from the field's edge
            await pilot.click(CompletionMenu, offset=(3, 1))  # the first row inside the border
            assert cc.value == "Quinn Beta <quinn@sandbox.test>, "
            assert app.focused is cc and not menu.display
            # no match: the list goes away
            bcc = screen.query_one("#bcc", Input)
            bcc.focus()
            await pilot.press(*"qu")
            await wait_for(pilot, lambda: _shown(menu))
            await pilot.press(*"zz")
            await wait_for(pilot, lambda: not menu.display)
            # our own address is never suggested; leaving the field closes the list
            await pilot.press(*["backspace"] * 4, *"bo")
            await pilot.pause(0.5)
            assert not menu.display
            await pilot.press(*["backspace"] * 2, *"qu")
            await wait_for(pilot, lambda: _shown(menu))
            screen.query_one("#subject", Input).focus()
            await pilot.pause()
            assert not menu.display
            # Enter and Tab with no list do what they always do
            bcc.focus()
            await pilot.press("tab")
            assert app.focused is screen.query_one("#subject", Input)
            assert bcc.value == "qu"

    asyncio.run(scenario())


def test_narrow_terminal_and_leaving_with_unsaved_text(sb: Sandbox, tmp_path: Path) -> None:
    from mailbag.message.compose import Attachment
    from mailbag.tui.compose import DiscardPrompt

    paths = _home(tmp_path, sb)
    width, height = 80, 24

    def inside(region: Any) -> bool:
        return region.width > 0 and region.right <= width and region.bottom <= height

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=(width, height)) as pilot:
            # the help (F is in it) and the outbox fit 80 columns; the help scrolls to its end
            await pilot.press("question_mark")
            await pilot.pause()
            help_dialog = app.screen.query_one("#dialog")
            assert inside(help_dialog.region)
            await pilot.press("end")
            await pilot.pause()
            assert inside(app.screen.query_one("#close").region)
            await pilot.press("escape")
            await pilot.press("o")
            await pilot.pause()
            assert inside(app.screen.query_one("#dialog").region)
            await pilot.press("escape")
            await pilot.pause()
            # nothing written: Esc closes at once
            await pilot.press("c")
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, (ComposeScreen, DiscardPrompt))

            await pilot.press("c")
            await pilot.pause()
            screen = _compose(app)
            screen.attachments.extend(Attachment(f"file{n}.pdf", b"x") for n in range(4))
            screen._show_attachments()
            await pilot.pause()
            # every field, every button and the text fit an 80x24 terminal
            for widget_id in ("to", "cc", "bcc", "subject", "attachments"):
                assert inside(screen.query_one(f"#{widget_id}").region), widget_id
            for button in screen.query("#compose-buttons Button"):
                assert inside(button.region), button.id
            assert screen.query_one("#compose-body", TextArea).region.height >= 5

            # written, then Cancel: asked first; the dialog fits; Discard leaves nothing
            await pilot.press(*"bob@sandbox.test")
            await pilot.click("#cancel")
            await pilot.pause()
            prompt = app.screen
            assert isinstance(prompt, DiscardPrompt)
            for button_id in ("draft", "discard", "keep"):
                assert inside(prompt.query_one(f"#{button_id}").region), button_id
            await pilot.press("escape")  # Esc in the question: keep writing
            await pilot.pause()
            assert app.screen is screen and screen.query_one("#to", Input).value
            await pilot.press("escape")
            await pilot.pause()
            await pilot.click("#discard")
            await pilot.pause()
            assert not isinstance(app.screen, (ComposeScreen, DiscardPrompt))
        assert Outbox.open(paths).records() == []

    asyncio.run(scenario())


def test_keys_are_in_help_and_palette_and_editor_needs_a_real_terminal(
    sb: Sandbox, tmp_path: Path
) -> None:
    paths = _home(tmp_path, sb)

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=SIZE) as pilot:
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert {"Compose", "Reply", "Reply all", "Forward", "Forward as attachment"} <= titles
            await pilot.press("question_mark")
            await pilot.pause()
            keys = str(app.screen.query_one("#help-keys", Static).render())
            assert "compose a new message" in keys and "reply / reply to all" in keys
            assert "f / F      forward with its attachments / as an attachment" in keys
            await pilot.press("escape")
            # r/a/f/F without a message: said so, nothing opens
            for key in ("r", "F"):
                app.status("")
                await pilot.press(key)
                await pilot.pause()
                assert not isinstance(app.screen, ComposeScreen)
                assert "no message selected" in _status(app)
            await pilot.press("c")
            await pilot.pause()
            screen = _compose(app)
            # the headless test driver cannot suspend: explained, the text stays
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert "cannot hand over to an editor" in _error(screen)
            assert app.screen is screen

    asyncio.run(scenario())


def test_outbox_screen_retries_and_drops(sb: Sandbox, tmp_path: Path) -> None:
    from mailbag.tui.compose import OutboxScreen

    paths = _home(tmp_path, sb)
    refused = _unique("to a stranger")
    waiting = _unique("waits for the server")

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=SIZE) as pilot:
            # refused for good: the sandbox relays to its own domain only
            await pilot.press("c")
            await pilot.pause()
            _fill(_compose(app), to="someone@example.com", subject=refused, body="x")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "not sent" in _status(app))
            # queued: the server is down
            sb.stop_service("smtp")
            try:
                await pilot.press("c")
                await pilot.pause()
                _fill(_compose(app), to="bob@sandbox.test", subject=waiting, body="y")
                await pilot.press("ctrl+s")
                await wait_for(pilot, lambda: "not sent yet" in _status(app))
            finally:
                sb.start_service("smtp")

            await pilot.press("o")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, OutboxScreen)
            options = screen.query_one("#outbox-list", OptionList)
            lines = [str(options.get_option_at_index(i).prompt) for i in range(len(screen.ids))]
            assert len(lines) == 2
            failed = next(line for line in lines if refused in line)
            assert failed.startswith("failed") and "Relay access denied" in failed
            assert next(line for line in lines if waiting in line).startswith("queued")
            # drop the refused one
            options.highlighted = lines.index(failed)
            await pilot.press("d")
            await pilot.pause()
            assert len(screen.ids) == 1
            assert "dropped" in str(screen.query_one("#outbox-help", Static).render())
            # send the other one again, now that the server is back
            await pilot.press("r")
            await wait_for(pilot, lambda: f"sent {waiting!r}" in _status(app))
            assert Outbox.open(paths).records() == []

    asyncio.run(scenario())
    assert _arrived(sb, "bob", waiting) is not None


def test_long_news_is_cut_in_the_bar_and_whole_under_m(sb: Sandbox, tmp_path: Path) -> None:
    """A send refused for several recipients says more than one line holds: the bar
    cuts it and says so, `M` shows it whole; news is plain text, never markup."""
    from mailbag.tui.screens import MessagesScreen

    paths = _home(tmp_path, sb)
    subject = _unique("[bold]partly[/bold] delivered")
    strangers = [f"someone-with-a-long-name-{n}@far-away-example.com" for n in range(3)]

    async def scenario() -> None:
        app = _app(paths)
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.press("c")
            await pilot.pause()
            to = ", ".join(["bob@sandbox.test", *strangers])
            _fill(_compose(app), to=to, subject=subject, body="x")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "not to everyone" in _status(app))
            whole = _status(app)
            assert all(s in whole for s in strangers) and subject in whole
            bar = app.query_one("#status", Static)
            shown = str(bar.render())
            assert shown.endswith("… (M: whole message)")
            assert len(shown) <= bar.content_region.width
            assert shown.startswith(f"sent {subject!r}")  # the markup-like subject as typed
            await pilot.press("M")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, MessagesScreen)
            texts = [str(w.render()) for w in screen.query(".message")]
            assert any(t.endswith(whole) for t in texts), texts
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, MessagesScreen)

    asyncio.run(scenario())
    assert _arrived(sb, "bob", subject) is not None
