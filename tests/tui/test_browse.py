"""Browsing in the interactive client, driven by Pilot against mail synced from a real
sandbox: conversations folding in the list, attachments opened and saved from the
reader, and folder counts that follow reads, flags, moves, deletes and background syncs."""

from __future__ import annotations

import asyncio
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Label, OptionList, Static

from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.tui.app import MailbagApp
from mailbag.tui.message_list import FOLD_COLUMN
from mailbag.tui.screens import AttachmentsScreen, ConfirmPrompt, HelpScreen
from tuitools import folder_label, sandbox_home, subjects, thread_mail, wait_for

USER = "carol"


@pytest.fixture(scope="module")
def browse_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        with sb.control(USER) as ctl:
            ctl.create("Work")
            ctl.create("Archive")
            for data in (
                thread_mail("<root@t>", "plan", 1, month="Feb"),
                thread_mail("<r1@t>", "Re: plan", 3, "<root@t>", month="Feb"),
                thread_mail("<r2@t>", "Re: plan", 6, "<root@t> <r1@t>", month="Feb"),
                thread_mail("<solo@t>", "lunch", 5, month="Feb"),
                thread_mail("<att@t>", "the report", 4, attachments=True, month="Feb"),
            ):
                ctl.append("INBOX", data)
            ctl.append("Work", thread_mail("<w1@t>", "work item", 2, month="Feb"))
        yield sb


def _home(tmp_path: Path, sb: Sandbox) -> Paths:
    return sandbox_home(tmp_path, sb, USER, "home")


def _unread_at(app: MailbagApp, index: int) -> int:
    thread = app.model.thread_at(index)
    assert thread is not None, f"line {index} heads no conversation"
    return thread.unread


def test_conversations_fold_and_counts_follow(browse_sandbox: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, browse_sandbox)

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: len(app.model) == 5)
            assert subjects(app) == ["Re: plan", "lunch", "the report", "Re: plan", "plan"]
            assert folder_label(app, "home", "INBOX") == (5, 5)

            await pilot.press("t")  # conversations on, computed in a worker
            await wait_for(pilot, lambda: app.model.threaded)
            assert subjects(app) == ["Re: plan", "lunch", "the report"]
            thread = app.model.thread_at(0)
            assert thread is not None and thread.size == 3 and thread.unread == 3
            lst = app.message_list
            assert lst.cursor == 0
            await pilot.press("right")
            assert subjects(app) == ["Re: plan", "Re: plan", "plan", "lunch", "the report"]
            await pilot.press("down", "down")  # onto "plan", inside the conversation
            await pilot.press("left")  # folds it and lands on its head
            assert len(app.model) == 3 and lst.cursor == 0
            await pilot.press("space")
            assert len(app.model) == 5
            await pilot.press("space")
            assert len(app.model) == 3
            # the mouse: a click on ▸ unfolds, a second one folds
            await pilot.click("#messages", offset=(FOLD_COLUMN, 0))
            assert len(app.model) == 5
            await pilot.click("#messages", offset=(FOLD_COLUMN + 1, 0))
            assert len(app.model) == 3
            await pilot.click("#messages", offset=(20, 1))  # elsewhere on a line: opens it
            assert "this is lunch" in str(app.query_one("#body", Static).render())
            assert app.message_list.cursor == 1 and folder_label(app, "home", "INBOX") == (5, 4)
            await pilot.press("u", "up")  # unread again, back on the conversation
            assert folder_label(app, "home", "INBOX") == (5, 5)

            # reading the conversation's newest message: the list and the folder both count it
            await pilot.press("enter")
            body = str(app.query_one("#body", Static).render())
            assert "this is Re: plan" in body
            thread = app.model.thread_at(0)
            assert thread is not None and thread.unread == 2
            assert folder_label(app, "home", "INBOX") == (5, 4)
            # u on a folded conversation takes all of it: some unread -> all read ...
            await pilot.press("u")
            assert folder_label(app, "home", "INBOX") == (5, 2) and _unread_at(app, 0) == 0
            await pilot.press("u")  # ... none unread -> all unread
            assert folder_label(app, "home", "INBOX") == (5, 5) and _unread_at(app, 0) == 3
            await pilot.press("right", "u", "left")  # unfolded, u takes the one line only
            assert folder_label(app, "home", "INBOX") == (5, 4) and _unread_at(app, 0) == 2

            # moving the unread "lunch" to Archive: both folders change
            await pilot.press("down")
            assert app.selected() is not None and app.selected().subject == "lunch"  # type: ignore[union-attr]
            await pilot.press("m")
            await pilot.pause()
            options = app.screen.query_one("#folders", OptionList)
            names = [
                str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
            ]
            await pilot.press(*["down"] * names.index("Archive"), "enter")
            await pilot.pause()
            assert folder_label(app, "home", "INBOX") == (4, 3)
            assert folder_label(app, "home", "Archive") == (1, 1)
            assert subjects(app) == ["Re: plan", "the report"]

            # deleting the unread report: to Trash, counted there
            await pilot.press("down", "d")
            assert folder_label(app, "home", "INBOX") == (3, 2)
            assert folder_label(app, "home", "Trash") == (1, 1)
            assert subjects(app) == ["Re: plan"]

            # conversations off again: one line per message, the cursor where it was
            await pilot.press("t")
            assert subjects(app) == ["Re: plan", "Re: plan", "plan"]

            # the same figures a fresh count of the store gives
            fresh = {(r.account, r.name): (r.total, r.unread) for r in app.view.folders()}
            for name in ("INBOX", "Archive", "Trash", "Work"):
                assert fresh[("home", name)] == folder_label(app, "home", name)

    asyncio.run(scenario())


def _recorder(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "opened.txt"
    script = tmp_path / "viewer"
    script.write_text(f'#!/bin/sh\ncat "$1" > "{out}.data"\nprintf "%s" "$1" > "{out}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, out


def test_attachments_open_and_save_safely(
    browse_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _home(tmp_path, browse_sandbox)
    viewer, opened = _recorder(tmp_path)
    monkeypatch.setenv("MAILBAG_OPENER", str(viewer))
    target = tmp_path / "saved"
    target.mkdir()
    (target / "report.pdf").write_bytes(b"mine, not the attachment")

    async def scenario() -> Path:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: len(app.model) >= 5)
            index = subjects(app).index("the report")
            await pilot.press(*["down"] * index, "enter")
            body = str(app.query_one("#body", Static).render())
            assert "1. report.pdf  application/pdf, 15 B" in body
            assert "2. ../../evil.sh" in body  # shown as sent, never used as a path

            await pilot.press("v")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, AttachmentsScreen)
            await pilot.press("enter")  # open the first with the system's handler
            await wait_for(pilot, lambda: opened.exists() and opened.read_text() != "")
            view_path = Path(opened.read_text())
            assert view_path.name == "report.pdf"
            assert stat.S_IMODE(view_path.parent.stat().st_mode) == 0o700
            await wait_for(pilot, lambda: Path(f"{opened}.data").exists())
            assert Path(f"{opened}.data").read_bytes() == b"%PDF-1.4 report"

            result = screen.query_one("#attachment-result", Static)
            await pilot.press("w")  # save: a folder prompt
            box = screen.query_one("#save-to", Input)
            assert box.display and box.has_focus
            box.value = str(target)
            await pilot.press("enter")
            assert "nothing was overwritten" in str(result.render())
            assert (target / "report.pdf").read_bytes() == b"mine, not the attachment"
            assert (target / "report (1).pdf").read_bytes() == b"%PDF-1.4 report"

            await pilot.press("down", "w", "enter")  # the hostile name, same folder
            assert (target / "evil.sh").read_bytes() == b"#!/bin/sh\necho no\n"
            assert not (tmp_path / "evil.sh").exists()
            assert sorted(p.name for p in target.iterdir()) == [
                "evil.sh",
                "report (1).pdf",
                "report.pdf",
            ]

            await pilot.press("w")
            box.value = str(tmp_path / "no such folder")
            await pilot.press("enter")
            assert "is not a folder" in str(result.render())

            await pilot.press("escape", "escape")  # the prompt, then the dialog
            assert not isinstance(app.screen, AttachmentsScreen)
        return view_path

    view_path = asyncio.run(scenario())
    assert not view_path.exists() and not view_path.parent.exists()  # cleaned up at exit


def test_counts_refresh_after_a_background_sync(browse_sandbox: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, browse_sandbox)

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=1.0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: app.folder_row("home", "Work") is not None)
            before = folder_label(app, "home", "Work")
            # the recount after a sync (one scan of the index) happens on the sync's
            # worker thread, never on the UI thread
            counted_on: list[str] = []
            folders = app.view.folders

            def spy() -> list[Any]:
                counted_on.append(threading.current_thread().name)
                return folders()

            app.view.folders = spy  # type: ignore[method-assign]
            with browse_sandbox.control(USER) as ctl:
                ctl.append(
                    "Work", thread_mail(f"<w{time.time_ns()}@t>", "more work", 7, month="Feb")
                )
            # no key pressed: the periodic background sync brings it in
            await wait_for(
                pilot, lambda: folder_label(app, "home", "Work") == (before[0] + 1, before[1] + 1)
            )
            assert counted_on and threading.main_thread().name not in counted_on, counted_on

    asyncio.run(scenario())


def test_help_lists_the_browsing_keys(tmp_path: Path) -> None:
    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")

    async def scenario() -> None:
        app = MailbagApp(paths, sync_on_start=False, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 50)) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            text = str(app.screen.query_one("#help-keys", Static).render())
            for key in ("t ", "Space", "v ", "o open", "w save"):
                assert key in text
            await pilot.press("escape")
            commands = [c.title for c in app.get_system_commands(app.screen)]
            assert "Threads on/off" in commands and "Attachments" in commands

    asyncio.run(scenario())


def test_a_reply_arriving_joins_its_conversation(browse_sandbox: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, browse_sandbox)

    async def scenario() -> None:
        # no polling: IMAP IDLE alone brings the reply in, while the list is grouped
        app = MailbagApp(paths, poll_seconds=0)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: len(app.model) >= 5)
            await pilot.press("t")
            await wait_for(pilot, lambda: app.model.threaded)
            head = app.model.row(0)
            thread = app.model.thread_at(0)
            assert head.subject == "Re: plan" and thread is not None
            size, inbox = thread.size, folder_label(app, "home", "INBOX")
            await pilot.press("right")  # unfolded, and it stays so
            browse_sandbox.deliver(
                USER, thread_mail(f"<late{time.time_ns()}@t>", "Re: plan", 9, "<r2@t>", month="Feb")
            )

            def joined() -> bool:
                t = app.model.thread_at(0)
                return t is not None and t.size == size + 1

            await wait_for(pilot, joined, timeout=40)
            assert app.model.row(0).subject == "Re: plan" and app.model.row(0).date == "Feb 09"
            assert app.model.is_expanded(0) and len(app.model) == 3 + size + 1 - 1
            assert folder_label(app, "home", "INBOX") == (inbox[0] + 1, inbox[1] + 1)

    asyncio.run(scenario())


def test_move_and_delete_take_a_folded_conversation(
    browse_sandbox: Sandbox, tmp_path: Path
) -> None:
    paths = _home(tmp_path, browse_sandbox)

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: len(app.model) >= 5)
            inbox = folder_label(app, "home", "INBOX")
            await pilot.press("t")
            await wait_for(pilot, lambda: app.model.threaded)
            thread = app.model.thread_at(0)
            assert thread is not None and thread.size >= 3
            await pilot.press("m")
            await pilot.pause()
            options = app.screen.query_one("#folders", OptionList)
            names = [
                str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
            ]
            await pilot.press(*["down"] * names.index("Archive"), "enter")
            await pilot.pause()
            # a whole conversation: asked first, naming the count and the target
            assert isinstance(app.screen, ConfirmPrompt)
            question = str(app.screen.query_one("#question", Label).render())
            assert question == f"Move all {thread.size} messages of this conversation to Archive?"
            await pilot.press("y")
            await pilot.pause()
            assert folder_label(app, "home", "Archive") == (thread.size, thread.unread)
            assert folder_label(app, "home", "INBOX") == (
                inbox[0] - thread.size,
                inbox[1] - thread.unread,
            )
            assert "Re: plan" not in subjects(app) and "plan" not in subjects(app)
            assert "whole conversation" in str(app.query_one("#status", Static).render())

            await pilot.press("left", "t")  # flat: single messages move one by one
            first = app.model.row(0)
            await pilot.press("d")
            assert folder_label(app, "home", "Trash") == (1, 1 if first.unread else 0)
            assert app.model.index_of(first.id) is None

            fresh = {(r.account, r.name): (r.total, r.unread) for r in app.view.folders()}
            for name in ("INBOX", "Archive", "Trash"):
                assert fresh[("home", name)] == folder_label(app, "home", name)

    asyncio.run(scenario())
