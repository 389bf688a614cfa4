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
earlier, so the same errors, messages and exit codes. Only for an account logging in
with a password from a command: a keyring is asked where it always was (see
`config.keyring_backend`), and an OAuth2 token may need a refresh over HTTP.

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
    from mailbag.protocols.trace import Transcript

__all__ = ["claim", "discard", "login_early"]

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


def discard() -> None:
    """Close the logged-in connections nobody took (one still logging in closes when
    done)."""
    with _early_lock:
        pending = list(_early.values())
        _early.clear()
    for early in pending:
        early.discard()
