"""POP3 download engine: server listing -> plan -> download into the local INBOX -> DELE -> QUIT.

Messages go into the account's local INBOX in the shared store (Maildir + index),
so `list`, `read` and `search` treat them like synced IMAP mail. What this
computer already holds is the POP3 ledger (`mailbag.store.pop_ledger`); what to
do in a session is decided by the pure planner (`mailbag.sync.pop3_plan`).

The guarantees, and where they come from:
- exactly once here: a message's ledger row is written inside the same index
  transaction as its index row, and `Store.commit()` fsyncs the files before it
  commits; a crash before the commit leaves only tmp/ files (removed at the next
  start by `Store.recover`), so the message is fetched again; after the commit it
  is held and never fetched again;
- a partial message (connection dropped mid-RETR) is never indexed: its tmp file
  is removed and the next session fetches it;
- DELE only for messages committed here, and only QUIT +OK counts as a committed
  removal: rows are `dele-sent` until then, and a later listing settles them.

It never sends DELE for a message whose full text is not stored here, and never
treats a message missing from the local store as deleted by the user.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from mailbag.errors import AuthError, MailbagError, NetworkError, ProtocolError, SyncError
from mailbag.store.maildir import Maildir, fsync_dir, fsync_file
from mailbag.store.pop_ledger import LedgerEntry, LedgerState, PopLedger
from mailbag.sync.events import Progress, ProgressCallback
from mailbag.sync.pop3_plan import (
    Download,
    LocalStatus,
    OversizeAction,
    PopPolicy,
    Removal,
    ServerMessage,
    plan_pop_session,
)

if TYPE_CHECKING:
    from mailbag.config.model import Account, PopOptions
    from mailbag.paths import Paths
    from mailbag.protocols.pop3 import Pop3Client
    from mailbag.protocols.trace import Transcript
    from mailbag.store.index import Folder, Store

__all__ = [
    "PopReport",
    "PopWire",
    "header_listing",
    "policy_from_options",
    "pop_disabled_hint",
    "run_pop_session",
    "sync_pop3_account",
]

#: messages per index commit (one fsync round and one COMMIT per batch)
BATCH_MESSAGES = 256
#: ... or this many bytes, whichever comes first
BATCH_BYTES = 32 * 1024 * 1024
#: fsyncs in flight at once when a batch commits
FSYNC_THREADS = 16

Warn = Callable[[str], None]


class PopWire(Protocol):
    """What the engine needs from a logged-in POP3 client (`mailbag.protocols.pop3`)."""

    def capabilities(self) -> frozenset[str]: ...

    def uidl_all(self) -> dict[int, str]:
        """message number -> UIDL; raises ProtocolError when the server has no UIDL."""
        ...

    def list_all(self) -> dict[int, int]:
        """message number -> size in octets."""
        ...

    def top(self, number: int, lines: int) -> bytes: ...

    def retr_into(
        self, numbers: Sequence[int], open_sink: Callable[[int], BinaryIO]
    ) -> Iterator[tuple[int, str | None]]:
        """RETR each number (pipelined when offered), streaming the dot-unstuffed
        message into `open_sink(number)` (called when it starts arriving); yields
        (number, None) once it is complete, or (number, server's -ERR text)."""
        ...

    def dele(self, number: int) -> None: ...

    def quit(self) -> None:
        """QUIT and wait for +OK (the server's commit of DELEs); raises otherwise."""
        ...

    def close(self) -> None: ...


@dataclass
class PopReport:
    """What one session did, for `sync` output."""

    account: str
    new: int = 0
    removed: int = 0
    headers_only: int = 0
    skipped: int = 0
    deferred: int = 0
    bytes: int = 0
    uidl_fallback: bool = False
    warnings: list[str] = field(default_factory=list)

    def folder_summary(self) -> dict[str, object]:
        """The per-folder shape `mailbag sync --json` prints."""
        return {
            "name": "INBOX",
            "new": self.new,
            "updated": 0,
            "deleted": self.removed,
            "uploaded": 0,
        }


# --- the server's listing --------------------------------------------------------------------


def header_listing(headers: Sequence[tuple[int, int, bytes]]) -> list[ServerMessage]:
    """Stand-in UIDLs for servers without UIDL: a hash of each message's header block.

    `headers` is (number, size, TOP n 0 output) in server order. Messages with
    identical headers get an occurrence suffix in server order, so both are
    kept; that suffix can shift when an earlier twin is removed, which is why
    this fallback comes with a warning.
    """
    seen: Counter[str] = Counter()
    out = []
    for number, size, block in headers:
        digest = hashlib.sha256(block).hexdigest()[:40]
        seen[digest] += 1
        out.append(ServerMessage(number, f"hdr-{digest}-{seen[digest]}", size))
    return out


def server_listing(wire: PopWire, warn: Warn) -> tuple[list[ServerMessage], bool]:
    """(listing in server order, whether UIDLs are stand-ins)."""
    sizes = wire.list_all()
    try:
        uidls = wire.uidl_all()
    except ProtocolError:
        if "TOP" not in wire.capabilities() and sizes:
            # without TOP there is nothing stable to tell messages apart by
            raise SyncError(
                "this POP3 server offers neither UIDL nor TOP, so mailbag cannot tell "
                "which messages it already downloaded",
                hint="ask the provider to enable UIDL, or use IMAP if it is offered",
            ) from None
        warn(
            "the POP3 server does not support UIDL; messages are told apart by a hash of "
            "their headers (identical copies may be downloaded again if the server reorders them)"
        )
        blocks = [(n, sizes[n], wire.top(n, 0)) for n in sorted(sizes)]
        return header_listing(blocks), True
    missing = sorted(set(sizes) - set(uidls))
    if missing:
        raise ProtocolError(
            f"the POP3 server listed message {missing[0]} without a UIDL",
            hint="try again later; if it persists the server's index may be damaged",
        )
    return [ServerMessage(n, uidls[n], sizes[n]) for n in sorted(sizes)], False


def reconcile(ledger: PopLedger, listing: Sequence[ServerMessage], now: float) -> None:
    """Settle the ledger against what the server lists now.

    A `dele-sent` row still listed means the QUIT never committed: back to
    `stored`. A held row no longer listed is gone from the server (our DELE
    committed, or another client removed it).
    """
    listed = {m.uidl for m in listing}
    entries = ledger.entries()
    ledger.revert_dele_sent(
        [u for u, e in entries.items() if e.state is LedgerState.DELE_SENT and u in listed], now
    )
    ledger.mark_gone(
        [u for u, e in entries.items() if e.state is not LedgerState.REMOVED and u not in listed],
        now,
    )


def local_status(
    store: Store, folder: Folder, entries: Mapping[str, LedgerEntry]
) -> dict[str, LocalStatus]:
    """What the store positively knows about each held message.

    Present: its row in the INBOX is live, or it was moved to a folder that is not
    the trash. Deleted: its row is a tombstone (`gone`), or it was moved into the
    trash. A message the store has no row for is left out: unknown is not deleted.
    """
    by_key = {m.key: m for m in store.folder_messages(folder)}
    moved: dict[int, tuple[str | None, bool]] = {}
    for other in store.folders(folder.account):
        if other.id == folder.id:
            continue
        for m in store.folder_messages(other):
            if m.moved_from_folder == folder.id and m.moved_from_uid is not None:
                moved[m.moved_from_uid] = (other.role, m.gone)
    out: dict[str, LocalStatus] = {}
    for uidl, entry in entries.items():
        row = by_key.get(entry.local_key or "")
        if row is not None:
            out[uidl] = LocalStatus.DELETED if row.gone else LocalStatus.PRESENT
        elif entry.local_uid is not None and entry.local_uid in moved:
            role, gone = moved[entry.local_uid]
            out[uidl] = LocalStatus.DELETED if gone or role == "trash" else LocalStatus.PRESENT
    return out


def policy_from_options(
    options: PopOptions,
    *,
    oversize: OversizeAction | None = None,
    max_per_session: int | None = None,
    mass_delete_limit: int | None = 100,
) -> PopPolicy:
    """The planner's policy from an account's `[pop]` options (arguments override them)."""
    return PopPolicy(
        leave_on_server=options.leave_on_server,
        delete_after_days=options.delete_after_days,
        delete_when_deleted_here=options.delete_when_deleted_here,
        max_size=options.max_size,
        oversize=oversize or OversizeAction(options.oversize),
        max_per_session=max_per_session if max_per_session is not None else options.max_per_session,
        mass_delete_limit=mass_delete_limit,
    )


# --- one session ------------------------------------------------------------------------------


def run_pop_session(
    wire: PopWire,
    store: Store,
    folder: Folder,
    ledger: PopLedger,
    policy: PopPolicy,
    *,
    clock: Callable[[], float] = time.time,
    force: bool = False,
    progress: ProgressCallback | None = None,
    warn: Warn | None = None,
) -> PopReport:
    """Download and apply the server-copy policy over a logged-in `wire`.

    Ends the session with QUIT (which commits DELEs). The caller closes `wire`
    on errors. `clock` gives epoch seconds (tests pass a controlled one). A
    `MailbagError` raised once the session began carries what it did before (kept:
    every message stored is committed) as `fields["pop_report"]` (`partial_report`).
    """
    report = PopReport(account=folder.account)
    try:
        return _run_session(
            wire, store, folder, ledger, policy, report, clock, force, progress, warn
        )
    except MailbagError as exc:
        exc.fields.setdefault("pop_report", report)
        raise


def partial_report(exc: MailbagError) -> PopReport | None:
    """What a POP3 session that failed with `exc` did before (`run_pop_session`)."""
    report = exc.fields.get("pop_report")
    return report if isinstance(report, PopReport) else None


def _run_session(
    wire: PopWire,
    store: Store,
    folder: Folder,
    ledger: PopLedger,
    policy: PopPolicy,
    report: PopReport,
    clock: Callable[[], float],
    force: bool,
    progress: ProgressCallback | None,
    warn: Warn | None,
) -> PopReport:

    def _warn(text: str) -> None:
        report.warnings.append(text)
        if warn is not None:
            warn(text)

    store.recover(folder)
    listing, report.uidl_fallback = server_listing(wire, _warn)
    reconcile(ledger, listing, clock())
    entries = ledger.entries()
    local = local_status(store, folder, entries) if policy.delete_when_deleted_here else {}
    plan = plan_pop_session(entries, listing, local, policy, clock(), force=force)
    report.skipped = len(plan.skipped)
    report.deferred = len(plan.deferred)
    if plan.ambiguous:
        _warn(
            f"the server lists {len(plan.ambiguous)} UIDL(s) more than once; such messages are "
            "downloaded once and never removed from the server"
        )

    if progress is not None:
        progress(Progress(folder.account, folder.name, "plan", len(plan.to_download)))
    stored = _download(
        wire, store, folder, ledger, plan.to_download, clock, report, progress, _warn
    )

    removals = list(plan.to_delete)
    removals += [Removal(d.number, d.uidl, "downloaded") for d in stored if d.remove_after]
    if removals:
        uidls = [r.uidl for r in removals]
        # recorded before DELE goes out: a crash from here on leaves rows that the
        # next listing settles (still listed -> stored again; gone -> removed)
        ledger.mark_dele_sent(uidls, clock())
        for r in removals:
            wire.dele(r.number)
    wire.quit()
    if removals:
        ledger.mark_removed([r.uidl for r in removals], clock())
        report.removed = len(removals)
    store.update_folder(folder, last_sync=clock(), messages=len(listing))
    store.commit()
    if progress is not None:
        progress(Progress(folder.account, folder.name, "folder-done"))
    return report


def _next_local_uid(store: Store, folder: Folder) -> int:
    # POP3 has no IMAP UID; the index row gets a folder-unique number so that
    # deleting it here leaves a tombstone (the evidence "remove when deleted here" needs)
    return 1 + max((m.uid or 0 for m in store.folder_messages(folder)), default=0)


def _download(
    wire: PopWire,
    store: Store,
    folder: Folder,
    ledger: PopLedger,
    downloads: Sequence[Download],
    clock: Callable[[], float],
    report: PopReport,
    progress: ProgressCallback | None,
    warn: Warn,
) -> list[Download]:
    """Fetch `downloads` in server order; returns those committed to the store."""
    if not downloads:
        return []
    maildir = store.maildir(folder)
    maildir.create()
    next_uid = _next_local_uid(store, folder)
    by_number = {d.number: d for d in downloads}
    open_files: dict[int, tuple[str, BinaryIO]] = {}
    pending: list[Download] = []
    pending_files: list[Path] = []
    committed: list[Download] = []
    pending_bytes = 0

    def open_sink(number: int) -> BinaryIO:
        key, fh = maildir.open_tmp()
        open_files[number] = (key, fh)
        return fh

    def finish(number: int) -> None:
        nonlocal next_uid, pending_bytes
        key, fh = open_files.pop(number)
        size = fh.tell()
        fh.close()
        d = by_number[number]
        store.add_message(folder, key, uid=next_uid, synced=True, size=size, commit=False)
        ledger.record_stored(
            d.uidl,
            size=d.size,
            local_key=key,
            local_uid=next_uid,
            stored_at=clock(),
            headers_only=d.headers_only,
        )
        next_uid += 1
        pending.append(d)
        pending_files.append(maildir.tmp_path(key))
        pending_bytes += size
        report.bytes += size
        if len(pending) >= BATCH_MESSAGES or pending_bytes >= BATCH_BYTES:
            flush()
        if progress is not None:
            progress(Progress(folder.account, folder.name, "message", 1, size))

    def flush() -> None:
        nonlocal pending_bytes
        # the store's own commit order (fsync files, COMMIT, rename, fsync dirs), with
        # the file fsyncs run side by side: the file system merges them into a few
        # journal commits, ~5x faster than one after another for a batch
        fsync_files(pending_files)
        pending_files.clear()
        # (and their names in tmp/: the index must not record a file a power loss can
        # take back, and the ledger would then never download it again)
        store.note_dir_changes(maildir.root / "tmp")
        store.commit(fsync=False)
        fsync_dir(maildir.root / "new")
        committed.extend(pending)
        report.new += sum(1 for d in pending if not d.headers_only)
        report.headers_only += sum(1 for d in pending if d.headers_only)
        pending.clear()
        pending_bytes = 0

    full = [d.number for d in downloads if not d.headers_only]
    heads = [d.number for d in downloads if d.headers_only]
    try:
        for number, error in wire.retr_into(full, open_sink):
            if error is None:
                finish(number)
            else:
                # listed a moment ago, refused now (another client took it?): it is
                # simply not stored; the next listing tells what became of it
                warn(f"the server refused message {number}: {error}")
        for number in heads:
            fh = open_sink(number)
            fh.write(wire.top(number, 0))
            finish(number)
    except (NetworkError, ProtocolError):
        # the line failed: what arrived complete is worth keeping, the partial
        # message is dropped, and the rest comes next session
        _discard_partial(maildir, open_files)
        try:
            flush()
        except (MailbagError, OSError):
            store.rollback()
        raise
    except BaseException:
        # storing failed (disk full, index trouble, interrupted): keep nothing of
        # this batch, so no index row can ever exist without its ledger row
        _discard_partial(maildir, open_files)
        store.rollback()
        raise
    flush()
    return committed


def fsync_files(paths: Sequence[Path]) -> None:
    """fsync every file in `paths`, several at a time."""
    if len(paths) < 4:
        for path in paths:
            fsync_file(path)
        return
    with ThreadPoolExecutor(max_workers=FSYNC_THREADS) as pool:
        # list(): re-raise the first OSError here, after all have run
        list(pool.map(fsync_file, paths))


def _discard_partial(maildir: Maildir, open_files: dict[int, tuple[str, BinaryIO]]) -> None:
    for key, fh in open_files.values():
        fh.close()
        with suppress(FileNotFoundError):
            maildir.tmp_path(key).unlink()
    open_files.clear()


# --- "POP is turned off at this provider" -------------------------------------------------------

_POP_SETTINGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("gmail.com", "googlemail.com", "google.com"),
        "turn POP on in Gmail: Settings > See all settings > Forwarding and POP/IMAP > "
        "POP download > Enable POP, then Save Changes",
    ),
    (
        ("outlook.com", "office365.com", "hotmail.com", "live.com"),
        "turn POP on in Outlook.com: Settings > Mail > Forwarding and IMAP > POP options > "
        "'Let devices and apps use POP' = Yes, then Save",
    ),
    (
        ("gmx.net", "gmx.com", "gmx.de", "web.de"),
        "turn POP3 on in the web mailer: Settings > POP3 & IMAP > allow access via "
        "POP3 and IMAP, then Save",
    ),
)


def pop_disabled_hint(host: str) -> str:
    """Where to turn POP on, for providers known to ship it off; a general hint otherwise."""
    host = host.lower().rstrip(".")
    for domains, text in _POP_SETTINGS:
        if any(host == d or host.endswith("." + d) for d in domains):
            return f"POP may be turned off for your account: {text}"
    return (
        "POP may be turned off for your account or at this server: look for POP in your "
        "provider's mail settings and turn it on, and check the port (995 SSL/TLS, "
        "110 STARTTLS); `mailbag account test` shows each step"
    )


def explain_pop_unavailable(exc: MailbagError, host: str, port: int) -> MailbagError:
    """Turn "connection refused" or a login refusal that names POP into the provider's advice."""
    if isinstance(exc, NetworkError) and exc.fields.get("cause") == "refused":
        return NetworkError(
            f"POP3 is not available at {host}:{port}: the connection was refused",
            hint=pop_disabled_hint(host),
            host=host,
            port=port,
            cause="pop-disabled",
        )
    if isinstance(exc, AuthError):
        text = f"{exc.message} {exc.fields.get('reply', '')}".lower()
        if "pop" in text and any(w in text for w in ("disabled", "not enabled", "turned off")):
            return AuthError(
                f"the server refused POP3 access: {exc.message}",
                hint=pop_disabled_hint(host),
                host=host,
                port=port,
                cause="pop-disabled",
            )
    return exc


# --- one account, end to end -------------------------------------------------------------------

Connect = Callable[["Account", str, "Transcript"], PopWire]


def sync_pop3_account(
    account: Account,
    paths: Paths,
    *,
    password: str | None = None,
    connect: Connect | None = None,
    transcript: Transcript | None = None,
    clock: Callable[[], float] = time.time,
    force: bool = False,
    oversize: OversizeAction | None = None,
    max_per_session: int | None = None,
    progress: ProgressCallback | None = None,
    warn: Warn | None = None,
    lock_wait: float = 0.0,
) -> PopReport:
    """Download a POP3 account's new mail into its local INBOX and apply its server-copy policy.

    `password` defaults to the account's stored secret; `connect` (for tests)
    replaces the network client. Errors are `MailbagError`s with hints; "POP is
    turned off at the provider" is recognised and explained. Holds the account's
    sync lock (the one `mailbag sync` uses), waiting up to `lock_wait` seconds.
    """
    from mailbag.sync.lock import sync_lock

    with sync_lock(paths, account.name, lock_wait):
        return _sync_locked(
            account,
            paths,
            password=password,
            connect=connect,
            transcript=transcript,
            clock=clock,
            force=force,
            oversize=oversize,
            max_per_session=max_per_session,
            progress=progress,
            warn=warn,
        )


def _sync_locked(
    account: Account,
    paths: Paths,
    *,
    password: str | None,
    connect: Connect | None,
    transcript: Transcript | None,
    clock: Callable[[], float],
    force: bool,
    oversize: OversizeAction | None,
    max_per_session: int | None,
    progress: ProgressCallback | None,
    warn: Warn | None,
) -> PopReport:
    from mailbag.config.model import Protocol as AccountProtocol
    from mailbag.store.index import Store
    from mailbag.store.pop_ledger import server_key

    if account.protocol is not AccountProtocol.POP3:
        raise SyncError(f"account {account.name!r} is not a POP3 account")
    if password is None:
        from mailbag.config.model import AuthMethod
        from mailbag.config.secrets import get_secret

        # OAuth2 accounts log in with access tokens (mailbag.auth), not a stored secret
        oauth2 = account.incoming.auth is AuthMethod.OAUTH2
        password = "" if oauth2 else get_secret(account, "incoming")
    if transcript is None:
        from mailbag.protocols.trace import NO_TRACE

        transcript = NO_TRACE
    opener = connect or open_pop3
    server = account.incoming
    policy = policy_from_options(
        account.pop,
        oversize=oversize,
        max_per_session=max_per_session,
        mass_delete_limit=account.sync.mass_delete_threshold,
    )
    with Store.open(paths) as store:
        folder = store.folder(account.name, "INBOX", role="inbox")
        # POP3 has only an INBOX on the server; a local Trash lets `mailbag delete`
        # work as in any mail client (and is the evidence "deleted here" looks for)
        store.folder(account.name, "Trash", role="trash")
        store.commit()
        ledger = PopLedger(store.conn, account.name, server_key(server.username, server.host))
        try:
            wire = opener(account, password, transcript)
        except (NetworkError, AuthError) as exc:
            raise explain_pop_unavailable(exc, server.host, server.port) from exc
        try:
            return run_pop_session(
                wire,
                store,
                folder,
                ledger,
                policy,
                clock=clock,
                force=force,
                progress=progress,
                warn=warn,
            )
        finally:
            wire.close()


#: RETRs in flight at once when the server offers PIPELINING
RETR_WINDOW = 32


def open_pop3(account: Account, password: str, transcript: Transcript) -> PopWire:
    """Connect, secure (TLS or STLS, verified), log in; the client seen through `PopWire`."""
    from mailbag.auth.login import login_pop3
    from mailbag.config.model import AuthMethod
    from mailbag.protocols.pop3 import Pop3Client
    from mailbag.protocols.transport import Security

    server = account.incoming
    client = Pop3Client.open(server.endpoint(account.ca_file), None, None, transcript)
    try:
        plaintext = server.security is Security.NONE and server.auth is not AuthMethod.OAUTH2
        if plaintext and client.apop_timestamp is not None:
            # without TLS (only with --insecure), APOP at least keeps the password itself
            # off the wire; with TLS, SASL PLAIN or USER/PASS is the safer choice
            client.apop(server.username, password)
        else:
            # the login every command shares: password, or OAuth2 token (refreshed as
            # needed, one retry when the server refuses it)
            login_pop3(client, account, secret=password)
    except BaseException:
        client.close()
        raise
    return _ClientWire(client)


class _ClientWire:
    """`mailbag.protocols.pop3.Pop3Client` as the engine's `PopWire`."""

    def __init__(self, client: Pop3Client) -> None:
        self.client = client

    def capabilities(self) -> frozenset[str]:
        return frozenset(self.client.capabilities)

    def uidl_all(self) -> dict[int, str]:
        return self.client.uidl()

    def list_all(self) -> dict[int, int]:
        return self.client.list_all()

    def top(self, number: int, lines: int) -> bytes:
        data = self.client.top(number, lines)
        assert isinstance(data, bytes)
        return data

    def retr_into(
        self, numbers: Sequence[int], open_sink: Callable[[int], BinaryIO]
    ) -> Iterator[tuple[int, str | None]]:
        for result in self.client.retr_many(numbers, open_sink, window=RETR_WINDOW):
            yield result.msgnum, result.error

    def dele(self, number: int) -> None:
        self.client.dele(number)

    def quit(self) -> None:
        if not self.client.quit():
            raise NetworkError(
                f"{self.client.endpoint.host} did not acknowledge QUIT, so it removed nothing",
                hint="the removals are retried at the next sync",
                host=self.client.endpoint.host,
                cause="dropped",
            )

    def close(self) -> None:
        self.client.close()
