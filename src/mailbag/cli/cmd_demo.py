"""`mailbag demo`: a sandbox mail server on loopback with sample mail, an account
for it added through the normal `account add` path, a sync, and the inbox."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from typing import Any

from mailbag.cli.context import Context

HELP = "try mailbag on a sandbox mail server on loopback (no account needed)"
DESCRIPTION = """\
Start a real mail server on loopback ports (Dovecot for IMAP and POP3, an SMTP
submission server that delivers into it), fill it with a few hundred sample
messages in several folders, add an account named "demo" for it (tested like any
account), sync it, and show the inbox.

On a terminal the sandbox stays up until Ctrl-C, so you can try other commands
against it from a second terminal. With output redirected, the inbox listing is
printed and the command exits. Either way the "demo" account and its local mail
are removed at the end (keep them with --keep-account). Nothing leaves this machine.
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
        help="sample messages in INBOX (default: 200; other folders get fewer)",
    )
    p.add_argument(
        "--no-wait", action="store_true", help="exit after showing the inbox, even on a terminal"
    )
    p.add_argument(
        "--keep-account",
        action="store_true",
        help="leave the demo account and its local mail in place at the end",
    )
    p.set_defaults(run=run)


def _sub(ctx: Context, *argv: str) -> int:
    """Run another mailbag command in this process, with this command's global options."""
    from mailbag.cli.main import main

    options = ["--quiet"] if ctx.quiet or ctx.json else []
    if ctx.trace_file:
        options += ["--trace", ctx.trace_file]
    return main([*argv, *options])


def _check_name_free(ctx: Context) -> None:
    """A previous demo's account is replaced; a real account named 'demo' is not touched."""
    from mailbag.config import load_config
    from mailbag.demo import DEMO_ACCOUNT
    from mailbag.errors import ConfigError

    config = load_config(ctx.paths)
    old = config.accounts.get(DEMO_ACCOUNT)
    if old is None:
        return
    if old.incoming.host == "localhost" and old.email.endswith("@sandbox.test"):
        _sub(ctx, "account", "remove", DEMO_ACCOUNT, "--yes")
        return
    raise ConfigError(
        f"an account named {DEMO_ACCOUNT!r} exists and is not a demo account",
        hint="run the demo with another home: MAILBAG_HOME=/tmp/mailbag-demo mailbag demo",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.demo import DEMO_ACCOUNT, DEMO_USER, populate
    from mailbag.errors import MailbagError
    from mailbag.sandbox import Sandbox

    wait = ctx.interactive and not args.no_wait and not ctx.json
    _check_name_free(ctx)
    ctx.info("Starting the sandbox mail server (Dovecot + SMTP on loopback) ...")
    with Sandbox() as sb:
        counts = populate(sb, max(1, args.messages))
        ctx.info("Sample mail: " + ", ".join(f"{f} {n}" for f, n in counts.items()))
        password_file = sb.root / "demo-password"
        password_file.write_text(sb.password(DEMO_USER) + "\n")
        password_file.chmod(0o600)
        info = sb.describe()
        added = False
        try:
            ctx.info(f"\n$ mailbag account add {sb.address(DEMO_USER)} --name {DEMO_ACCOUNT} ...")
            code = _sub(
                ctx,
                "account",
                "add",
                sb.address(DEMO_USER),
                "--name",
                DEMO_ACCOUNT,
                "--display-name",
                "Alice (demo)",
                "--incoming-host",
                sb.host,
                "--incoming-port",
                str(sb.ports.imaps),
                "--incoming-security",
                "ssl",
                "--smtp-host",
                sb.host,
                "--smtp-port",
                str(sb.smtps_port),
                "--smtp-security",
                "ssl",
                "--ca-file",
                str(sb.ca_file),
                "--password-command",
                f"cat {password_file}",
                "--yes",
            )
            if code != 0:
                raise MailbagError("the demo account could not be added (see above)")
            added = True
            ctx.info(f"\n$ mailbag sync {DEMO_ACCOUNT}")
            if _sub(ctx, "sync", DEMO_ACCOUNT) != 0:
                raise MailbagError("the demo sync failed (see above)")
            ctx.info(f"\n$ mailbag list --account {DEMO_ACCOUNT} --limit 25")
            listing = ["list", "--account", DEMO_ACCOUNT, "--folder", "INBOX", "--limit", "25"]
            if ctx.json:
                listing.append("--json")
            code = _sub(ctx, *listing)
            if code != 0:
                return code
            if wait:
                ctx.info(
                    "\nThe sandbox runs until you press Ctrl-C. Try, in another terminal"
                    + (f" (with MAILBAG_HOME={ctx.paths.config_dir})" if _home_set() else "")
                    + ":\n"
                    "  mailbag list                       newest messages (IDs first)\n"
                    "  mailbag read ID                    one message\n"
                    "  mailbag search 'subject:report'    full-text search\n"
                    f"  mailbag send --to bob@{sb.domain} --subject hi --body hello\n"
                    f"  mailbag account test {DEMO_ACCOUNT}          the layer-by-layer check\n"
                    "\nServers (certificate from the demo CA "
                    f"{info['ca_file']}):\n"
                    f"  IMAPS localhost:{info['imaps']}  POP3S localhost:{info['pop3s']}  "
                    f"SMTPS localhost:{info['smtps']}\n"
                    f"  user {sb.address(DEMO_USER)}, password {sb.password(DEMO_USER)}"
                )
                stop = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                with contextlib.suppress(KeyboardInterrupt):
                    stop.wait()
                ctx.info("\nStopping the sandbox.")
        finally:
            if added and not args.keep_account:
                _sub(ctx, "account", "remove", DEMO_ACCOUNT, "--yes")
    return 0


def _home_set() -> bool:
    import os

    return bool(os.environ.get("MAILBAG_HOME"))
