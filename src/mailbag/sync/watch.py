"""Push mail: IMAP IDLE on an account's INBOX, a sync when the server says
something changed, and the new messages handed to a callback.

Used by `mailbag watch` and the interactive client. One thread per account;
`stop` ends it within `wake_every` seconds. IDLE is re-issued well before the
server's ~30-minute cut-off; a dropped connection is reopened with backoff;
servers without IDLE are polled. It never prints; what happens goes to the
callbacks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailbag.config.model import Account, AuthMethod
from mailbag.errors import MailbagError, NetworkError
from mailbag.paths import Paths
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.store.index import Message, Store

INBOX = "INBOX"


@dataclass(frozen=True)
class WatchOptions:
    idle_seconds: float = 20 * 60  # re-issue IDLE this often (servers cut at ~30 minutes)
    wake_every: float = 5.0  # how soon `stop` is noticed
    poll_seconds: float = 120.0  # servers without IDLE
    max_backoff: float = 300.0


def _sync_inbox(account: Account, paths: Paths, transcript: Transcript) -> list[Message]:
    """Sync INBOX and return what it brought in."""
    from mailbag.config.secrets import get_secret
    from mailbag.sync.imap import SyncOptions, sync_account

    with Store.open(paths) as store:
        mark = store.newest_id()
    if account.incoming.auth is AuthMethod.OAUTH2:
        from mailbag.auth.tokens import get_access_token

        secret = get_access_token(account, paths=paths)
    else:
        secret = get_secret(account, "incoming")
    report = sync_account(
        account,
        secret,
        paths,
        options=SyncOptions(folders=(INBOX,), lock_wait=60.0),
        transcript=transcript,
    )
    if report.error:
        raise NetworkError(report.error, hint=report.hint)
    with Store.open(paths) as store:
        return store.added_since(mark, account=account.name, folder=INBOX)


def _open_idle_client(account: Account, paths: Paths, transcript: Transcript) -> object:
    from mailbag.auth.login import login_imap
    from mailbag.protocols.imap.client import ImapClient

    endpoint = account.incoming.endpoint(account.ca_file)
    client = ImapClient(endpoint, transcript)
    try:
        client.connect()
        if endpoint.security.value == "starttls":
            client.starttls()
        login_imap(client, account, paths=paths)
        client.select(INBOX)
    except BaseException:
        client.close()
        raise
    return client


def watch_account(
    account: Account,
    paths: Paths,
    *,
    on_new: Callable[[list[Message]], None],
    on_error: Callable[[MailbagError], None] = lambda exc: None,
    stop: threading.Event,
    options: WatchOptions | None = None,
    transcript: Transcript = NO_TRACE,
) -> None:
    """Run until `stop` is set: report new INBOX mail of an IMAP account as it arrives."""
    from mailbag.protocols.imap.client import ImapClient

    options = options or WatchOptions()
    backoff = 1.0
    first = True
    while not stop.is_set():
        client: ImapClient | None = None
        try:
            # catch up first (also after every reconnect), then wait for news
            new = _sync_inbox(account, paths, transcript)
            if new and not first:
                on_new(new)
            first = False
            opened = _open_idle_client(account, paths, transcript)
            assert isinstance(opened, ImapClient)
            client = opened
            if "IDLE" not in client.capabilities:
                client.logout()
                client = None
                stop.wait(options.poll_seconds)
                continue
            backoff = 1.0
            started = time.monotonic()
            while not stop.is_set():
                changed = client.idle(options.wake_every)
                if any(u.name in ("EXISTS", "FETCH", "EXPUNGE", "VANISHED") for u in changed):
                    new = _sync_inbox(account, paths, transcript)
                    if new:
                        on_new(new)
                if time.monotonic() - started > options.idle_seconds:
                    break  # a fresh IDLE before the server's inactivity cut-off
        except MailbagError as exc:
            on_error(exc)
            stop.wait(backoff)
            backoff = min(backoff * 2, options.max_backoff)
        finally:
            if client is not None:
                try:
                    client.logout()
                except MailbagError:
                    client.close()
