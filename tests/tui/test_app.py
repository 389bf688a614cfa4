"""The interactive client driven by Textual's Pilot against mail synced from the
real sandbox: open, read, flag, move, delete, search, new mail without a keypress,
and the account dialog with its live test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Static

from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from mailbag.tui.account_dialog import AccountDialog
from mailbag.tui.app import MailbagApp
from tuitools import sandbox_home, wait_for


@pytest.fixture(scope="module")
def tui_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        sb.fill("alice", 30, "INBOX", seed=7)
        sb.fill("alice", 5, "Work", seed=8)
        yield sb


def _home(tmp_path: Path, sb: Sandbox) -> Paths:
    return sandbox_home(tmp_path, sb, "alice", "work")


def test_sync_read_flag_move_delete_search(tui_sandbox: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, tui_sandbox)

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, push=False)
        async with app.run_test(size=(140, 40)) as pilot:
            # the first sync runs in the background and fills the inbox
            await wait_for(pilot, lambda: len(app.model) == 30)
            assert app.sub_title == "work / INBOX"
            first = app.model.row(0)
            await pilot.press("enter")
            body = str(app.query_one("#body", Static).render())
            assert "From:" in body and first.subject[:10] in body
            with Store.open(paths) as store:
                assert store.lookup(first.id).seen  # reading marks it read locally

            await pilot.press("s")  # flag
            with Store.open(paths) as store:
                assert "\\Flagged" in store.lookup(first.id).flags
            assert "!" in app.model.row(0).marks

            await pilot.press("j")
            second = app.selected()
            assert second is not None and second.id != first.id
            await pilot.press("m")
            await pilot.pause()
            options = app.screen.query_one("#folders")
            names = [
                str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
            ]  # type: ignore[attr-defined]
            await pilot.press(*["down"] * names.index("Archive"), "enter")
            await pilot.pause()
            with Store.open(paths) as store:
                archived = store.messages(account="work", folder="Archive")
                assert [m.subject for m in archived] == [second.subject]
            assert app.model.index_of(second.id) is None

            victim = app.selected()
            assert victim is not None
            await pilot.press("d")
            with Store.open(paths) as store:
                trashed = store.messages(account="work", folder="Trash")
                assert [m.subject for m in trashed] == [victim.subject]

            await pilot.press("slash")
            await pilot.pause()
            app.screen.query_one(Input).value = f'subject:"{first.subject}"'
            await pilot.press("enter")
            await pilot.pause()
            assert app.searching
            assert first.id in {r.id for r in app.model.rows()}
            await pilot.press("escape")
            assert app.searching is None and len(app.model) == 28

    asyncio.run(scenario())


def test_new_mail_appears_without_a_keypress(tui_sandbox: Sandbox, tmp_path: Path) -> None:
    paths = _home(tmp_path, tui_sandbox)

    async def scenario() -> None:
        # no polling: only IMAP IDLE can bring it in
        app = MailbagApp(paths, poll_seconds=0)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: len(app.model) >= 30)
            before = len(app.model)
            subject = f"arrives while the client runs {time.time_ns()}"
            tui_sandbox.deliver(
                "alice",
                f"From: bob@sandbox.test\r\nSubject: {subject}\r\n\r\nhello\r\n".encode(),
            )
            await wait_for(
                pilot, lambda: any(r.subject == subject for r in app.model.rows()), timeout=40
            )
            assert len(app.model) == before + 1
            assert app.model.row(0).subject == subject  # newest first
        # the IDLE thread sees the stop only when it wakes, so it can still report
        # after the app has closed: such a late report is dropped, not a crash
        late: list[BaseException] = []

        def report_late() -> None:
            try:
                app._push_error("work", "the server closed the connection")
                app._pushed("work", 1)
            except BaseException as exc:
                late.append(exc)

        thread = threading.Thread(target=report_late, daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "a late report blocked the watcher thread"
        assert late == []

    asyncio.run(scenario())


def test_account_dialog_tests_live_and_saves(tui_sandbox: Sandbox, tmp_path: Path) -> None:
    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    sb = tui_sandbox

    async def scenario() -> None:
        app = MailbagApp(paths, poll_seconds=0, sync_on_start=False, push=False)
        async with app.run_test(size=(140, 50)) as pilot:
            assert "press A to add one" in str(app.query_one("#status", Static).render())
            await pilot.press("A")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, AccountDialog)
            dialog.query_one("#email", Input).value = sb.address("bob")
            dialog.query_one("#password", Input).value = "wrong-password"
            dialog.query_one("#in-host", Input).value = sb.host
            dialog.query_one("#in-port", Input).value = str(sb.ports.imaps)
            dialog.query_one("#out-host", Input).value = sb.host
            dialog.query_one("#out-port", Input).value = str(sb.smtps_port)
            dialog.query_one("#in-sec", Select).value = "ssl"
            dialog.query_one("#ca-file", Input).value = str(sb.ca_file)
            dialog.query_one("#test").press()
            steps = dialog.query_one("#steps", Static)
            await wait_for(pilot, lambda: "the test failed" in str(steps.render()))
            text = str(steps.render())
            assert "✓ tls" in text and "✗ login" in text and "fix:" in text
            assert dialog.query_one("#save").disabled

            dialog.query_one("#password", Input).value = sb.password("bob")
            dialog.query_one("#test").press()
            await wait_for(pilot, lambda: "all steps passed" in str(steps.render()), timeout=40)
            text = str(steps.render())
            for name in ("login", "inbox", "smtp-login", "send", "receive"):
                assert f"✓ {name}" in text
            assert not dialog.query_one("#save").disabled

    asyncio.run(scenario())
    # saving needs a keyring; that path is covered by the accounts tests


def test_tui_refuses_without_a_terminal(tmp_path: Path) -> None:
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "mailbag", "tui"],
        capture_output=True,
        text=True,
        env={"MAILBAG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 2
    assert "needs a terminal" in res.stderr
