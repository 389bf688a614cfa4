"""Authenticate a connected protocol client for an account: password or OAuth2.

Every place that opens an IMAP, POP3 or SMTP session calls one function here
(`login_imap`, `login_pop3`, `login_smtp`) after connecting and after STARTTLS,
so the choice between PLAIN/LOGIN and OAUTHBEARER/XOAUTH2, token refresh and
the one retry after a refused token live in a single place.

The core, `sasl_token_login`, is protocol-neutral: it gets the mechanisms the
server offers and a callable that runs one SASL exchange.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from mailbag.config.model import Account, AuthMethod, Server
from mailbag.errors import AuthError
from mailbag.paths import Paths
from mailbag.protocols import sasl

__all__ = ["login_imap", "login_pop3", "login_smtp", "sasl_token_login", "token_responses"]

Which = Literal["incoming", "smtp"]
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
            f"{server.host} does not offer OAuth2 login (it offers: "
            f"{', '.join(sorted(offered_set)) or 'no SASL mechanisms'})",
            hint=f"this server needs a password: mailbag account set-password {account.name} "
            '(and set auth = "password" for it in config.toml)',
            host=server.host,
            cause="no-oauth-mechanism",
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


def _server(account: Account, which: Which) -> Server:
    return account.incoming if which == "incoming" else account.smtp


def _imap_mechanisms(client: Any) -> set[str]:
    return {c[5:] for c in client.capabilities if c.upper().startswith("AUTH=")}


def login_imap(
    client: Any, account: Account, *, paths: Paths | None = None, secret: str | None = None
) -> None:
    """Log a connected `ImapClient` in as the account says (password or OAuth2).

    `secret`: the password when the caller has it already (a sync opening several
    connections asks the keyring or password_command once); read here otherwise."""
    server = account.incoming
    if server.auth is AuthMethod.OAUTH2:
        sasl_token_login(
            account,
            server,
            _imap_mechanisms(client),
            lambda mech, responses: client.authenticate(mech, responses),
            paths=paths,
        )
        return
    if secret is None:
        from mailbag.config.secrets import get_secret

        secret = get_secret(account, "incoming")
    client.login_sasl(server.username, secret)


def login_pop3(client: Any, account: Account, *, paths: Paths | None = None) -> None:
    """Log a connected `Pop3Client` in (AUTH with SASL for OAuth2, else its password login)."""
    server = account.incoming
    if server.auth is AuthMethod.OAUTH2:
        sasl_token_login(
            account,
            server,
            client.capabilities.get("SASL", []),
            lambda mech, responses: client.authenticate(mech, responses),
            paths=paths,
        )
        return
    from mailbag.config.secrets import get_secret

    client.login(server.username, get_secret(account, "incoming"))


def login_smtp(client: Any, account: Account, *, paths: Paths | None = None) -> None:
    """Authenticate a connected `SmtpClient` (after EHLO/STARTTLS) as the account says."""
    server = account.smtp
    if not account.smtp.requires_auth:
        return
    if server.auth is AuthMethod.OAUTH2:
        sasl_token_login(
            account,
            server,
            client.auth_mechanisms,
            lambda mech, responses: client.authenticate(mech, responses),
            paths=paths,
        )
        return
    from mailbag.config.secrets import get_secret

    client.login(server.username, get_secret(account, "smtp"))
