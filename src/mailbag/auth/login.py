"""Authenticate a connected protocol client for an account: password or OAuth2.

Every place that opens an IMAP, POP3 or SMTP session logs in here: either it
connects itself and calls `login_imap` / `login_pop3` / `login_smtp` after
STARTTLS (the sync pool, the account test, which time each step), or it lets
`open_imap` / `open_pop3` / `open_smtp` connect, secure and log in at once (watch,
submission, the Sent copy). So the choice between PLAIN/LOGIN and
OAUTHBEARER/XOAUTH2, token refresh and the one retry after a refused token live
in a single place. All take `secret=` when the caller already has the password.

The core, `sasl_token_login`, is protocol-neutral: it gets the mechanisms the
server offers and a callable that runs one SASL exchange.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from mailbag.config.model import Account, AuthMethod, Server
from mailbag.errors import AuthError
from mailbag.paths import Paths
from mailbag.protocols import sasl
from mailbag.protocols.trace import NO_TRACE, Transcript

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, TypeVar

    from mailbag.protocols.imap.client import ImapClient
    from mailbag.protocols.pop3 import Pop3Client
    from mailbag.protocols.smtp import SmtpClient
    from mailbag.protocols.stream import StreamClient

    Which = Literal["incoming", "smtp"]
    _Client = TypeVar("_Client", bound="StreamClient")

__all__ = [
    "login_imap",
    "login_pop3",
    "login_smtp",
    "open_imap",
    "open_pop3",
    "open_smtp",
    "sasl_token_login",
    "token_responses",
]

#: seconds a connection may wait for the server (as `Server.endpoint` defaults)
DEFAULT_TIMEOUT = 30.0

#: runs AUTHENTICATE/AUTH with `mechanism` and the client responses, in order
Authenticate = Callable[[str, list[bytes]], None]


def token_responses(
    mechanism: sasl.Mechanism, username: str, token: str, host: str, port: int
) -> list[bytes]:
    """The client's SASL responses: the initial one, then the answer to an error
    challenge (RFC 7628 3.2.3 says %x01 for OAUTHBEARER; XOAUTH2 wants an empty line)."""
    if mechanism is sasl.Mechanism.OAUTHBEARER:
        return [sasl.oauthbearer(username, token, host, port), b"\x01"]
    return [sasl.xoauth2(username, token), b""]


def sasl_token_login(
    account: Account,
    server: Server,
    offered: Iterable[str],
    authenticate: Authenticate,
    *,
    paths: Paths | None = None,
    env: Mapping[str, str] | None = None,
) -> sasl.Mechanism:
    """OAUTHBEARER (or XOAUTH2) with the account's access token; on refusal,
    refresh the token once and try again. Returns the mechanism used."""
    # loaded here, not at the top: password logins never need the token machinery
    from mailbag.auth.tokens import get_access_token, invalidate

    offered_set = {m.upper() for m in offered}
    mechanism = sasl.choose(offered_set, sasl.TOKEN_MECHANISMS)
    if mechanism is None:
        raise AuthError(
            f"{server.host}:{server.port} offers no OAuth2 login (XOAUTH2 or OAUTHBEARER); "
            f"it offers: {', '.join(sorted(offered_set)) or 'no SASL mechanisms'}",
            hint=f"this server needs a password: mailbag account set-password {account.name} "
            '(and set auth = "password" for it in config.toml)',
            host=server.host,
            cause="auth-mechanism",
        )
    token = get_access_token(account, paths=paths, env=env)
    try:
        authenticate(
            mechanism.value,
            token_responses(mechanism, server.username, token, server.host, server.port),
        )
        return mechanism
    except AuthError:
        # the token may have been revoked or expired early: one fresh token, one retry
        invalidate(account, token)
    token = get_access_token(account, force_refresh=True, paths=paths, env=env)
    try:
        authenticate(
            mechanism.value,
            token_responses(mechanism, server.username, token, server.host, server.port),
        )
    except AuthError as exc:
        invalidate(account, token)
        raise AuthError(
            f"{server.host} refused a freshly issued OAuth2 token for {server.username}: "
            f"{exc.message}",
            hint="check that IMAP/POP/SMTP access is enabled for this mailbox at the provider "
            "and that the sign-in was made with this address; then: "
            f"mailbag account login {account.name}",
            host=server.host,
            cause="token-refused",
        ) from exc
    return mechanism


def _password(account: Account, which: Which, secret: str | None) -> str:
    if secret is not None:
        return secret
    from mailbag.config.secrets import get_secret

    return get_secret(account, which)


def _imap_mechanisms(client: Any) -> set[str]:
    return {c[5:] for c in client.capabilities if c.upper().startswith("AUTH=")}


def login_imap(
    client: Any, account: Account, *, paths: Paths | None = None, secret: str | None = None
) -> str:
    """Log a connected `ImapClient` in as the account says (password or OAuth2).

    `secret`: the password when the caller has it already (a sync opening several
    connections asks the keyring or password_command once; the account test before
    saving); read here otherwise. OAuth2 ignores it. Returns how it logged in, e.g.
    "AUTHENTICATE OAUTHBEARER"."""
    server = account.incoming
    if server.auth is AuthMethod.OAUTH2:
        mech = sasl_token_login(
            account,
            server,
            _imap_mechanisms(client),
            lambda mech, responses: client.authenticate(mech, responses),
            paths=paths,
        )
        return f"AUTHENTICATE {mech.value}"
    plain = "PLAIN" in _imap_mechanisms(client)
    client.login_sasl(server.username, _password(account, "incoming", secret))
    return "AUTHENTICATE PLAIN" if plain else "LOGIN"


def login_pop3(
    client: Any, account: Account, *, paths: Paths | None = None, secret: str | None = None
) -> str:
    """Log a connected `Pop3Client` in (AUTH with SASL for OAuth2, else its password login).
    Returns how, e.g. "AUTH XOAUTH2" or "USER/PASS"."""
    server = account.incoming
    offered = {m.upper() for m in client.capabilities.get("SASL", [])}
    if server.auth is AuthMethod.OAUTH2:
        mech = sasl_token_login(
            account,
            server,
            offered,
            lambda mech, responses: client.authenticate(mech, responses),
            paths=paths,
        )
        return f"AUTH {mech.value}"
    client.login(server.username, _password(account, "incoming", secret))
    return "AUTH PLAIN" if "PLAIN" in offered else "USER/PASS"


def login_smtp(
    client: Any, account: Account, *, paths: Paths | None = None, secret: str | None = None
) -> str:
    """Authenticate a connected `SmtpClient` (after EHLO/STARTTLS) as the account says.
    Returns how, e.g. "AUTH PLAIN"; "" when the account's SMTP server needs no login."""
    server = account.smtp
    if not account.smtp.requires_auth:
        return ""
    if server.auth is AuthMethod.OAUTH2:
        mech = sasl_token_login(
            account,
            server,
            client.auth_mechanisms,
            lambda mech, responses: client.authenticate(mech, responses),
            paths=paths,
        )
        return f"AUTH {mech.value}"
    client.login(server.username, _password(account, "smtp", secret))
    used = sasl.choose(client.auth_mechanisms, sasl.PASSWORD_MECHANISMS)
    return f"AUTH {used.value}" if used is not None else "AUTH"


# --- connect and log in: the one path every command takes ------------------------------


def _opened(client: _Client, login: Callable[[], object]) -> _Client:
    try:
        login()
    except BaseException:
        client.close()
        raise
    return client


def open_imap(
    account: Account,
    *,
    paths: Paths | None = None,
    secret: str | None = None,
    transcript: Transcript = NO_TRACE,
    timeout: float = DEFAULT_TIMEOUT,
) -> ImapClient:
    """Connect to the account's IMAP server (TLS, or STARTTLS as configured, always
    verified) and log in as the account says; the connection is closed on failure."""
    from mailbag.protocols.imap.client import ImapClient

    server = account.incoming
    client = ImapClient.open(server.endpoint(account.ca_file, timeout), None, None, transcript)
    return _opened(client, lambda: login_imap(client, account, paths=paths, secret=secret))


def open_pop3(
    account: Account,
    *,
    paths: Paths | None = None,
    secret: str | None = None,
    transcript: Transcript = NO_TRACE,
    timeout: float = DEFAULT_TIMEOUT,
) -> Pop3Client:
    """`open_imap` for a POP3 account."""
    from mailbag.protocols.pop3 import Pop3Client

    server = account.incoming
    client = Pop3Client.open(server.endpoint(account.ca_file, timeout), None, None, transcript)
    return _opened(client, lambda: login_pop3(client, account, paths=paths, secret=secret))


def open_smtp(
    account: Account,
    *,
    paths: Paths | None = None,
    secret: str | None = None,
    transcript: Transcript = NO_TRACE,
    timeout: float = DEFAULT_TIMEOUT,
) -> SmtpClient:
    """Connect to the account's submission server (EHLO, STARTTLS as configured) and
    log in when it needs that."""
    from mailbag.protocols.smtp import SmtpClient

    server = account.smtp
    client = SmtpClient.open(server.endpoint(account.ca_file, timeout), None, None, transcript)
    return _opened(client, lambda: login_smtp(client, account, paths=paths, secret=secret))
