"""Causes and fixes: turn a failed step into advice a person can act on.

Pure functions over values: the error of a lower layer (its class, its
`cause` field, the server's own reply) plus the account's settings go in, a
hint comes out. Known provider replies (Microsoft, Google, ...) are translated
into what the user has to change. Nothing here talks to the network, and no
hint ever suggests turning certificate checks off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbag.errors import AuthError, MailbagError, SecretError, TLSError

#: ports and what they normally speak, for "did you mean" advice
STANDARD_PORTS: dict[str, dict[str, int]] = {
    "imap": {"ssl": 993, "starttls": 143},
    "pop3": {"ssl": 995, "starttls": 110},
    "smtp": {"ssl": 465, "starttls": 587},
}

CA_FILE_HINT = (
    "if this is a private server whose certificate you trust, save its CA certificate "
    "(or the certificate itself) as a PEM file and pass it with --ca-file PEM; "
    "mailbag never turns certificate checks off"
)


@dataclass(frozen=True)
class ProviderReply:
    """A provider's refusal text and what it really means for the user."""

    provider: str
    pattern: re.Pattern[str]
    hint: str | None  # None: the reply names a cause from the table (see `cause`)
    cause: str = ""


PROVIDER_REPLIES: tuple[ProviderReply, ...] = (
    ProviderReply(
        "Microsoft",
        re.compile(
            r"SmtpClientAuthentication is disabled|5\.7\.139|5\.7\.30\b|"
            r"basic authentication is disabled|BasicAuthBlocked",
            re.IGNORECASE,
        ),
        "Microsoft no longer accepts passwords for this mailbox (basic authentication is "
        "off for Outlook.com and most Microsoft 365 tenants): switch the account to OAuth2 "
        "(--auth oauth2, then `mailbag account login NAME`); for Microsoft 365 an "
        "administrator can also enable authenticated SMTP for the mailbox",
    ),
    ProviderReply(
        "Google",
        re.compile(
            r"Application-specific password required|InvalidSecondFactor",
            re.IGNORECASE,
        ),
        "Google refuses the normal account password here: create an app password "
        "(Google Account > Security > 2-Step Verification > App passwords, "
        "https://myaccount.google.com/apppasswords) and use it instead, or switch to "
        "OAuth2 (--auth oauth2)",
    ),
    ProviderReply(
        "Google",
        re.compile(r"Please log in (?:with|via) your web browser|WebLoginRequired", re.I),
        "Google wants you to sign in once in a web browser to confirm this access "
        "(https://accounts.google.com), then try again; an app password or OAuth2 avoids this",
    ),
    ProviderReply(
        "Google",
        re.compile(r"not enabled for (?:IMAP|POP)", re.IGNORECASE),
        None,
        cause="service-unavailable",
    ),
    ProviderReply(
        "Yahoo",
        re.compile(r"\[AUTHENTICATIONFAILED\].*(?:app password|third[- ]party)", re.I),
        "Yahoo requires an app password for mail programs: create one under Account "
        "Security (https://login.yahoo.com/account/security) and use it instead",
    ),
)


def translate_reply(text: str) -> ProviderReply | None:
    """The known provider reply in `text`, if any."""
    for known in PROVIDER_REPLIES:
        if known.pattern.search(text):
            return known
    return None


def server_reply(exc: MailbagError) -> str:
    """The server's own words carried by an error (message plus any reply field)."""
    parts = [exc.message]
    for key in ("reply", "server_text", "response", "server_reply", "text"):
        value = exc.fields.get(key)
        if value:
            parts.append(
                value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            )
    return "\n".join(parts)


def other_port_advice(protocol: str, security: str) -> str:
    """'use 993 with SSL' style advice for a protocol."""
    ports = STANDARD_PORTS.get(protocol, {})
    ssl_port, tls_port = ports.get("ssl"), ports.get("starttls")
    if not ssl_port or not tls_port:
        return ""
    return f"the usual settings are port {ssl_port} with SSL/TLS or port {tls_port} with STARTTLS"


@dataclass(frozen=True)
class Context:
    """What the explainer knows about the side being tested."""

    protocol: str  # imap | pop3 | smtp
    host: str
    port: int
    security: str
    timeout: float
    #: where the provider lets users turn IMAP/POP on (from the provider table)
    enable_url: str | None = None
    #: the account's name, for commands in hints
    account: str = "NAME"


def explain(step: str, exc: MailbagError, ctx: Context) -> str | None:
    """The hint for a failed step: provider translation first, then the cause table."""
    known = translate_reply(server_reply(exc))
    if known is not None and known.hint is not None:
        return known.hint
    cause = known.cause if known is not None else str(exc.fields.get("cause", ""))
    hint = _cause_hint(cause, exc, ctx)
    if hint is not None:
        return hint
    if isinstance(exc, SecretError):
        return exc.hint or "store the password again: mailbag account set-password NAME"
    if isinstance(exc, AuthError):
        if cause in ("", "auth-failed"):  # a plain refusal: our advice knows the settings
            return _login_hint(ctx)
        return exc.hint or _login_hint(ctx)
    if isinstance(exc, TLSError) and not exc.hint:
        return CA_FILE_HINT
    return exc.hint


def _service_off_hint(ctx: Context) -> str:
    name = {"imap": "IMAP", "pop3": "POP", "smtp": "SMTP"}.get(ctx.protocol, ctx.protocol)
    if ctx.enable_url:
        return f"enable {name} in your provider's settings: {ctx.enable_url}"
    return f"check that {name} access is enabled in your provider's web settings"


def _login_hint(ctx: Context) -> str:
    hint = (
        "check the user name and password (the user name is usually the full email "
        "address); many providers need an app password or OAuth2 for mail programs"
    )
    if ctx.protocol == "smtp":
        hint += (
            "; if the outgoing server has its own password, store it with "
            f"`mailbag account set-password {ctx.account} --smtp`"
        )
    else:
        hint += f"; store a new password with `mailbag account set-password {ctx.account}`"
    return hint


def _cause_hint(cause: str, exc: MailbagError, ctx: Context) -> str | None:
    where = f"{ctx.host}:{ctx.port}"
    usual = other_port_advice(ctx.protocol, ctx.security)
    if cause == "dns":
        return (
            f"the name {ctx.host!r} does not exist in DNS: check it for typos "
            "(or run `mailbag autoconfig EMAIL` to find the right server); is this machine online?"
        )
    if cause == "refused":
        hint = f"nothing accepts connections on {where}: check the port number"
        if usual:
            hint += f" ({usual})"
        return f"{hint}; {_service_off_hint(ctx)}"
    if cause == "timeout":
        return (
            f"no answer from {where} within {ctx.timeout:g} s: check the host and port"
            + (f" ({usual})" if usual else "")
            + "; a firewall may be dropping the connection"
        )
    if cause in ("hostname-mismatch", "expired", "untrusted", "certificate"):
        base = exc.hint or ""
        if cause == "untrusted" and "self-signed" in exc.message.lower():
            base = "the server presents a self-signed certificate that nothing vouches for"
        if cause in ("untrusted", "certificate"):
            return f"{base}; {CA_FILE_HINT}" if base else CA_FILE_HINT
        return base or None
    if cause == "service-unavailable":
        return _service_off_hint(ctx)
    if cause in ("starttls-missing", "starttls-refused"):
        ssl_port = STANDARD_PORTS.get(ctx.protocol, {}).get("ssl")
        alt = f" (SSL/TLS on port {ssl_port})" if ssl_port else ""
        return (
            f"{where} does not offer STARTTLS, so the connection cannot be protected and "
            f"mailbag will not send your password over it: use the server's SSL/TLS port{alt}, "
            "or ask the provider to enable STARTTLS"
        )
    if cause == "smtp-auth-required":
        return (
            "the outgoing server wants you to log in before it accepts mail: turn on "
            "'outgoing server requires authentication' (same user name and password as "
            "incoming, or --smtp-username and --smtp-password-command)"
        )
    if cause == "relay-denied":
        return (
            "the server will not pass this message on for you: log in to it (turn on "
            "'outgoing server requires authentication'), and send through your own "
            "provider's SMTP server with your own address as sender"
        )
    if cause == "rejected":
        return (
            "the server refused the message itself; its reply above says why "
            "(spam filter, size, sender address): contact the provider if it is unclear"
        )
    if cause == "auth-mechanism":
        return (
            "the server offers no login method mailbag can use with these settings: "
            "check --auth (password or oauth2) and the security setting "
            "(many servers only offer login after STARTTLS/SSL)"
        )
    return None
