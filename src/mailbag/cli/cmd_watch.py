"""`mailbag watch`: report (or act on) new mail as it arrives, through IMAP IDLE."""

from __future__ import annotations

import argparse
from typing import Any

from mailbag.cli.context import Context

DESCRIPTION = """\
Wait for new mail in the INBOX of each account (all IMAP accounts by default)
and print a line for every message as it arrives; the messages are synced into
the local store first, so `mailbag read ID` works at once. Runs until Ctrl-C.

With --json every message is one JSON object on its own line (JSON Lines),
with the fields of `mailbag list --json`.

With --exec CMD, CMD runs once per new message, without a shell, with the
message's details in its environment: MAILBAG_ID, MAILBAG_ACCOUNT,
MAILBAG_FOLDER, MAILBAG_FROM, MAILBAG_SUBJECT, MAILBAG_DATE.
  example: mailbag watch --exec 'notify-send "new mail"'
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "watch",
        help="report new mail as it arrives (IMAP IDLE); --exec runs a command for each",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="accounts (default: every IMAP one)")
    p.add_argument("--exec", dest="exec_cmd", metavar="CMD", help="run CMD for each new message")
    p.add_argument(
        "--wake-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help=argparse.SUPPRESS,  # how soon Ctrl-C/stop is noticed; for tests
    )
    p.set_defaults(run=run)


def _doc(m: Any) -> dict[str, Any]:
    import datetime as dt

    when = m.date or m.internal_date
    return {
        "id": m.short_id,
        "account": m.account,
        "folder": m.folder,
        "date": dt.datetime.fromtimestamp(when, dt.UTC).isoformat() if when else None,
        "from": m.from_addr,
        "to": m.to_addrs,
        "subject": m.subject,
        "flags": sorted(m.flags),
        "size": m.size,
        "has_attachments": m.has_attachments,
    }


def run(args: argparse.Namespace, ctx: Context) -> int:
    import json
    import os
    import shlex
    import subprocess
    import threading

    from mailbag.config import load_config
    from mailbag.config.model import Protocol
    from mailbag.errors import MailbagError, UsageError
    from mailbag.sync.watch import WatchOptions, watch_account
    from mailbag.textsafe import clean_terminal

    config = load_config(ctx.paths)
    if args.names:
        accounts = [config.account(n) for n in args.names]
    else:
        accounts = [a for a in config.accounts.values() if a.protocol is Protocol.IMAP]
    pop = [a.name for a in accounts if a.protocol is not Protocol.IMAP]
    if pop:
        raise UsageError(
            f"watch needs IMAP; {', '.join(pop)} use POP3",
            hint="POP3 has no push: run `mailbag sync` from cron or a timer instead",
        )
    if not accounts:
        raise UsageError("no IMAP account to watch", hint="add one: mailbag account add EMAIL")
    argv = shlex.split(args.exec_cmd) if args.exec_cmd else None
    lock = threading.Lock()

    def on_new(messages: list[Any]) -> None:
        with lock:
            for m in messages:
                doc = _doc(m)
                if ctx.json:
                    ctx.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
                else:
                    ctx.out(
                        f"{doc['id']:>6}  {doc['account']}/{doc['folder']}  "
                        f"{clean_terminal(m.from_addr)[:30]:<30}  {clean_terminal(m.subject)}"
                    )
                ctx.stdout.flush()
                if argv:
                    env = {
                        **os.environ,
                        "MAILBAG_ID": doc["id"],
                        "MAILBAG_ACCOUNT": m.account,
                        "MAILBAG_FOLDER": m.folder,
                        "MAILBAG_FROM": clean_terminal(m.from_addr),
                        "MAILBAG_SUBJECT": clean_terminal(m.subject),
                        "MAILBAG_DATE": doc["date"] or "",
                    }
                    try:
                        subprocess.run(argv, env=env, check=False, timeout=60)
                    except (OSError, subprocess.TimeoutExpired) as exc:
                        ctx.warn(f"--exec {argv[0]}: {exc}")

    ended: list[str] = []

    def on_error(name: str) -> Any:
        def report(exc: MailbagError) -> None:
            if exc.fields.get("cause") == "reauth":
                # watch_account stops for this account: say so, with the way out
                ended.append(name)
                ctx.warn(f"{name}: {exc.message}; stopped watching it ({exc.hint})")
            else:
                ctx.warn(f"{name}: {exc.message} (retrying)")

        return report

    stop = threading.Event()
    options = WatchOptions(wake_every=args.wake_every)
    threads = [
        threading.Thread(
            target=watch_account,
            name=f"watch-{a.name}",
            kwargs={
                "account": a,
                "paths": ctx.paths,
                "on_new": on_new,
                "on_error": on_error(a.name),
                "stop": stop,
                "options": options,
                "transcript": ctx.transcript,
            },
            daemon=True,
        )
        for a in accounts
    ]
    for t in threads:
        t.start()
    ctx.info("watching " + ", ".join(f"{a.name}/INBOX" for a in accounts) + " (Ctrl-C to stop)")
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
    except KeyboardInterrupt:
        ctx.info("stopping ...")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=args.wake_every + 5)
    return 1 if ended else 0
