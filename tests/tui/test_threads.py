"""Conversations in the interactive client, driven by Pilot against mail synced from a
real sandbox: grouping kept current after a sync, the threaded view remembered per
folder, search results by conversation, and thread-wide u/s/d/m reaching the server."""

from __future__ import annotations

import asyncio
import email
import json
import re
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Label, OptionList

from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.tui.app import MailbagApp
from mailbag.tui.screens import ConfirmPrompt, FolderPicker
from tuitools import folder_label, sandbox_home, status_line, subjects, thread_mail, wait_for

USER = "carol"
ALICE = "Alice <alice@sandbox.test>"


@pytest.fixture(scope="module")
def threads_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        with sb.control(USER) as ctl:
            for folder in ("Work", "Lists", "Archive", "Team"):
                ctl.create(folder)
            for data in (
                thread_mail("<plan@t>", "plan", 1),
                thread_mail("<plan1@t>", "Re: plan", 3, "<plan@t>", sender=ALICE),
                thread_mail("<plan2@t>", "Re: plan", 6, "<plan@t> <plan1@t>"),
                thread_mail("<lunch@t>", "lunch", 5),
            ):
                ctl.append("INBOX", data)
            ctl.append("Work", thread_mail("<budget@t>", "budget", 2))
            ctl.append(
                "Work", thread_mail("<budget1@t>", "Re: budget", 4, "<budget@t>", sender=ALICE)
            )
            ctl.append("Work", thread_mail("<memo@t>", "memo", 3))
            for data in (
                thread_mail("<rel@t>", "release", 1),
                thread_mail("<rel1@t>", "Re: release", 2, "<rel@t>"),
                thread_mail("<rel2@t>", "Re: release", 7, "<rel@t> <rel1@t>"),
                thread_mail("<bug@t>", "bug", 3),
                thread_mail("<bug1@t>", "Re: bug", 4, "<bug@t>"),
                thread_mail("<news@t>", "news", 5),
            ):
                ctl.append("Lists", data)
            # two replies whose first message is not here yet
            ctl.append("Team", thread_mail("<team1@t>", "Re: offsite", 3, "<team@t>"))
            ctl.append("Team", thread_mail("<team2@t>", "Re: offsite", 4, "<team@t> <team1@t>"))
            ctl.append("Team", thread_mail("<other@t>", "other", 2))
        yield sb


def _home(tmp_path: Path, sb: Sandbox) -> Paths:
    return sandbox_home(tmp_path, sb, USER, "home")


def _on_server(sb: Sandbox, folder: str) -> dict[str, set[str]]:
    """Message-ID -> flags of every message in a server folder."""
    with sb.control(USER) as ctl:
        bodies = ctl.fetch_bodies(folder)
        flags = ctl.flags(folder)
    found = {}
    for uid, data in bodies.items():
        msgid = email.message_from_bytes(data, policy=default_policy)["Message-ID"]
        found[str(msgid)] = flags[uid] - {"\\Recent"}
    return found


async def _sync(pilot: object, app: MailbagApp) -> None:
    app.status("")
    await pilot.press("g")  # type: ignore[attr-defined]
    await wait_for(pilot, lambda: "home: " in status_line(app) and " new" in status_line(app))
    # and the list regrouped after it, before the next key acts on it
    await wait_for(pilot, lambda: not any(w.is_running for w in app.workers))


async def _threads_on(pilot: object, app: MailbagApp) -> None:
    await pilot.press("t")  # type: ignore[attr-defined]
    await wait_for(pilot, lambda: app.model.threaded)


async def _search_by_conversation(pilot: Any, app: MailbagApp, query: str) -> None:
    """Conversations on, then `/` and `query`: back when the grouped results are shown."""
    await _threads_on(pilot, app)
    await pilot.press("slash")
    await pilot.pause()
    app.screen.query_one("#query", Input).value = query
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.model.matches is not None)


def test_u_and_s_take_a_folded_conversation_to_the_server(
    threads_sandbox: Sandbox, tmp_path: Path
) -> None:
    paths = _home(tmp_path, threads_sandbox)
    plan = {"<plan@t>", "<plan1@t>", "<plan2@t>"}

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: len(app.model) == 4)
            await _threads_on(pilot, app)
            thread = app.model.thread_at(0)
            assert thread is not None and thread.size == 3 and thread.unread == 3
            assert folder_label(app, "home", "INBOX") == (4, 4)

            await pilot.press("u")  # some unread: all of it read
            assert app.model.thread_at(0).unread == 0  # type: ignore[union-attr]
            assert folder_label(app, "home", "INBOX") == (4, 1)
            assert "3 messages (the whole conversation) marked read" in status_line(app)

            await pilot.press("right", "down", "s", "left")  # one message flagged by itself
            assert sum("!" in r.marks for r in app.model.rows()) == 0  # folded: one line
            await pilot.press("s")  # some unflagged: all of it flagged
            assert "3 messages (the whole conversation) flagged" in status_line(app)
            await pilot.press("right")
            assert [("!" in r.marks, r.unread) for r in app.model.rows()[:3]] == [(True, False)] * 3
            await pilot.press("left")

            await _sync(pilot, app)
            server = _on_server(threads_sandbox, "INBOX")
            assert all(server[m] == {"\\Seen", "\\Flagged"} for m in plan), server
            assert server["<lunch@t>"] == set()

            await pilot.press("u", "s")  # none unread -> all unread; all flagged -> none
            assert app.model.thread_at(0).unread == 3  # type: ignore[union-attr]
            assert folder_label(app, "home", "INBOX") == (4, 4)
            assert "unflagged" in status_line(app)
            await _sync(pilot, app)
            server = _on_server(threads_sandbox, "INBOX")
            assert all(server[m] == set() for m in plan), server

    asyncio.run(scenario())


def test_d_and_m_take_a_folded_conversation_after_asking(
    threads_sandbox: Sandbox, tmp_path: Path
) -> None:
    paths = _home(tmp_path, threads_sandbox)

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: app.folder_row("home", "Lists") is not None)
            app.open_folder("home", "Lists")
            await wait_for(pilot, lambda: len(app.model) == 6)
            await _threads_on(pilot, app)
            assert subjects(app) == ["Re: release", "news", "Re: bug"]
            lists, trash = folder_label(app, "home", "Lists"), folder_label(app, "home", "Trash")

            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmPrompt)
            question = str(app.screen.query_one("#question", Label).render())
            assert question == "Delete all 3 messages of this conversation?"
            await pilot.press("n")  # no: nothing changes
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmPrompt)
            assert subjects(app) == ["Re: release", "news", "Re: bug"]
            assert "nothing deleted" in status_line(app)

            await pilot.press("d")
            await pilot.pause()
            await pilot.press("enter")  # the focused button: delete
            await pilot.pause()
            assert subjects(app) == ["news", "Re: bug"]
            assert folder_label(app, "home", "Lists") == (lists[0] - 3, lists[1] - 3)
            assert folder_label(app, "home", "Trash") == (trash[0] + 3, trash[1] + 3)
            assert "3 messages (the whole conversation) moved to Trash" in status_line(app)

            await pilot.press("down", "m")
            await pilot.pause()
            assert isinstance(app.screen, FolderPicker)
            options = app.screen.query_one("#folders", OptionList)
            names = [
                str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
            ]
            await pilot.press(*["down"] * names.index("Archive"), "enter")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmPrompt)
            question = str(app.screen.query_one("#question", Label).render())
            assert question == "Move all 2 messages of this conversation to Archive?"
            await pilot.press("y")
            await pilot.pause()
            assert subjects(app) == ["news"]
            assert folder_label(app, "home", "Archive") == (2, 2)
            assert folder_label(app, "home", "Lists") == (lists[0] - 5, lists[1] - 5)

            await _sync(pilot, app)
            assert set(_on_server(threads_sandbox, "Lists")) == {"<news@t>"}
            assert {"<rel@t>", "<rel1@t>", "<rel2@t>"} <= set(_on_server(threads_sandbox, "Trash"))
            assert set(_on_server(threads_sandbox, "Archive")) == {"<bug@t>", "<bug1@t>"}
            # and the app agrees after the sync
            assert subjects(app) == ["news"] and folder_label(app, "home", "Lists") == (1, 1)

    asyncio.run(scenario())


def test_the_threaded_view_is_remembered_per_folder(
    threads_sandbox: Sandbox, tmp_path: Path
) -> None:
    paths = _home(tmp_path, threads_sandbox)

    async def first_run() -> None:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: len(app.model) == 4)
            assert not app.model.threaded  # one line per message until asked
            await _threads_on(pilot, app)
            app.open_folder("home", "Work")
            await wait_for(pilot, lambda: len(app.model) == 3)
            assert not app.model.threaded  # another folder keeps its own choice
            app.open_folder("home", "INBOX")
            await wait_for(pilot, lambda: app.model.threaded and len(app.model) == 2)

    async def next_run() -> None:
        app = MailbagApp(paths, sync_on_start=False, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: app.model.threaded and len(app.model) == 2)
            await pilot.press("t")  # off again, remembered as off
            await wait_for(pilot, lambda: not app.model.threaded and len(app.model) == 4)

    asyncio.run(first_run())
    assert json.loads(paths.tui_state_file.read_text())["threaded"] == {"home": ["INBOX"]}
    asyncio.run(next_run())
    assert json.loads(paths.tui_state_file.read_text())["threaded"] == {}

    paths.tui_state_file.write_text("{damaged")

    async def damaged() -> None:
        app = MailbagApp(paths, sync_on_start=False, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: len(app.model) == 4)
            assert not app.model.threaded
            assert "could not read" in status_line(app)

    asyncio.run(damaged())


def test_search_results_by_conversation(threads_sandbox: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, threads_sandbox)

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: len(app.model) == 4)
            await _search_by_conversation(pilot, app, "from:alice")
            model = app.model
            # the two replies from Alice, each in its whole conversation (INBOX and Work)
            assert subjects(app) == ["Re: plan", "Re: budget"]
            sizes = [t.size for t in (model.thread_at(0), model.thread_at(1)) if t is not None]
            assert sizes == [3, 2] and len(model.matches or ()) == 2
            assert re.search(r"▸ \[3, \d new, 1 matching\] Re: plan", _line(app, 0))
            assert "2 conversations" in status_line(app)

            # the cursor stays on the match it was on (the newest, from the flat list first)
            assert app.message_list.cursor == 1
            await pilot.press("up", "right")  # unfolded: the messages that did not match are dimmed
            rows = model.rows()[:3]
            assert [r.sender for r in rows] == ["Bob", "Alice", "Bob"]
            assert [model.is_context(i) for i in range(3)] == [True, False, True]
            dim = app.message_list.get_component_rich_style("message-list--context")
            assert dim.color is not None
            assert _line_color(app, 2) == dim.color  # context, not under the cursor
            assert _line_color(app, 1) != dim.color  # a match

            await pilot.press("t")  # conversations off: the matches one per line
            await wait_for(pilot, lambda: app.model.matches is None and len(app.model) == 2)
            assert sorted(subjects(app)) == ["Re: budget", "Re: plan"]
            await pilot.press("escape")  # back to the folder, flat as now chosen
            await wait_for(pilot, lambda: len(app.model) == 4 and not app.model.threaded)

    asyncio.run(scenario())


def _line(app: MailbagApp, y: int) -> str:
    return app.message_list.render_line(y).text


def _line_color(app: MailbagApp, y: int) -> object:
    segments = list(app.message_list.render_line(y))
    style = segments[-1].style
    return None if style is None else style.color


def test_new_mail_joins_its_conversation_after_a_sync_without_regrouping(
    threads_sandbox: Sandbox, tmp_path: Path
) -> None:
    paths = _home(tmp_path, threads_sandbox)

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: app.folder_row("home", "Team") is not None)
            app.open_folder("home", "Team")
            await wait_for(pilot, lambda: len(app.model) == 3)
            await _threads_on(pilot, app)
            assert subjects(app) == ["Re: offsite", "other"]
            assert app.view.last_grouping is not None and app.view.last_grouping.full

            # the first message of the conversation arrives late, and a new reply with it
            threads_sandbox.deliver(USER, thread_mail("<team@t>", "offsite", 1), folder="Team")
            threads_sandbox.deliver(
                USER,
                thread_mail("<team3@t>", "Re: offsite", 8, "<team@t> <team2@t>"),
                folder="Team",
            )
            await _sync(pilot, app)

            def joined() -> bool:
                thread = app.model.thread_at(0)
                return thread is not None and thread.size == 4

            await wait_for(pilot, joined)
            assert subjects(app) == ["Re: offsite", "other"]
            done = app.view.last_grouping
            assert done is not None and not done.full and done.added == 2
            assert folder_label(app, "home", "Team") == (5, 5)
            await pilot.press("right")
            assert [r.subject for r in app.model.rows()[:4]] == ["Re: offsite"] * 3 + ["offsite"]

            # a new UIDVALIDITY (a server migration): the folder is grouped whole again
            threads_sandbox.reset_uidvalidity(USER, "Team")
            before = app.model
            await _sync(pilot, app)
            await wait_for(pilot, lambda: app.model is not before)
            done = app.view.last_grouping
            assert done is not None and done.full
            assert subjects(app) == [
                "Re: offsite",
                "Re: offsite",
                "Re: offsite",
                "offsite",
                "other",
            ]

    asyncio.run(scenario())


def test_search_conversations_go_on_in_other_folders(
    threads_sandbox: Sandbox, tmp_path: Path
) -> None:
    """A match's conversation takes in your replies in Sent and a parent archived in
    another folder (last in this module: it adds folders and mail the others do not expect)."""
    with threads_sandbox.control(USER) as ctl:
        ctl.create("Old")
        ctl.append("Old", thread_mail("<inv@t>", "invoice", 5))
        ctl.append(
            "Sent",
            thread_mail(
                "<inv1@t>", "Re: invoice", 6, "<inv@t>", sender="Carol <carol@sandbox.test>"
            ),
        )
        ctl.append(
            "Sent",
            thread_mail("<elsewhere@t>", "unrelated", 6, sender="Carol <carol@sandbox.test>"),
        )
        reply = thread_mail("<inv2@t>", "Re: invoice", 8, "<inv@t> <inv1@t>")
        ctl.append("INBOX", reply.replace(b"this is Re: invoice", b"pay by friday zebracode"))
    paths = _home(tmp_path, threads_sandbox)

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: app.folder_row("home", "Old") is not None)
            await wait_for(pilot, lambda: "Re: invoice" in subjects(app))
            await _search_by_conversation(pilot, app, "zebracode")
            model = app.model
            thread = model.thread_at(0)
            assert len(model) == 1 and thread is not None
            assert thread.size == 3 and len(model.matches or ()) == 1
            await pilot.press("right")
            rows = model.rows()[:3]
            assert [(r.subject, r.sender) for r in rows] == [
                ("Re: invoice", "Bob"),
                ("Re: invoice", "Carol"),
                ("invoice", "Bob"),
            ]
            assert [model.is_context(i) for i in range(3)] == [False, True, True]

    asyncio.run(scenario())
