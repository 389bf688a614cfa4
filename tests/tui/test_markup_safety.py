"""Text from mail and servers is shown as typed: Textual reads a plain string as markup,
so `[Gmail]/Sent` would show as `/Sent`, `[AUTHENTICATIONFAILED] ...` would lose its code,
and a subject like `[/]` could break the screen. Widget-level checks, no server needed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import OptionList, Static

from mailbag.textsafe import plain_markup
from mailbag.tui.app import MORE, fit_status
from mailbag.tui.screens import AttachmentsScreen, FolderPicker, MessagesScreen
from mailbag.tui.view import AttachmentRow


class _Host(App[None]):
    def __init__(self, screen: Screen[Any]) -> None:
        super().__init__()
        self.first = screen

    def compose(self) -> ComposeResult:
        yield Static("host")

    def on_mount(self) -> None:
        self.push_screen(self.first)


def _lines(screen: Screen[Any], selector: str) -> list[str]:
    options = screen.query_one(selector, OptionList)
    return [options.render_line(y).text.strip() for y in range(options.option_count)]


def _shown(screen: Screen[Any], selector: str) -> list[str]:
    async def scenario() -> list[str]:
        app = _Host(screen)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            return _lines(app.screen, selector)

    return asyncio.run(scenario())


def test_folder_names_in_brackets_show_as_named() -> None:
    lines = _shown(FolderPicker(["[Gmail]/Sent Mail", "[/]odd", "INBOX"]), "#folders")
    assert lines == ["[Gmail]/Sent Mail", "[/]odd", "INBOX"]


def test_attachment_names_in_brackets_show_as_named() -> None:
    rows = [AttachmentRow(1, "[scan] invoice.pdf", "application/pdf", 2048)]
    screen = AttachmentsScreen(None, "<m@t>", rows)  # type: ignore[arg-type]
    assert _shown(screen, "#attachments") == ["1. [scan] invoice.pdf  application/pdf, 2 KB"]


def test_message_log_shows_server_words_as_said() -> None:
    said = "login refused: [AUTHENTICATIONFAILED] Authentication failed. [/b]"

    async def scenario() -> list[str]:
        app = _Host(MessagesScreen([("10:00:00", said)]))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            return [str(w.render()) for w in app.screen.query(".message")]

    assert asyncio.run(scenario()) == [f"10:00:00  {said}"]


def test_plain_markup_escapes_and_cleans() -> None:
    from textual.content import Content

    text = "\x1b[31m[Gmail]/Sent\x1b[0m [b]x[/b]"
    assert Content.from_markup(plain_markup(text)).plain == "[Gmail]/Sent [b]x[/b]"


def test_fit_status_cuts_to_the_width_and_says_where_the_rest_is() -> None:
    assert fit_status("short", 40) == "short"
    long = "sent 'x' but not to everyone: " + "; ".join(
        f"refused r{n}@far.example" for n in range(9)
    )
    cut = fit_status(long, 60)
    assert len(cut) <= 60 and cut.endswith(MORE) and long.startswith(cut[: -len(MORE)])
    wide = "件名" * 40  # two cells a character
    from rich.cells import cell_len

    assert cell_len(fit_status(wide, 50)) <= 50


def test_reader_shows_bracketed_subjects_and_text_as_sent() -> None:
    from textual.content import Content

    from mailbag.tui.app import reader_markup
    from mailbag.tui.view import Rendered

    shown = Rendered(
        "1",
        [("Subject", "[PATCH v2] fix"), ("From", "[EXTERNAL] Bob <b@x>")],
        "see [Gmail]/Sent and C:\\dir\\[x] [/] [b]not bold[/b]",
        [AttachmentRow(1, "[scan].pdf", "application/pdf", 10)],
        ["[Note] remote images were not loaded"],
    )
    plain = Content.from_markup(reader_markup(shown)).plain
    assert "Subject: [PATCH v2] fix" in plain
    assert "From: [EXTERNAL] Bob <b@x>" in plain
    assert "1. [scan].pdf" in plain
    assert "note: [Note] remote images" in plain
    assert plain.endswith("see [Gmail]/Sent and C:\\dir\\[x] [/] [b]not bold[/b]")


def test_news_that_comes_while_the_app_closes_is_dropped(tmp_path: Path) -> None:
    """A sync worker's progress can reach the app after the screen's widgets are gone
    (seen in CI: a NoMatches error failed the app at shutdown)."""
    from mailbag.paths import Paths
    from mailbag.tui.app import MailbagApp

    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")

    async def scenario() -> None:
        app = MailbagApp(paths, sync_on_start=False, poll_seconds=0, push=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            app.status("first news")
            await app.query_one("#status").remove()
            app.status("syncing home ...", keep=False)  # no bar left: dropped, no error
            app.status("last news")
            assert app.status_text == "last news"
            assert [text for _, text in app.messages][-2:] == ["first news", "last news"]

    asyncio.run(scenario())


def test_worker_reports_that_come_while_the_app_shuts_down_are_dropped(tmp_path: Path) -> None:
    """Every worker reports through `call_from_thread`; once shutdown has begun the
    widgets those reports touch are being removed, so the report must not run."""
    from mailbag.paths import Paths
    from mailbag.tui.app import MailbagApp

    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    ran: list[str] = []
    answers: list[object] = []

    class Late(Screen[None]):
        async def on_unmount(self) -> None:
            # a worker thread finishing while the screens are pruned at shutdown
            def worker() -> None:
                answers.append(app.call_from_thread(lambda: ran.append("late") or "done"))

            await asyncio.to_thread(worker)

    async def scenario() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            app.push_screen(Late())
            await pilot.pause()
            answers.append(await asyncio.to_thread(app.call_from_thread, lambda: "while running"))

    app = MailbagApp(paths, sync_on_start=False, poll_seconds=0, push=False)
    asyncio.run(scenario())
    assert answers == ["while running", None]
    assert ran == []
