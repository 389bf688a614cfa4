"""Pictures of the interactive client (SVG snapshots, pytest-textual-snapshot).

The store is filled locally with fixed messages dated 2020 so every run draws the
same screen; `--snapshot-update` rewrites the pictures after a deliberate change.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from mailbag.diagnose import StepResult, StepStatus
from mailbag.paths import Paths
from mailbag.sandbox.sample import make_message
from mailbag.store.index import Store
from mailbag.tui.account_dialog import AccountDialog
from mailbag.tui.app import MailbagApp

SIZE = (120, 36)


def _paths(tmp_path: Path) -> Paths:
    import datetime as dt

    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    rng = random.Random(5)
    with Store.open(paths) as store:
        inbox = store.folder("work", "INBOX", role="inbox")
        store.folder("work", "Sent", role="sent")
        store.folder("work", "Trash", role="trash")
        for n in range(25):
            when = dt.datetime(2020, 3, 1, 9, 0, tzinfo=dt.UTC) + dt.timedelta(hours=7 * n)
            msg = make_message(rng, n, to="me@example.org", when=when)
            flags = {"\\Seen"} if n % 3 else set()
            store.add_bytes(inbox, msg.as_bytes(), flags=flags)
    return paths


def test_main_screen(snap_compare: Any, tmp_path: Path) -> None:
    app = MailbagApp(_paths(tmp_path), sync_on_start=False, poll_seconds=0, push=False)
    assert snap_compare(app, terminal_size=SIZE, press=["enter"])


def test_help_screen(snap_compare: Any, tmp_path: Path) -> None:
    app = MailbagApp(_paths(tmp_path), sync_on_start=False, poll_seconds=0, push=False)
    assert snap_compare(app, terminal_size=SIZE, press=["question_mark"])


def test_account_dialog_mid_test(snap_compare: Any, tmp_path: Path) -> None:
    app = MailbagApp(_paths(tmp_path), sync_on_start=False, poll_seconds=0, push=False)

    async def run_before(pilot: Any) -> None:
        await pilot.press("A")
        await pilot.pause()
        dialog = pilot.app.screen
        assert isinstance(dialog, AccountDialog)
        from textual.widgets import Input

        for widget_id, value in (
            ("email", "me@example.org"),
            ("password", "secret"),
            ("in-host", "imap.example.org"),
            ("in-port", "993"),
            ("out-host", "smtp.example.org"),
            ("out-port", "465"),
        ):
            dialog.query_one(f"#{widget_id}", Input).value = value
        dialog._lines = []
        for step in (
            StepResult("dns", StepStatus.OK, "imap.example.org is 192.0.2.10", ms=3),
            StepResult("connect", StepStatus.OK, "connected to 192.0.2.10:993", ms=21),
            StepResult(
                "tls",
                StepStatus.FAILED,
                "the certificate of imap.example.org:993 has expired",
                hint="the server's administrator must renew it",
                ms=40,
            ),
        ):
            dialog._show_step(step)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 50), run_before=run_before)


def test_conversations(snap_compare: Any, tmp_path: Path) -> None:
    app = MailbagApp(_paths(tmp_path), sync_on_start=False, poll_seconds=0, push=False)

    async def run_before(pilot: Any) -> None:
        await pilot.press("t")
        while not pilot.app.model.threaded:
            await pilot.pause(0.02)
        await pilot.press("down", "down", "down", "right")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_account_dialog_sign_in(snap_compare: Any, tmp_path: Path) -> None:
    """The OAuth2 sign-in step: Outlook.com (built-in table, no network), a device code
    shown (fixed values: no flow runs)."""
    from mailbag.auth.flows import DeviceCode

    app = MailbagApp(_paths(tmp_path), sync_on_start=False, poll_seconds=0, push=False)

    async def run_before(pilot: Any) -> None:
        from textual.widgets import Input

        await pilot.press("A")
        await pilot.pause()
        dialog = pilot.app.screen
        assert isinstance(dialog, AccountDialog)
        dialog.query_one("#email", Input).value = "me@outlook.com"
        dialog.query_one("#discover").press()
        while not dialog.query_one("#auth-box").display:
            await pilot.pause(0.02)
        dialog.query_one("#client-id", Input).value = "00000000-1111-2222-3333-444444444444"
        dialog.sign_in._busy(True)
        dialog.sign_in.show_code(
            DeviceCode("WDJB-MJHT", "https://microsoft.com/devicelogin", 900, 5)
        )
        await pilot.pause(0.3)  # the dialog scrolls the code into view

    assert snap_compare(app, terminal_size=(120, 50), run_before=run_before)
