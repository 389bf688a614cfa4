"""`mailbag tui`: the interactive client (also plain `mailbag` on a terminal)."""

from __future__ import annotations

import argparse
from typing import Any

from mailbag.cli.context import Context

DESCRIPTION = """\
Open the interactive client: folders, the message list and a reading pane.
Mail syncs in the background when it starts (g syncs again); press ? for every
key, A to add an account with a live "Test Account Settings", / to search.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "tui",
        help="the interactive client (also plain `mailbag` on a terminal)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    p.add_argument("--no-sync", action="store_true", help="do not sync when the client starts")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.errors import UsageError

    # Textual draws on stderr, so that is the stream that must be a terminal
    if not ctx.stderr.isatty():
        raise UsageError(
            "the interactive client needs a terminal",
            hint="in scripts use the commands: mailbag list, read, search, send ...",
        )
    from mailbag.tui.app import MailbagApp

    MailbagApp(ctx.paths, sync_on_start=not args.no_sync).run()
    return 0
