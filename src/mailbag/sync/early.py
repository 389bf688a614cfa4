"""The first IMAP connection of `mailbag sync`, logged in by a background thread while the
sync engine loads.

`mailbag sync` starts opening its first account's connection (TCP and TLS,
`transport.open_early`) and running its password command (`cli.cmd_sync`) before it
loads the engine (~30 ms of imports). With `login_early` a thread also reads the
greeting and logs in on that connection as soon as the password is there, so the
server checks it (Dovecot: ~5-10 ms, its auth process asked) while the engine still
loads, instead of after. The sync's pool takes that connection for its first one
(`claim`): what went wrong there (refused, a TLS failure, a wrong password) is raised
where it takes it, as if it had connected and logged in then itself: the same calls
in the same order (`ImapClient.connect`, `starttls`, `auth.login.login_imap`), only
earlier, so the same errors, messages and exit codes. For an account logging in with
a password, from a command or the keyring (`cli.cmd_sync._EarlySecret` reads it first);
not OAuth2, whose token may need a refresh over HTTP.

Loaded by `cmd_sync` before the engine: imports only what the thread needs, in it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mailbag.errors import MailbagError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mailbag.config.model import Account
    from mailbag.protocols.imap.client import ImapClient
    from mailbag.protocols.imap.parser import MailboxInfo, MailboxStatus
    from mailbag.protocols.trace import Transcript

    Listing = list[tuple[MailboxInfo, MailboxStatus | None]]

__all__ = ["claim", "claim_ready", "discard", "hand_back", "login_early", "take_listed"]

#: a logged-in connection older than this when claimed is closed and a fresh one opened
#: (as `transport.EARLY_MAX_AGE` for one that is only open)
EARLY_MAX_AGE = 10.0


class _EarlyLogin:
    """One account's connection being logged in by a background thread."""

    def __init__(
        self, account: Account, password: Callable[[], str], transcript: Transcript
    ) -> None:
        self.account = account
        self.password = password
        self.transcript = transcript
        self.started = time.monotonic()
        self.done = threading.Event()
        self.client: ImapClient | None = None
        self.error: MailbagError | OSError | None = None
        self.discarded = False
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            self._login()
        finally:
            self.done.set()

    def _login(self) -> None:
        try:
            password = self.password()
        except BaseException:  # noqa: BLE001 - the caller reads the secret too, and reports
            return
        from mailbag.auth.login import login_imap
        from mailbag.protocols.imap.client import ImapClient
        from mailbag.protocols.transport import Security

        endpoint = self.account.incoming.endpoint(self.account.ca_file)
        client = ImapClient(endpoint, self.transcript)
        try:
            client.connect()  # (on the connection `transport.open_early` opened)
            if endpoint.security is Security.STARTTLS:
                client.starttls()
            login_imap(client, self.account, secret=password)
        except (MailbagError, OSError) as exc:  # raised where the connection is taken
            client.close()
            self.error = exc
            return
        except BaseException:
            client.close()
            raise
        with self._lock:
            if self.discarded:
                client.close()
            else:
                self.client = client

    def take(self) -> ImapClient | None:
        """The logged-in connection (waiting for it), or its error raised here; None
        when there is none (the password could not be read, or it is too old): the
        caller connects itself."""
        self.done.wait()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        with self._lock:
            client, self.client = self.client, None
        if client is not None and time.monotonic() - self.started > EARLY_MAX_AGE:
            client.close()
            return None
        return client

    def ready(self) -> ImapClient | None:
        """The logged-in connection (waiting for it) when logging in went well and it is
        not too old; else None, and what went wrong stays for `take` to raise."""
        self.done.wait()
        if self.error is not None or time.monotonic() - self.started > EARLY_MAX_AGE:
            return None
        with self._lock:
            client, self.client = self.client, None
        return client

    def discard(self) -> None:
        with self._lock:
            self.discarded = True
            client, self.client = self.client, None
        if client is not None:
            client.close()


_early: dict[str, _EarlyLogin] = {}
_early_lock = threading.Lock()


def login_early(account: Account, password: Callable[[], str], transcript: Transcript) -> None:
    """Start logging in to the account's IMAP server in a background thread, with the
    password `password()` gives (it may wait for a password command); the sync's pool
    takes the connection (`claim`). For an IMAP account that logs in with a password."""
    with _early_lock:
        if account.name in _early:
            return
        early = _early[account.name] = _EarlyLogin(account, password, transcript)
    threading.Thread(target=early.run, name="mailbag-login", daemon=True).start()


def claim(account: Account) -> ImapClient | None:
    """The connection `login_early` logged in for this account (once), or what went
    wrong logging in, raised here; None when there is none."""
    if not _early:  # the usual case, without taking the lock
        return None
    with _early_lock:
        early = _early.get(account.name)
        if early is None or early.account != account:
            return None
        del _early[account.name]
    return early.take()


def claim_ready(account: Account) -> ImapClient | None:
    """The connection `login_early` logged in for this account (waiting for it), only
    when that went well; otherwise None, and `claim` (the engine's) raises what went
    wrong, as always (`sync.quick`, which then leaves the sync to the engine)."""
    with _early_lock:
        early = _early.get(account.name)
        if early is None or early.account != account:
            return None
    client = early.ready()
    if client is not None:
        with _early_lock:
            _early.pop(account.name, None)
    return client


#: account name -> (account, a logged-in connection, the folder listing read on it), left
#: by `sync.quick` for the engine (`take_listed`)
_listed: dict[str, tuple[Account, ImapClient, Listing]] = {}


def hand_back(account: Account, client: ImapClient, listing: Listing) -> None:
    """Leave a logged-in connection, on which `listing` (its folders and their STATUS)
    was just read, for the engine's first use (`take_listed`)."""
    with _early_lock:
        _listed[account.name] = (account, client, listing)


def take_listed(account: Account) -> tuple[ImapClient, Listing] | None:
    """The connection and listing `hand_back` left for this account (once), else None."""
    if not _listed:  # the usual case, without taking the lock
        return None
    with _early_lock:
        left = _listed.pop(account.name, None)
    if left is None:
        return None
    if left[0] != account:
        left[1].close()
        return None
    return left[1], left[2]


def discard() -> None:
    """Close the logged-in connections nobody took (one still logging in closes when
    done)."""
    with _early_lock:
        pending = list(_early.values())
        _early.clear()
        listed = [c for _, c, _ in _listed.values()]
        _listed.clear()
    for early in pending:
        early.discard()
    for client in listed:
        client.close()
