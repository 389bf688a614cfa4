"""`mailbag sync` and `mailbag folders`: arguments in, engine call, report out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from mailbag.cli.context import Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import IO, Any

SYNC_HELP = "sync IMAP accounts with the local store (POP3: download new mail)"
SYNC_DESCRIPTION = """\
Two-way sync of IMAP accounts with the local Maildir store: new mail, flag
changes and deletions go both ways; messages added here (drafts, sent copies)
are uploaded. POP3 accounts download new mail.

Safety: a missing or emptied local folder, a lost index or a server folder that
suddenly looks empty never turns into mass deletion. When a run would delete
more than the account's mass_delete_threshold messages in one folder, that
folder is left alone and the run says why; --force carries it out.
"""
FOLDERS_HELP = "list the folders known locally, with message counts"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    import argparse

    p = sub.add_parser(
        "sync",
        help=SYNC_HELP,
        description=SYNC_DESCRIPTION,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="accounts to sync (default: all)")
    p.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="GLOB",
        help="only folders matching GLOB (repeatable; e.g. 'INBOX', 'Work/*')",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="carry out deletions above the mass-deletion threshold",
    )
    p.add_argument(
        "--connections",
        type=int,
        default=4,
        metavar="N",
        help="IMAP connections used at once (default: 4)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another sync of the same account to finish (default: refuse)",
    )
    # the sync engine loads in `run_sync`, which resumes the collector once it has
    # (cli.process); a sync that succeeded may end with a quick exit
    p.set_defaults(run=run_sync, collects_late=True, quick_exit=True)

    f = sub.add_parser(
        "folders",
        help=FOLDERS_HELP,
        description="List the folders of the local store (run `mailbag sync` to refresh).",
        parents=[common],
    )
    f.add_argument("--account", metavar="NAME", help="only this account")
    f.set_defaults(run=run_folders)


#: `sync`'s options that take a value (written out in full, as `--x V` or `--x=V`)
_VALUED = frozenset({"--folder", "--connections", "--wait"})


def parse_plain(argv: Sequence[str], global_option: Callable[[str], bool]) -> dict[str, Any] | None:
    """The values `register`'s `sync` parser gives for `argv` (what follows the command
    name), without argparse (see `cli.main._parse_plain`); `global_option` takes the
    global options. None when `argv` is not plain: an option not written out in full,
    a value that is empty or starts with "-", account names not in one run, a number
    `int`/`float` refuse, `--`, `-h`: argparse then parses it and explains."""
    values: dict[str, Any] = {
        "names": [],
        "folder": [],
        "force": False,
        "connections": 4,
        "wait": 0.0,
        "run": run_sync,
        "collects_late": True,
        "quick_exit": True,
    }
    names_ended = False
    at = 0
    while at < len(argv):
        arg = argv[at]
        at += 1
        option, equals, value = arg.partition("=")
        if option in _VALUED:
            if not equals:
                if at == len(argv):
                    return None
                value = argv[at]
                at += 1
            if not value or value.startswith("-"):
                return None
            try:
                if option == "--connections":
                    values["connections"] = int(value)
                elif option == "--wait":
                    values["wait"] = float(value)
                else:
                    values["folder"].append(value)
            except ValueError:
                return None
        elif arg == "--force":
            values["force"] = True
        elif arg.startswith("-"):
            if not global_option(arg):
                return None
        elif not arg or names_ended:
            return None
        else:
            values["names"].append(arg)
            continue
        names_ended = bool(values["names"])  # (argparse takes one run of names)
    return values


class ProgressBar:
    """One self-rewriting line on a terminal: folders, messages, bytes, rate, ETA."""

    def __init__(self, stream: IO[str], account: str, folders: int = 0) -> None:
        self.stream = stream
        self.account = account
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.folders_done = 0
        self.todo = 0
        self.done = 0
        self.bytes = 0
        self.last = 0.0
        self.retries = 0

    def __call__(self, event: Any) -> None:
        with self.lock:
            if event.kind == "plan":
                self.todo += event.messages
            elif event.kind == "message":
                self.done += event.messages
                self.bytes += event.bytes
            elif event.kind == "folder-done":
                self.folders_done += 1
            elif event.kind == "retry":
                self.retries += 1
            now = time.monotonic()
            if now - self.last >= 0.1 or event.kind == "folder-done":
                self.last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        mb = self.bytes / 1e6
        line = (
            f"{self.account}: {self.folders_done} folders, "
            f"{self.done}/{max(self.todo, self.done)} messages, {mb:.1f} MB, "
            f"{mb / elapsed:.1f} MB/s"
        )
        if self.todo > self.done and rate > 0:
            eta = int((self.todo - self.done) / rate)
            line += f", ETA {eta // 60}:{eta % 60:02d}"
        if self.retries:
            line += f", {self.retries} retries"
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()

    def close(self) -> None:
        with self.lock:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def _sync_pop3(
    account: Any, ctx: Context, force: bool, transcript: Any, wait: float
) -> dict[str, Any]:
    from mailbag.errors import MailbagError
    from mailbag.sync.pop3 import partial_report, sync_pop3_account

    bar = ProgressBar(ctx.stderr, account.name) if not ctx.quiet and ctx.stderr.isatty() else None
    try:
        report = sync_pop3_account(
            account,
            ctx.paths,
            transcript=transcript,
            force=force,
            progress=bar,
            warn=lambda text: ctx.warn(f"{account.name}: {text}"),
            lock_wait=wait,
        )
    except MailbagError as exc:
        # a session that failed (a dropped connection, QUIT not acknowledged) keeps every
        # message it stored before: say how many, with the error
        done = partial_report(exc)
        if done is None or not (done.new or done.headers_only):
            raise
        ctx.warn(f"{account.name}: {exc.message}")
        if exc.hint:
            ctx.warn(f"  hint: {exc.hint}")
        ctx.warn(
            f"{account.name}: INBOX (POP3): done before that (kept): "
            + ", ".join(_pop_notes(done))
            + "; the rest comes with the next sync"
        )
        summary = {**done.folder_summary(), "error": exc.message}
        return {"name": account.name, "ok": False, "folders": [summary], "error": exc.message}
    finally:
        if bar is not None:
            bar.close()
    ctx.info(f"{account.name}: INBOX (POP3); " + ", ".join(_pop_notes(report)))
    return {"name": account.name, "ok": True, "folders": [report.folder_summary()], "error": None}


def _pop_notes(report: Any) -> list[str]:
    notes = [f"{report.new} new", f"{report.removed} removed from the server"]
    if report.headers_only:
        notes.append(f"{report.headers_only} over the size limit (header only)")
    if report.skipped:
        notes.append(f"{report.skipped} over the size limit (left on the server)")
    if report.deferred:
        notes.append(f"{report.deferred} left for the next sync (max_per_session)")
    return notes


def run_sync(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import load_config
    from mailbag.config.model import Protocol
    from mailbag.errors import MailbagError, UsageError
    from mailbag.protocols.trace import NO_TRACE, Transcript
    from mailbag.protocols.transport import discard_early

    if args.connections < 1:
        raise UsageError("--connections must be 1 or more")
    config = load_config(ctx.paths)
    names = list(dict.fromkeys(args.names))
    accounts = [config.account(n) for n in names] if names else [config.account(None)]
    if not names and len(config.accounts) > 1:
        accounts = list(config.accounts.values())
    transcript = Transcript(ctx.trace_file) if ctx.trace_file else NO_TRACE
    results: list[dict[str, Any]] = []
    failed = False
    try:
        # queued outgoing mail goes first, so its Sent copies come down with this sync
        # (the sending code loads only when there is some: mostly there is none)
        from mailbag.store.outbox_probe import has_entries

        outbox: list[dict[str, Any]] = []
        if has_entries(ctx.paths):
            from mailbag.cli.cmd_send import flush_before_sync

            outbox = flush_before_sync(ctx, config, [a.name for a in accounts], transcript)
        _connect_early(accounts[0])
        early_secret = _EarlySecret.start(accounts[0])
        # (a keyring that could not be read: the engine's path reports it, where it
        # always did, before taking the account's lock)
        log_in_early = early_secret is not None and not early_secret.failed
        if early_secret is not None and log_in_early:
            # and log in on that connection once the password is read (`sync.early`)
            from mailbag.sync.early import login_early

            login_early(early_secret.account, early_secret.take, transcript)
            # what that login needs loads first, here: the thread waits for it instead of
            # loading it at the same time as this thread loads the engine (two threads
            # loading at once take turns for the GIL, and both finish late); it then logs
            # in while the rest of the engine loads, and is done when it is needed
            import mailbag.auth.login
            import mailbag.protocols.imap.client  # noqa: F401
        if early_secret is not None and log_in_early and len(accounts) == 1:
            # a re-sync with nothing to do here or there ends here, before the sync
            # engine loads (`sync.quick`); else the engine takes that connection
            quick = _sync_quick(ctx, early_secret.account, args)
            if quick is not None:
                results.append(quick.to_json())
                failed = not quick.ok
                _print_human(ctx, quick)
                accounts = []
        if accounts:  # (else done: `_sync_quick`)
            # the sync engine loads while that connection opens
            from mailbag.cli import process
            from mailbag.config.secrets import get_secret
            from mailbag.sync.events import AccountReport, no_progress
            from mailbag.sync.imap import SyncOptions, sync_account

            process.resume_collector()  # loaded: collect garbage again before any mail is handled

            options = SyncOptions(
                folders=tuple(args.folder),
                force=args.force,
                connections=args.connections,
                lock_wait=args.wait,
                leave_removals=process.program,
            )

        for account in accounts:
            try:
                if account.protocol is Protocol.POP3:
                    results.append(_sync_pop3(account, ctx, args.force, transcript, args.wait))
                    continue
                # OAuth2 accounts log in with access tokens (mailbag.auth), not this secret
                oauth2 = account.incoming.auth.value == "oauth2"
                if oauth2:
                    secret = ""
                elif early_secret is not None and account is early_secret.account:
                    secret = early_secret.take()
                else:
                    secret = get_secret(account, "incoming")
                show_bar = not ctx.quiet and ctx.stderr.isatty()
                bar = ProgressBar(ctx.stderr, account.name) if show_bar else None
                try:
                    report = sync_account(
                        account,
                        secret,
                        ctx.paths,
                        options=options,
                        on_progress=bar or no_progress,
                        transcript=transcript,
                    )
                finally:
                    if bar is not None:
                        bar.close()
            except MailbagError as exc:
                if len(accounts) == 1 and exc.exit_code == 2:
                    raise
                report = AccountReport(account.name, error=exc.message, hint=exc.hint)
            results.append(report.to_json())
            failed = failed or not report.ok
            _print_human(ctx, report)
    finally:
        from mailbag.sync import early

        early.discard()  # nobody took them: the sync ended before connecting
        discard_early()
        transcript.close()
    failed = failed or any(not r["ok"] for r in results)
    if ctx.json:
        ctx.emit_json({"accounts": results, "outbox": outbox})
    return 1 if failed else 0


class _EarlySecret:
    """The first IMAP account's password, read before the sync engine loads, so that its
    connection (opening meanwhile, `_connect_early`) can log in early (`sync.early`) and
    a re-sync with nothing to do can end before the engine loads (`sync.quick`).

    A password command runs in a background thread while the engine loads: the command's
    start and run (a few ms, more for `pass` and the like) then no longer come between
    the loading and the login. A keyring is read here, in the calling (main) thread,
    before anything else: a keyring may prompt (keyrings.alt's encrypted file asks for
    its password on the terminal, a Secret Service may show an unlock dialog), and a
    terminal prompt must stay in the main thread, where Ctrl-C interrupts it and its
    terminal settings are put back (a daemon thread killed in `getpass` would leave the
    terminal without echo). Reading it in a thread would gain nothing either: it is
    mostly imports, which hold the GIL (see `config.keyring_backend`). What goes wrong
    reading either is raised by `take`, where the secret was always read, so errors,
    messages and exit codes stay the same."""

    def __init__(self, account: Any) -> None:
        self.account = account
        self.value: str | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, account: Any) -> _EarlySecret | None:
        from mailbag.config.model import Protocol, SecretSource

        incoming = account.incoming
        if account.protocol is not Protocol.IMAP or incoming.auth.value == "oauth2":
            return None
        early = cls(account)
        if incoming.secret.source is SecretSource.COMMAND:
            early._thread = threading.Thread(target=early._run, name="mailbag-secret", daemon=True)
            early._thread.start()
        elif incoming.secret.source is SecretSource.KEYRING:
            early._read()
        else:
            return None
        return early

    def _read(self) -> None:
        from mailbag.config.secrets import get_secret

        try:
            self.value = get_secret(self.account, "incoming")
        except Exception as exc:  # noqa: BLE001 - raised by `take`, where it always was
            self.error = exc

    def _run(self) -> None:
        from mailbag.config.secrets import get_secret

        try:
            self.value = get_secret(self.account, "incoming")
        except BaseException as exc:  # noqa: BLE001 - raised by `take`, in the caller's thread
            self.error = exc

    @property
    def failed(self) -> bool:
        """Whether reading it failed already (a keyring; a command may still run)."""
        return self._thread is None and self.error is not None

    def take(self) -> str:
        """The secret (waiting for the command), or what went wrong, raised here."""
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


def _sync_quick(ctx: Context, account: Any, args: argparse.Namespace) -> Any | None:
    """`sync.quick.sync_if_unchanged` (its report, or None: the engine syncs), with the
    progress bar and the errors as the engine's sync of the account has them."""
    from mailbag.errors import MailbagError
    from mailbag.sync.quick import sync_if_unchanged

    show_bar = not ctx.quiet and ctx.stderr.isatty()
    bar = ProgressBar(ctx.stderr, account.name) if show_bar else None
    try:
        report = sync_if_unchanged(
            account, ctx.paths, tuple(args.folder), args.wait, bar or (lambda _: None)
        )
    except MailbagError as exc:  # (another sync holds the lock)
        if exc.exit_code == 2:
            raise
        from mailbag.sync.events import AccountReport

        report = AccountReport(account.name, error=exc.message, hint=exc.hint)
    if bar is not None and report is not None:
        bar.close()
    return report


def _connect_early(account: Any) -> None:
    """Start opening the first IMAP account's connection in the background: the TCP and
    TLS round trips then overlap the loading of the sync engine (most of a sync where
    nothing changed), and the sync takes that connection (`transport.open_early`)."""
    from mailbag.config.model import Protocol
    from mailbag.protocols.transport import open_early

    if account.protocol is Protocol.IMAP:
        open_early(account.incoming.endpoint(account.ca_file))


def _print_human(ctx: Context, report: Any) -> None:
    if report.error:
        ctx.warn(f"{report.name}: {report.error}")
        if report.hint:
            ctx.warn(f"  hint: {report.hint}")
    total = {"new": 0, "updated": 0, "deleted": 0, "uploaded": 0}
    failed = 0
    for f in report.folders:
        for k in total:
            total[k] += getattr(f, k)
        changes = [f"{getattr(f, k)} {k}" for k in total if getattr(f, k)]
        if f.error:
            failed += 1
            ctx.warn(f"{report.name}/{f.name}: {f.error}")
            # what the tries before the failure committed is kept: say what it was
            if f.paired_again:
                changes.append(f"{f.paired_again} paired again after a UIDVALIDITY change")
            if f.restored:
                changes.append(f"{f.restored} restored")
            if changes:
                ctx.warn(f"{report.name}/{f.name}: done before that (kept): " + ", ".join(changes))
        for note in f.notes:
            ctx.info(f"{report.name}/{f.name}: {note}")
        if ctx.verbose and changes and not f.error:
            ctx.info(f"{report.name}/{f.name}: " + ", ".join(changes))
    summary = ", ".join(f"{v} {k}" for k, v in total.items())
    again = sum(f.paired_again for f in report.folders)
    if again:
        hashed = sum(f.paired_by_hash for f in report.folders)
        summary += f"; {again} paired again after a UIDVALIDITY change"
        if hashed:
            summary += f" ({hashed} without a Message-ID, by size and header hash)"
    if failed:
        summary += f"; {failed} not finished (see above)"
    ctx.info(f"{report.name}: {len(report.folders)} folders; {summary}")


def run_folders(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.store.index import Store

    with Store.open(ctx.paths, hooks=False) as store:
        counts = store.folder_counts(args.account)
    folders: list[dict[str, Any]] = [
        {
            "account": f.account,
            "name": f.name,
            "role": f.role,
            "messages": total,
            "unread": unread,
            "last_sync": f.last_sync,
        }
        for f, total, unread in counts
    ]
    if ctx.json:
        ctx.emit_json(folders)
        return 0
    if not folders:
        ctx.info("no folders yet: run `mailbag sync` first")
        return 0
    width = max(len(f.name) for f, _, _ in counts)
    for f, total, unread in counts:
        role = f" ({f.role})" if f.role else ""
        ctx.out(f"{f.account}  {f.name:<{width}}  {total:>7} messages  {unread:>6} unread{role}")
    return 0
    width = max(len(f["name"]) for f in folders)
    for f in folders:
        role = f" ({f['role']})" if f["role"] else ""
        ctx.out(
            f"{f['account']}  {f['name']:<{width}}  {f['messages']:>7} messages"
            f"  {f['unread']:>6} unread{role}"
        )
    return 0
