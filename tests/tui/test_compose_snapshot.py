"""Pictures of the compose screen (pytest-textual-snapshot): a reply to a fixed
message, with its quote, threading kept out of sight, and an attachment listed; and a
new message in an 80x24 terminal with the list of address matches open.
`--snapshot-update` rewrites them after a deliberate change."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from mailbag.config import save_account
from mailbag.config.model import Account, Protocol, SecretRef, SecretSource, Server, SmtpServer
from mailbag.message.compose import Attachment
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.store.index import Store
from mailbag.tui.app import MailbagApp
from mailbag.tui.compose import CompletionMenu, ComposeScreen


def _paths(tmp_path: Path) -> Paths:
    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    secret = SecretRef(SecretSource.COMMAND, "echo unused")
    account = Account(
        name="work",
        email="me@example.org",
        display_name="Sam Writer",
        protocol=Protocol.IMAP,
        incoming=Server("imap.example.org", 993, Security.SSL, "me@example.org", secret=secret),
        smtp=SmtpServer("smtp.example.org", 465, Security.SSL, "me@example.org", secret=secret),
    )
    save_account(paths, account, make_default=True)
    when = dt.datetime(2020, 3, 2, 9, 30, tzinfo=dt.UTC)
    with Store.open(paths) as store:
        inbox = store.folder("work", "INBOX", role="inbox")
        store.add_bytes(
            inbox,
            (
                "From: Ann Example <ann@example.org>\r\n"
                "To: Sam Writer <me@example.org>, team@example.org\r\n"
                "Subject: Budget for the spring fair\r\n"
                "Message-ID: <fair.1@example.org>\r\n"
                f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n\r\n"
                "Hi Sam,\r\n\r\ncan you check the numbers before Friday?\r\n\r\nAnn\r\n"
            ).encode(),
        )
    return paths


def test_compose_screen_reply_all(snap_compare: Any, tmp_path: Path) -> None:
    app = MailbagApp(_paths(tmp_path), sync_on_start=False, poll_seconds=0, push=False)

    async def run_before(pilot: Any) -> None:
        await pilot.press("a")
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, ComposeScreen)
        screen.attachments.append(Attachment("budget.ods", b"x" * 18_500))
        screen._show_attachments()
        await pilot.press(*"Looks right to me.")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(110, 34), run_before=run_before)


def test_compose_screen_narrow_with_matches(snap_compare: Any, tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    with Store.open(paths) as store:
        inbox = store.folder("work", "INBOX", role="inbox")
        for n, sender in enumerate(
            ("Annika Berg <annika@example.net>", "Anton <anton@example.com>")
        ):
            store.add_bytes(
                inbox,
                f"From: {sender}\r\nTo: me@example.org\r\nSubject: s{n}\r\n"
                f"Message-ID: <s{n}@example.net>\r\nDate: Mon, 02 Mar 2020 1{n}:00:00 +0000\r\n"
                "\r\nhi\r\n".encode(),
            )
    app = MailbagApp(paths, sync_on_start=False, poll_seconds=0, push=False)

    async def run_before(pilot: Any) -> None:
        await pilot.press("c")
        await pilot.pause()
        await pilot.press(*"team@example.org, an")
        menu = pilot.app.screen.query_one(CompletionMenu)
        for _ in range(100):
            if menu.display and menu.option_count == 3:
                break
            await pilot.pause(0.05)
        assert menu.display and menu.option_count == 3
        await pilot.press("down")
        # under load the key can still be on its way when the picture is taken
        for _ in range(100):
            if menu.highlighted == 1:
                break
            await pilot.pause(0.05)
        assert menu.highlighted == 1

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
