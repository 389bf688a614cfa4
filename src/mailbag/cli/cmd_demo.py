"""`mailbag demo`: a sandbox mail server on loopback with sample mail, to try mailbag
without an account."""

from __future__ import annotations

import argparse
from typing import Any

from mailbag.cli.context import Context

HELP = "try mailbag on a sandbox mail server on loopback (no account needed)"
DESCRIPTION = """\
Start a real mail server (Dovecot for IMAP/POP3, an SMTP submission server) on
loopback ports, fill it with a few hundred sample messages in several folders,
and show the inbox.

On a terminal the sandbox stays up until Ctrl-C, so you can try other commands
against it in a second terminal. With output redirected, the listing is printed
and the command exits.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        help=HELP,
        description=DESCRIPTION,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--messages",
        type=int,
        default=200,
        metavar="N",
        help="sample messages in INBOX (default: 200)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="exit after showing the inbox even on a terminal",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.demo import run_demo

    return run_demo(ctx, messages=args.messages, wait=ctx.interactive and not args.no_wait)
