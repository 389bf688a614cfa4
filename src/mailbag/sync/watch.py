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
from mailbag.errors import AuthError, MailbagError, NetworkError
from mailbag.paths import Paths
from mailbag.protocols.imap.client import ImapClient
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.store.index import Message, Store

INBOX = "INBOX"


@dataclass(frozen=True)
class WatchOptions:
    idle_seconds: float = 20 * 60  # re-issue IDLE this often (servers cut at ~30 minutes)
    wake_every: float = 5.0  # how soon `stop` is noticed
    poll_seconds: float = 120.0  # servers without IDLE
    max_backoff: float = 300.0


def _sync_inbox(account: Account, paths: Paths, transcript: Transcript) -> None:
    from mailbag.config.secrets import get_secret
    from mailbag.sync.imap import SyncOptions, sync_account

    # OAuth2: the sync's connections sign in through mailbag.auth (token refreshed as
    # needed, one retry on refusal), so there is no password to hand over
    secret = "" if account.incoming.auth is AuthMethod.OAUTH2 else get_secret(account, "incoming")
    report = sync_account(
        account,
        secret,
        paths,
        options=SyncOptions(folders=(INBOX,), lock_wait=60.0),
        transcript=transcript,
    )
    if report.error:
        raise NetworkError(report.error, hint=report.hint)


class _NewMail:
    """What counts as new: server UIDs from the INBOX's UIDNEXT when the watch began
    (so neither the initial download nor a race with another sync is reported, and
    nothing that arrives after the start is missed), each message reported once."""

    def __init__(self) -> None:
        self.uidvalidity: int | None = None
        self.next_uid: int | None = None

    def baseline(self, uidvalidity: int | None, uidnext: int | None) -> None:
        if uidvalidity != self.uidvalidity or self.next_uid is None:
            # first connection, or the server renumbered the folder: start afresh
            self.uidvalidity, self.next_uid = uidvalidity, uidnext or 1

    def collect(self, account: Account, paths: Paths) -> list[Message]:
        assert self.next_uid is not None
        with Store.open(paths) as store:
            new = store.messages_from_uid(account.name, INBOX, self.next_uid)
        if new:
            self.next_uid = max(m.uid or 0 for m in new) + 1
        return new


def _open_idle_client(
    account: Account, paths: Paths, transcript: Transcript, seen: _NewMail
) -> ImapClient:
    from mailbag.auth.login import open_imap

    client = open_imap(account, paths=paths, transcript=transcript)
    try:
        selected = client.select(INBOX)
    except BaseException:
        client.close()
        raise
    seen.baseline(selected.uidvalidity, selected.uidnext)
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
    """Run until `stop` is set: report new INBOX mail of an IMAP account as it arrives.

    Errors go to `on_error` and are retried with backoff, except an OAuth2 sign-in
    that ended (revoked or expired): that is reported once and the watch returns."""

    options = options or WatchOptions()
    seen = _NewMail()
    backoff = 1.0
    while not stop.is_set():
        client: ImapClient | None = None
        try:
            # SELECT first, then catch up: whatever arrives after the SELECT is
            # announced to this session, so nothing falls between the two
            client = _open_idle_client(account, paths, transcript, seen)
            _sync_inbox(account, paths, transcript)
            if new := seen.collect(account, paths):
                on_new(new)
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
                    _sync_inbox(account, paths, transcript)
                    if new := seen.collect(account, paths):
                        on_new(new)
                if time.monotonic() - started > options.idle_seconds:
                    break  # a fresh IDLE before the server's inactivity cut-off
        except MailbagError as exc:
            on_error(exc)
            if isinstance(exc, AuthError) and exc.fields.get("cause") == "reauth":
                return  # the sign-in ended: retrying cannot help, only `account login` can
            stop.wait(backoff)
            backoff = min(backoff * 2, options.max_backoff)
        finally:
            if client is not None:
                try:
                    client.logout()
                except MailbagError:
                    client.close()
