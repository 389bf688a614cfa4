"""Reading mail from the local store: list, search, read, thread, attachments,
and the local changes flag, move, delete (applied on the server by the next
sync), plus reindex for the full-text index.

Handlers import the store and the message code when they run, so that
`mailbag list` starts fast.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mailbag.cli.context import Context

if TYPE_CHECKING:
    from mailbag.message.parse import ParsedMessage
    from mailbag.store.index import Message, Store

QUERY_HELP = """\
query language:
  words, "a phrase", word*           full text (subject, people, body, attachment names)
  from: to: cc: subject: body:       full text in one field, e.g. from:alice subject:"q3 report"
  attachment:NAME                    attachment file names
  folder:NAME  account:NAME          where the message is
  is:unread|read|flagged|unflagged|answered|unanswered|draft
  has:attachment
  before:DATE  after:DATE  date:DATE  date:DATE..DATE   (DATE = YYYY, YYYY-MM, YYYY-MM-DD)
  larger:SIZE  smaller:SIZE          e.g. larger:1M smaller:20k
  AND  OR  NOT  ( )                  adjacent terms are ANDed; NOT binds tightest

examples:
  mailbag search budget from:alice after:2026-01
  mailbag search '"quarterly report" OR subject:invoice' has:attachment
  mailbag search 'is:unread NOT folder:Newsletters'
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    raw = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("list", help="list messages, newest first", parents=[common])
    p.add_argument("--account", metavar="NAME", help="only this account")
    p.add_argument("--folder", metavar="FOLDER", help="this folder (default: INBOX)")
    p.add_argument("--all", action="store_true", help="every folder")
    p.add_argument("--unread", action="store_true", help="only unread messages")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (0: all)")
    p.set_defaults(run=run_list)

    p = sub.add_parser(
        "search",
        help="search the local full-text index",
        parents=[common],
        epilog=QUERY_HELP,
        formatter_class=raw,
    )
    # REMAINDER: "-word" (NOT word) would otherwise be taken for an unknown option;
    # options given after the query are picked out again in run_search
    p.add_argument(
        "query", nargs=argparse.REMAINDER, metavar="QUERY", help="search terms (joined with spaces)"
    )
    p.add_argument("--account", metavar="NAME", help="only this account")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (0: all)")
    p.set_defaults(run=run_search)

    p = sub.add_parser("read", help="show a message", parents=[common])
    p.add_argument("id", metavar="ID")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--raw", action="store_true", help="the exact stored bytes")
    view.add_argument("--html", action="store_true", help="the HTML body, sanitised")
    view.add_argument("--headers", action="store_true", help="every header field")
    view.add_argument("--thread", action="store_true", help="the whole conversation")
    p.add_argument("--peek", action="store_true", help="do not mark the message as read")
    p.set_defaults(run=run_read)

    p = sub.add_parser(
        "thread", help="list the conversation a message belongs to", parents=[common]
    )
    p.add_argument("id", metavar="ID")
    p.set_defaults(run=run_thread)

    p = sub.add_parser("attachments", help="list or save a message's attachments", parents=[common])
    p.add_argument("id", metavar="ID")
    p.add_argument("--save", metavar="DIR", help="write them into DIR (never overwriting)")
    p.add_argument(
        "--only", metavar="N", type=int, action="append", help="only attachment N (repeatable)"
    )
    p.set_defaults(run=run_attachments)

    p = sub.add_parser(
        "flag",
        help="set or clear flags: +seen -seen +flagged +answered +draft +$Keyword",
        parents=[common],
        description="Change flags locally; the next sync applies them on the server.\n"
        "  mailbag flag ID +flagged -seen",
        formatter_class=raw,
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("changes", nargs=argparse.REMAINDER, metavar="+FLAG|-FLAG")
    p.set_defaults(run=run_flag)

    p = sub.add_parser("move", help="move a message to another folder", parents=[common])
    p.add_argument("id", metavar="ID")
    p.add_argument("folder", metavar="FOLDER")
    p.set_defaults(run=run_move)

    p = sub.add_parser(
        "delete", help="move messages to Trash (--expunge: for good)", parents=[common]
    )
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--expunge", action="store_true", help="remove for good, not to Trash")
    p.set_defaults(run=run_delete)

    p = sub.add_parser("reindex", help="rebuild the full-text search index", parents=[common])
    p.set_defaults(run=run_reindex)


# --- helpers -------------------------------------------------------------------------------


def _open(ctx: Context) -> Store:
    from mailbag.store.index import Store

    return Store.open(ctx.paths)


def _limit(n: int) -> int | None:
    return None if n <= 0 else n


def _print_list(ctx: Context, messages: list[Message]) -> None:
    from mailbag.cli.mailfmt import envelope_json, list_lines

    if ctx.json:
        ctx.emit_json([envelope_json(m) for m in messages])
        return
    for line in list_lines(messages):
        ctx.out(line)


# --- list and search -----------------------------------------------------------------------


def _folder_name(store: Store, account: str | None, wanted: str) -> str:
    """The stored name of the folder the user means (INBOX in any case)."""
    from mailbag.errors import UsageError

    names = sorted({f.name for f in store.folders(account)})
    if wanted in names or not names:
        return wanted
    if wanted.upper() == "INBOX":
        return next((n for n in names if n.upper() == "INBOX"), wanted)
    shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    raise UsageError(
        f"no folder {wanted!r}" + (f" in account {account!r}" if account else ""),
        hint=f"known folders: {shown} (`mailbag list --all` lists every folder)",
    )


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    store = _open(ctx)
    try:
        folder = None if args.all else _folder_name(store, args.account, args.folder or "INBOX")
        messages = store.messages(
            account=args.account, folder=folder, unread=args.unread, limit=_limit(args.limit)
        )
        _print_list(ctx, messages)
        if not messages and not ctx.json:
            ctx.info("no messages" + ("" if store.accounts() else "; run `mailbag sync` first"))
    finally:
        store.close()
    return 0


def _split_search_args(args: argparse.Namespace, ctx: Context) -> str:
    """The query words, with options given after them applied to `args`/`ctx`."""
    late = argparse.ArgumentParser(add_help=False)
    late.add_argument("--account")
    late.add_argument("--limit", type=int)
    for flag in _GLOBAL_FLAGS:
        late.add_argument(flag, action="store_true", dest=_GLOBAL_FLAGS[flag])
    # unknown "-word" terms stay in `words`, in order
    known, words = late.parse_known_args(list(args.query))
    for key in ("account", "limit"):
        if getattr(known, key) is not None:
            setattr(args, key, getattr(known, key))
    for name in set(_GLOBAL_FLAGS.values()):
        if getattr(known, name):
            setattr(ctx, name, True)
    if not words:
        from mailbag.errors import UsageError

        raise UsageError("no search query given", hint='for example: mailbag search "budget"')
    return " ".join(words)


def run_search(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.store import fulltext
    from mailbag.store.query import search

    query = _split_search_args(args, ctx)
    store = _open(ctx)
    try:
        if fulltext.needs_rebuild(store.conn):
            ctx.info("building the search index (once)...")
        elif (waiting := fulltext.pending(store.conn)) > 100:
            ctx.info(f"indexing {waiting} new messages...")
        messages = search(store, query, account=args.account, limit=_limit(args.limit))
        _print_list(ctx, messages)
        if not messages and not ctx.json:
            ctx.info("no messages match")
    finally:
        store.close()
    return 0


def run_reindex(args: argparse.Namespace, ctx: Context) -> int:
    import time

    from mailbag.store import fulltext

    store = _open(ctx)
    start = time.monotonic()

    def progress(done: int, total: int) -> None:
        if ctx.interactive and not ctx.quiet:
            print(f"\rindexing {done}/{total}", end="", file=ctx.stderr, flush=True)

    try:
        count = fulltext.rebuild(store, progress)
    finally:
        store.close()
    seconds = time.monotonic() - start
    if ctx.interactive and not ctx.quiet:
        print(file=ctx.stderr)
    if ctx.json:
        ctx.emit_json({"indexed": count, "seconds": round(seconds, 3)})
    else:
        ctx.info(f"indexed {count} messages in {seconds:.1f} s")
    return 0


# --- read ----------------------------------------------------------------------------------


def _header_lines(msg: ParsedMessage) -> list[tuple[str, str]]:
    h = msg.headers
    lines = []
    for name in ("From", "To", "Cc", "Reply-To"):
        addrs = h.addresses(name)
        if addrs:
            text = ", ".join(str(a) for a in addrs[:20])
            total = h.address_count(name)
            if total > 20:
                text += f", ... ({total:,} in all)"
            lines.append((name, text))
    date = h.decoded("Date")
    if date:
        lines.append(("Date", date))
    lines.append(("Subject", msg.subject or "(no subject)"))
    return lines


def _message_doc(store: Store, message: Message, raw: bytes) -> dict[str, Any]:
    from mailbag.cli.mailfmt import envelope_json
    from mailbag.message.attachments import list_attachments
    from mailbag.message.parse import parse_message
    from mailbag.message.render import render_body
    from mailbag.textsafe import clean_terminal as c

    msg = parse_message(raw)
    body = render_body(msg)
    doc = envelope_json(message)
    doc.update(
        {
            "cc": c(message.cc_addrs),
            "message_id": c(message.message_id),
            "headers": [[c(k), c(v)] for k, v in _header_lines(msg)],
            "body": c(body.text, keep_newlines=True),
            "body_type": body.source,
            "attachments": [{**a.to_json(), "name": c(a.name)} for a in list_attachments(msg)],
            "remote": {
                "blocked": len(body.remote.blocked),
                "trackers": [c(u) for u in body.remote.trackers],
            },
            "notices": [c(n) for n in msg.notices + body.notices],
        }
    )
    return doc


def _show(ctx: Context, store: Store, message: Message, raw: bytes) -> None:
    from mailbag.message.attachments import list_attachments
    from mailbag.message.parse import parse_message
    from mailbag.message.render import render_body

    msg = parse_message(raw)
    body = render_body(msg)
    for name, value in _header_lines(msg):
        ctx.out(f"{name + ':':<9}{_one_line(value)}")
    attachments = list_attachments(msg)
    if attachments:
        names = ", ".join(_one_line(a.name or a.content_type) for a in attachments[:10])
        more = f" and {len(attachments) - 10} more" if len(attachments) > 10 else ""
        ctx.out(f"{'Attach:':<9}{names}{more}  (mailbag attachments {message.short_id})")
    ctx.out("")
    ctx.out(body.text if body.text else "(no text body)")
    summary = body.remote.summary()
    if summary:
        ctx.info(f"note: {summary}; nothing was fetched")
    notices = msg.notices + body.notices
    for n in notices:
        ctx.info(f"note: {n}")
    if notices:
        ctx.info(f"note: `mailbag read {message.short_id} --raw` shows the message as stored")


def _one_line(text: str) -> str:
    from mailbag.textsafe import clean_terminal

    return clean_terminal(text)


def run_read(args: argparse.Namespace, ctx: Context) -> int:
    store = _open(ctx)
    try:
        message = store.lookup(args.id)
        raw = store.read_bytes(message)
        if args.raw:
            _print_raw(ctx, raw)
        elif args.headers:
            _print_headers(ctx, raw)
        elif args.html:
            _print_html(ctx, raw, message)
        elif args.thread:
            _print_thread(ctx, store, message)
        elif ctx.json:
            ctx.emit_json(_message_doc(store, message, raw))
        else:
            _show(ctx, store, message, raw)
        if not args.peek:
            from mailbag.store.actions import mark_seen

            if args.thread:
                from mailbag.store.query import thread

                for m in thread(store, message):
                    mark_seen(store, m)
            else:
                mark_seen(store, message)
    finally:
        store.close()
    return 0


def _print_raw(ctx: Context, raw: bytes) -> None:
    from mailbag.textsafe import clean_terminal

    buffer = getattr(ctx.stdout, "buffer", None)
    if ctx.interactive or buffer is None:
        # on a terminal the bytes are not "exact": escape sequences would run
        ctx.stdout.write(clean_terminal(raw.decode("utf-8", "replace"), keep_newlines=True))
        return
    ctx.stdout.flush()
    buffer.write(raw)
    buffer.flush()


def _print_headers(ctx: Context, raw: bytes) -> None:
    from mailbag.message.parse import parse_message

    msg = parse_message(raw)
    items = list(msg.headers.decoded_items())
    if ctx.json:
        from mailbag.textsafe import clean_terminal as c

        ctx.emit_json([[c(k), c(v)] for k, v in items])
        return
    for name, value in items:
        ctx.out(f"{_one_line(name)}: {_one_line(value)}")
    for n in msg.headers.notices:
        ctx.info(f"note: {n}")


def _print_html(ctx: Context, raw: bytes, message: Message) -> None:
    from mailbag.errors import UsageError
    from mailbag.message.parse import parse_message
    from mailbag.message.render import html_body
    from mailbag.textsafe import clean_terminal

    html, report, notes = html_body(parse_message(raw))
    if html is None:
        raise UsageError(
            f"message {message.short_id} has no HTML part",
            hint=f"`mailbag read {message.short_id}` shows its text",
        )
    if ctx.json:
        ctx.emit_json(
            {
                "id": message.short_id,
                "html": clean_terminal(html, keep_newlines=True),
                "remote": {"blocked": len(report.blocked), "trackers": report.trackers},
            }
        )
        return
    ctx.out(html)
    summary = report.summary()
    if summary:
        ctx.info(f"note: {summary}; removed from the HTML above")
    for n in notes:
        ctx.info(f"note: {n}")


def _print_thread(ctx: Context, store: Store, message: Message) -> None:
    from mailbag.errors import StoreError
    from mailbag.store.query import thread

    messages = thread(store, message)
    docs = []
    for i, m in enumerate(messages):
        try:
            raw = store.read_bytes(m)
        except StoreError as exc:
            ctx.warn(exc.message)
            continue
        if ctx.json:
            docs.append(_message_doc(store, m, raw))
            continue
        if i:
            ctx.out("")
        marker = " (this message)" if m.id == message.id else ""
        ctx.out(f"=== {m.short_id}{marker} " + "=" * 40)
        _show(ctx, store, m, raw)
    if ctx.json:
        ctx.emit_json({"id": message.short_id, "thread": docs})


def run_thread(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.store.query import thread

    store = _open(ctx)
    try:
        _print_list(ctx, thread(store, store.lookup(args.id)))
    finally:
        store.close()
    return 0


# --- attachments ---------------------------------------------------------------------------


def run_attachments(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from mailbag.cli.mailfmt import human_size
    from mailbag.message.attachments import list_attachments, save_attachments
    from mailbag.message.parse import parse_message
    from mailbag.textsafe import clean_terminal as c

    store = _open(ctx)
    try:
        message = store.lookup(args.id)
        msg = parse_message(store.read_bytes(message))
    finally:
        store.close()
    found = list_attachments(msg)
    saved: dict[int, str] = {}
    if args.save:
        only = set(args.only) if args.only else None
        for att, path in save_attachments(msg, Path(args.save).expanduser(), only=only):
            saved[att.index] = str(path)
    if ctx.json:
        ctx.emit_json(
            {
                "id": message.short_id,
                "attachments": [
                    {**a.to_json(), "name": c(a.name), "saved_as": saved.get(a.index)}
                    for a in found
                ],
                "notices": [c(n) for n in msg.notices],
            }
        )
        return 0
    if not found:
        ctx.info(f"message {message.short_id} has no attachments")
    for a in found:
        line = f"{a.index:>3}  {human_size(a.size):>6}  {c(a.content_type):<28}  {c(a.name) or '-'}"
        if a.index in saved:
            line += f"  -> {c(saved[a.index])}"
        ctx.out(line)
    for n in msg.notices:
        ctx.info(f"note: {n}")
    return 0


# --- changes -------------------------------------------------------------------------------

_GLOBAL_FLAGS = {"--json": "json", "-q": "quiet", "--quiet": "quiet", "--debug": "debug"}


def run_flag(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.cli.mailfmt import envelope_json
    from mailbag.store.actions import apply_flag_changes

    # "-seen" looks like an option to argparse, so changes are taken as they
    # come; global options given after them still count
    changes = []
    for word in args.changes:
        if word in _GLOBAL_FLAGS:
            setattr(ctx, _GLOBAL_FLAGS[word], True)
        else:
            changes.append(word)
    store = _open(ctx)
    try:
        message = apply_flag_changes(store, store.lookup(args.id), changes)
    finally:
        store.close()
    if ctx.json:
        ctx.emit_json(envelope_json(message))
    else:
        ctx.info(f"{message.short_id}: {' '.join(sorted(message.flags)) or '(no flags)'}")
    return 0


def run_move(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.cli.mailfmt import envelope_json
    from mailbag.store.actions import find_target_folder

    store = _open(ctx)
    try:
        message = store.lookup(args.id)
        target = find_target_folder(store, message.account, args.folder)
        moved = store.move(message, target)
    finally:
        store.close()
    if ctx.json:
        ctx.emit_json({**envelope_json(moved), "previous_id": message.short_id})
    else:
        ctx.info(f"moved {message.short_id} to {moved.folder} (now {moved.short_id})")
    return 0


def run_delete(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.store.actions import delete

    store = _open(ctx)
    results = []
    try:
        messages = [store.lookup(i) for i in args.ids]  # all IDs valid before any change
        for message in messages:
            moved = delete(store, message, expunge=args.expunge)
            results.append(
                {
                    "id": message.short_id,
                    "expunged": moved is None,
                    "trash_id": None if moved is None else moved.short_id,
                }
            )
    finally:
        store.close()
    if ctx.json:
        ctx.emit_json(results)
    else:
        for r in results:
            if r["expunged"]:
                ctx.info(f"deleted {r['id']} (the next sync removes it from the server)")
            else:
                ctx.info(f"moved {r['id']} to Trash (now {r['trash_id']})")
    return 0
