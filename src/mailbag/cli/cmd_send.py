"""`send`, `compose`, `reply`, `forward` and `outbox`: arguments in, library calls, results out.

Every message goes into the local outbox first and is then sent from there
(`mailbag.sync.outbox`); a failure leaves it queued, never lost. Exit codes:
0 sent (or saved as a draft), 1 not sent (rejected, or kept in the outbox to
retry), 2 usage or configuration errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbag.cli.context import Context
from mailbag.errors import UsageError

if TYPE_CHECKING:
    from mailbag.config import Account, Config
    from mailbag.message.addresses import Address
    from mailbag.message.compose import Draft
    from mailbag.protocols.trace import Transcript
    from mailbag.sync.outbox import FlushResult, SendReport

SEND_DESCRIPTION = """\
Send a message from flags, or an RFC 5322 file as it is (--raw).

The body comes from --body, --body-file, or standard input when it is not a
terminal. Addresses may be repeated or comma-separated; they are parsed
strictly (ambiguous text is refused, not guessed). The message is written to
the local outbox first; if the server cannot be reached it stays there and
`mailbag outbox flush` (or `mailbag sync`) sends it later.

exit codes: 0 sent, 1 not sent (refused, or kept in the outbox), 2 usage error
"""

EDIT_EPILOG = """\
The editor is $EDITOR, then $VISUAL, then editor/nano/vi. Edit the header lines
(From, To, Cc, Bcc, Subject, Attach) and the text below the blank line; then
choose: [s]end, save as [d]raft, [e]dit again, or [a]bort. With standard input
not a terminal the choice is read from it; at end of input the message is kept
as a draft (nothing you wrote is thrown away silently).
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "send",
        parents=[common],
        help="send a message (from flags, stdin or a file)",
        description=SEND_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--account", metavar="NAME", help="send from this account (default: default)")
    p.add_argument("--from", dest="from_", metavar="ADDR", help="one of the account's addresses")
    p.add_argument("--to", action="append", default=[], metavar="ADDR", help="recipient")
    p.add_argument("--cc", action="append", default=[], metavar="ADDR", help="copy recipient")
    p.add_argument("--bcc", action="append", default=[], metavar="ADDR", help="hidden recipient")
    p.add_argument("--subject", metavar="TEXT", help="the subject (one line)")
    body = p.add_mutually_exclusive_group()
    body.add_argument("--body", metavar="TEXT", help="the message text")
    body.add_argument("--body-file", metavar="FILE", help="read the text from FILE")
    p.add_argument(
        "--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)"
    )
    p.add_argument(
        "--raw",
        metavar="FILE",
        help="send FILE (an RFC 5322 message, '-' for stdin) as it is; recipients from "
        "its To/Cc/Bcc (Bcc lines are removed); Message-ID and Date are added if missing",
    )
    p.add_argument(
        "--queue", action="store_true", help="only put it in the outbox; send on the next flush"
    )
    p.set_defaults(run=run_send)

    for name, help_text in (
        ("compose", "write a new message in $EDITOR"),
        ("reply", "reply to message ID in $EDITOR"),
        ("forward", "forward message ID in $EDITOR"),
    ):
        q = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=EDIT_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name != "compose":
            q.add_argument("id", metavar="ID", help="the message (as shown by list/search)")
        q.add_argument("--account", metavar="NAME", help="send from this account")
        if name == "reply":
            q.add_argument(
                "--all", action="store_true", help="reply to everyone (without your own addresses)"
            )
        if name == "forward":
            q.add_argument(
                "--as-attachment",
                action="store_true",
                help="attach the original message unchanged (message/rfc822)",
            )
        if name == "compose":
            q.add_argument("--to", action="append", default=[], metavar="ADDR")
            q.add_argument("--subject", metavar="TEXT", default="")
        q.add_argument(
            "--attach", action="append", default=[], metavar="FILE", help="attach a file"
        )
        q.set_defaults(run=run_edit, edit_kind=name)

    o = sub.add_parser(
        "outbox",
        parents=[common],
        help="list messages waiting to be sent; flush, retry or drop them",
        description="List the outbox. `flush` sends everything queued now (ignoring the "
        "retry delay); `retry ID` re-queues a failed or uncertain message; `drop ID` "
        "removes one for good.",
    )
    osub = o.add_subparsers(dest="outbox_command", metavar="ACTION")
    flush = osub.add_parser("flush", parents=[common], help="send what is queued, now")
    flush.set_defaults(run=run_outbox_flush)
    retry = osub.add_parser(
        "retry", parents=[common], help="queue a failed or uncertain message again"
    )
    retry.add_argument("id", metavar="ID")
    retry.set_defaults(run=run_outbox_retry)
    drop = osub.add_parser("drop", parents=[common], help="remove a message from the outbox")
    drop.add_argument("id", metavar="ID")
    drop.set_defaults(run=run_outbox_drop)
    o.set_defaults(run=run_outbox_list)


# --- helpers ----------------------------------------------------------------------------


def _identities(config: Config) -> list[Address]:
    from mailbag.message.identity import identities

    return identities(config)


def _from_address(account: Account, chosen: str | None) -> Address:
    from mailbag.message.identity import from_address

    return from_address(account, chosen)


def _read_body(args: argparse.Namespace) -> str:
    if args.body is not None:
        return str(args.body)
    if args.body_file:
        try:
            return Path(args.body_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --body-file {args.body_file}: {exc}") from exc
    if sys.stdin.isatty():
        raise UsageError(
            "no message text",
            hint="give --body TEXT or --body-file FILE, pipe the text in, "
            "or use `mailbag compose` to write it in an editor",
        )
    return sys.stdin.read()


def _send_and_report(ctx: Context, config: Config, ids: list[str]) -> int:
    from mailbag.sync.sending import send_outbox

    result = send_outbox(ctx.paths, config, transcript=ctx.transcript, ids=ids, wait=60)
    return _render(ctx, result, single=True)


def _render(ctx: Context, result: FlushResult, *, single: bool) -> int:
    if ctx.json:
        doc: Any = [r.to_json() for r in result.reports]
        ctx.emit_json(doc[0] if single and len(doc) == 1 else doc)
    else:
        for report in result.reports:
            for line in describe(report):
                ctx.info(line)
        if not result.reports and not single:
            ctx.info("nothing to send")
    return 0 if result.ok else 1


def describe(report: SendReport) -> list[str]:
    """Human lines for one message's outcome (stderr)."""
    from mailbag.diagnose.causes import translate_reply
    from mailbag.sync.outbox import explain_reply

    subject = report.subject or "(no subject)"
    lines: list[str] = []
    accepted = ", ".join(str(r["address"]) for r in report.recipients if r["status"] == "accepted")
    copy = {"done": "; copy saved to Sent", "skipped": "; the server files it in Sent"}.get(
        report.copy or "", ""
    )
    if report.state in ("sent", "removed"):
        lines.append(f"sent {subject!r} to {accepted}{copy}")
    elif report.state == "draft-saved":
        lines.append(f"saved {subject!r} to Drafts")
    elif report.state == "draft":
        lines.append(f"kept {subject!r} as a draft in the outbox ({report.id})")
    elif accepted:
        lines.append(f"sent {subject!r} to {accepted}{copy}, but not to everyone ({report.id}):")
    elif report.state == "queued":
        lines.append(f"not sent yet: {subject!r} stays in the outbox as {report.id}")
    elif report.state == "uncertain":
        lines.append(f"{subject!r} ({report.id}) may or may not have been delivered")
    else:
        lines.append(f"not sent: {subject!r} ({report.id})")
    for r in report.recipients:
        if r["status"] != "accepted":
            reply = f": {r['reply']}" if r["reply"] else ""
            lines.append(f"  {r['address']}: {r['status']}{reply}")
    if report.error:
        lines.append(f"  reason: {report.error['message']}")
        reply = str(report.error.get("reply") or "")
        known = translate_reply(reply) if reply else None
        hint = (known.hint if known is not None else None) or (
            explain_reply(reply) if reply else None
        )
        hint = hint or report.error.get("hint")
        if hint:
            lines.append(f"  hint: {hint}")
        if report.state == "queued":
            lines.append("  it will be retried by `mailbag outbox flush` or `mailbag sync`")
        elif report.state == "uncertain":
            lines.append(
                f"  check the recipient's mail or your Sent folder; `mailbag outbox retry "
                f"{report.id}` sends it again, `mailbag outbox drop {report.id}` forgets it"
            )
        elif report.state == "failed":
            lines.append(
                f"  kept in the outbox: `mailbag outbox retry {report.id}` after fixing, "
                f"or `mailbag outbox drop {report.id}`"
            )
    if report.copy_error:
        lines.append(f"  the copy to Sent will be retried: {report.copy_error}")
    return lines


def flush_before_sync(
    ctx: Context, config: Config, accounts: list[str], transcript: Transcript
) -> list[dict[str, Any]]:
    """`mailbag sync` sends what is due in the outbox first (so Sent copies come down
    with the sync). Problems are reported, never fatal to the sync."""
    from mailbag.store.outbox_probe import has_entries

    if not has_entries(ctx.paths):
        return []  # the usual case: no need to load the outbox or sending code
    from mailbag.store.outbox import OutboxLocked
    from mailbag.sync.sending import send_outbox

    try:
        result = send_outbox(
            ctx.paths, config, transcript=transcript, only_accounts=accounts, wait=5
        )
    except OutboxLocked as exc:
        ctx.info(f"outbox: {exc.message}")
        return []
    for report in result.reports:
        for line in describe(report):
            ctx.info(f"outbox: {line}")
    return [r.to_json() for r in result.reports]


# --- send ---------------------------------------------------------------------------------


def run_send(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import load_config
    from mailbag.message.compose import build, draft_from_flags
    from mailbag.store.outbox import Outbox
    from mailbag.sync.outbox import enqueue, enqueue_raw

    config = load_config(ctx.paths)
    account = config.account(args.account)
    outbox = Outbox.open(ctx.paths)
    if args.raw:
        if args.to or args.cc or args.bcc or args.subject or args.attach or args.body:
            raise UsageError("--raw sends the file as it is; it takes no other message flags")
        data = _read_raw(args.raw)
        record = enqueue_raw(outbox, account, data)
    else:
        if args.subject is None:
            raise UsageError("no --subject", hint='give --subject TEXT (it may be empty: "")')
        draft = draft_from_flags(
            from_=_from_address(account, args.from_),
            to=args.to,
            cc=args.cc,
            bcc=args.bcc,
            subject=args.subject,
            body=_read_body(args),
            attach=args.attach,
        )
        record = enqueue(outbox, account, build(draft))
    if args.queue:
        if ctx.json:
            ctx.emit_json({"id": record.id, "state": record.state.value})
        else:
            ctx.info(f"queued as {record.id}; `mailbag outbox flush` sends it")
        return 0
    return _send_and_report(ctx, config, [record.id])


def _read_raw(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from exc


# --- compose / reply / forward --------------------------------------------------------------


def run_edit(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import load_config
    from mailbag.message.compose import (
        Attachment,
        forward_draft,
        reply_draft,
    )

    config = load_config(ctx.paths)
    kind = args.edit_kind
    answers: int | None = None
    if kind == "compose":
        account = config.account(args.account)
        from mailbag.message.compose import draft_from_flags

        base: Draft = draft_from_flags(
            from_=_from_address(account, None), to=args.to, subject=args.subject
        )
    else:
        from mailbag.store.index import Store

        with Store.open(ctx.paths) as store:
            message = store.lookup(args.id)
            original = store.read_bytes(message)
        account = config.account(args.account or message.account)
        me = _from_address(account, None)
        if kind == "reply":
            base = reply_draft(
                original, identities=_identities(config), default_from=me, reply_all=args.all
            )
            answers = message.id
        else:
            base = forward_draft(original, from_=me, as_attachment=args.as_attachment)
    base.attachments.extend(Attachment.from_path(p) for p in args.attach)
    return edit_loop(ctx, config, account, base, answers=answers)


def edit_loop(
    ctx: Context, config: Config, account: Account, base: Draft, *, answers: int | None
) -> int:
    from mailbag.cli.editor import choose_action, edit_text, keep_text
    from mailbag.errors import MailbagError
    from mailbag.message.compose import (
        build,
        draft_from_template,
        template_from_draft,
    )
    from mailbag.store.outbox import Outbox
    from mailbag.sync.outbox import enqueue, enqueue_draft

    identities = _identities(config)
    text = template_from_draft(base)
    workdir = ctx.paths.state_dir / "compose"
    while True:
        text = edit_text(text, workdir)
        try:
            draft = draft_from_template(text, base, identities=identities, attach_root=Path.cwd())
            draft_ok = True
        except MailbagError as exc:
            ctx.error(exc)
            draft_ok = False
        if draft_ok and not draft.to and not draft.cc and not draft.bcc and not draft.body.strip():
            ctx.info("empty message; nothing was sent or saved")
            return 1
        action = choose_action(
            ctx, allow_send=draft_ok and bool(draft.recipients), allow_draft=draft_ok
        )
        if action == "edit":
            continue
        if action == "abort":
            if not draft_ok:
                kept = keep_text(text, workdir)
                ctx.info(f"not sent; your text is kept in {kept}")
            else:
                ctx.info("aborted; nothing was sent or saved")
            return 1
        outbox = Outbox.open(ctx.paths)
        if action == "draft":
            record = enqueue_draft(outbox, account, build(draft, for_draft=True))
        else:
            record = enqueue(outbox, account, build(draft), answers=answers)
        return _send_and_report(ctx, config, [record.id])


# --- outbox -------------------------------------------------------------------------------


def run_outbox_list(args: argparse.Namespace, ctx: Context) -> int:
    import time

    from mailbag.store.outbox import Outbox

    outbox = Outbox.open(ctx.paths)
    records = outbox.records()
    if ctx.json:
        ctx.emit_json(
            [
                {
                    "id": r.id,
                    "account": r.account,
                    "state": r.state.value,
                    "subject": r.subject,
                    "to": r.recipients,
                    "delivered": r.delivered,
                    "rejected": r.rejected,
                    "message_id": r.message_id,
                    "size": r.size,
                    "created": r.created,
                    "attempts": r.attempts,
                    "next_attempt": r.next_attempt,
                    "error": r.last_error,
                    "copy": r.copy.value,
                }
                for r in records
            ]
        )
        return 0
    if not records:
        ctx.info("the outbox is empty")
        return 0
    now = time.time()
    for r in records:
        when = ""
        if r.state.value == "queued" and r.next_attempt:
            wait = max(0, int(r.next_attempt - now))
            when = f" (next try in {wait // 60}m{wait % 60:02d}s)" if wait else " (due)"
        to = ", ".join(r.recipients or r.delivered)
        ctx.out(f"{r.id}  {r.state.value:<9} {r.account:<14} {to[:40]:<40} {r.subject[:50]}")
        if r.last_error:
            ctx.out(f"{'':14}{r.last_error['message']}{when}")
    return 0


def run_outbox_flush(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import load_config
    from mailbag.sync.sending import send_outbox

    config = load_config(ctx.paths)
    result = send_outbox(
        ctx.paths, config, transcript=ctx.transcript, respect_backoff=False, wait=60
    )
    return _render(ctx, result, single=False)


def run_outbox_retry(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.store.outbox import Outbox
    from mailbag.sync.outbox import retry

    record = retry(Outbox.open(ctx.paths), args.id)
    if ctx.json:
        ctx.emit_json({"id": record.id, "state": record.state.value})
    else:
        ctx.info(f"{record.id} queued again; `mailbag outbox flush` sends it now")
    return 0


def run_outbox_drop(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.store.outbox import Outbox
    from mailbag.sync.outbox import drop

    record = drop(Outbox.open(ctx.paths), args.id)
    if ctx.json:
        ctx.emit_json({"id": record.id, "state": "dropped"})
    else:
        ctx.info(f"dropped {record.id} ({record.subject!r})")
    return 0
