"""The causes/hints table and the provider reply translations (pure)."""

from __future__ import annotations

import pytest

from mailbag.diagnose.causes import Context, explain, translate_reply
from mailbag.errors import (
    AuthError,
    MailbagError,
    NetworkError,
    ProtocolError,
    SecretError,
    TLSError,
)

IMAP = Context("imap", "mail.example.org", 993, "ssl", 20.0)
POP = Context(
    "pop3", "pop.example.org", 995, "ssl", 20.0, enable_url="https://example.org/settings/pop"
)
SMTP = Context("smtp", "smtp.example.org", 587, "starttls", 20.0)


@pytest.mark.parametrize(
    ("reply", "provider", "needle"),
    [
        (
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
            "for the Tenant. Visit https://aka.ms/smtp_auth_disabled",
            "Microsoft",
            "OAuth2",
        ),
        (
            "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria",
            "Microsoft",
            "OAuth2",
        ),
        (
            "550 5.7.30 Basic authentication is not supported for Client Submission.",
            "Microsoft",
            "OAuth2",
        ),
        (
            "534-5.7.9 Application-specific password required. Learn more at https://support.google.com",
            "Google",
            "app password",
        ),
        ("* NO [ALERT] Application-specific password required", "Google", "OAuth2"),
        (
            "534-5.7.14 Please log in via your web browser and then try again.",
            "Google",
            "web browser",
        ),
    ],
)
def test_known_provider_replies(reply: str, provider: str, needle: str) -> None:
    known = translate_reply(reply)
    assert known is not None and known.provider == provider
    assert known.hint is not None and needle in known.hint
    # and explain() prefers the translation over the generic login advice
    assert explain("smtp-login", AuthError(reply), SMTP) == known.hint


def test_unknown_reply_is_not_translated() -> None:
    assert translate_reply("535 5.7.8 Authentication credentials invalid") is None
    assert translate_reply("5.7.300 something else") is None


def test_reply_in_fields_is_read_too() -> None:
    exc = AuthError("authentication failed", reply="535 5.7.139 Authentication unsuccessful")
    hint = explain("smtp-login", exc, SMTP)
    assert hint is not None and "OAuth2" in hint


def test_service_disabled_reply_points_at_the_provider_settings_url() -> None:
    exc = AuthError("-ERR [SYS/PERM] Your account is not enabled for POP access.")
    assert (
        explain("login", exc, POP)
        == "enable POP in your provider's settings: https://example.org/settings/pop"
    )
    hint = explain("login", exc, IMAP)
    assert hint is not None and "IMAP access is enabled" in hint


def test_dns_names_the_host() -> None:
    hint = explain("dns", NetworkError("cannot resolve", cause="dns"), IMAP)
    assert hint is not None and "'mail.example.org'" in hint and "typos" in hint


def test_refused_suggests_ports_and_enable_url() -> None:
    hint = explain("connect", NetworkError("refused", cause="refused"), POP)
    assert hint is not None
    assert "995 with SSL/TLS or port 110 with STARTTLS" in hint
    assert "https://example.org/settings/pop" in hint


def test_timeout_names_the_wait() -> None:
    hint = explain(
        "connect",
        NetworkError("timed out", cause="timeout"),
        Context("smtp", "h", 25, "starttls", 1.0),
    )
    assert hint is not None and "within 1 s" in hint and "465" in hint


def test_certificate_hints_offer_ca_file_never_ignoring() -> None:
    for cause, msg in [
        ("untrusted", "not signed by a trusted authority (self-signed certificate)"),
        ("untrusted", "not signed by a trusted authority (unable to get local issuer certificate)"),
        ("certificate", "rejected: something"),
    ]:
        hint = explain("tls", TLSError(msg, hint="x", cause=cause), IMAP)
        assert hint is not None and "--ca-file" in hint
        assert "ignore" not in hint.lower().replace("never turns certificate checks off", "")
    self_signed = explain("tls", TLSError("(self-signed certificate)", cause="untrusted"), IMAP)
    assert self_signed is not None and "self-signed" in self_signed
    expired = explain("tls", TLSError("expired", hint="renew it", cause="expired"), IMAP)
    assert expired == "renew it"


def test_starttls_missing_points_to_ssl_port() -> None:
    hint = explain("tls", TLSError("no STARTTLS", cause="starttls-missing"), SMTP)
    assert hint is not None and "465" in hint and "password" in hint


def test_smtp_policy_causes() -> None:
    auth = explain(
        "send", ProtocolError("530 5.7.0 Authentication required", cause="smtp-auth-required"), SMTP
    )
    assert auth is not None and "requires authentication" in auth
    relay = explain(
        "send", ProtocolError("554 5.7.1 Relay access denied", cause="relay-denied"), SMTP
    )
    assert relay is not None and "own provider's SMTP server" in relay
    rejected = explain("send", ProtocolError("554 5.7.1 spam", cause="rejected"), SMTP)
    assert rejected is not None and "reply" in rejected


def test_wrong_password_generic_advice_and_secret_errors() -> None:
    hint = explain("login", AuthError("[AUTHENTICATIONFAILED] Authentication failed."), IMAP)
    assert hint is not None and "user name and password" in hint
    smtp_hint = explain(
        "smtp-login", AuthError("535 5.7.8 Authentication credentials invalid"), SMTP
    )
    assert smtp_hint is not None and "mailbag account set-password NAME --smtp" in smtp_hint
    sec = explain("login", SecretError("no password stored", hint="run set-password"), IMAP)
    assert sec == "run set-password"


def test_unknown_cause_keeps_lower_layer_hint() -> None:
    assert (
        explain("inbox", MailbagError("odd", hint="lower hint", cause="weird"), IMAP)
        == "lower hint"
    )
    assert explain("inbox", MailbagError("odd"), IMAP) is None


def test_enable_url_comes_from_the_provider_table() -> None:
    from mailbag.diagnose.providers import enable_settings_url

    gmail_pop = enable_settings_url("someone@gmail.com", "pop.gmail.com", "pop3")
    assert gmail_pop is not None and gmail_pop.startswith("https://mail.google.com/")
    # found by the server's host name when the address is a company domain
    outlook = enable_settings_url("me@company.example", "outlook.office365.com", "imap")
    assert outlook is not None and outlook.startswith("https://outlook.live.com/")
    assert enable_settings_url("me@sandbox.test", "localhost", "pop3") is None


@pytest.mark.parametrize(
    ("message", "code", "text", "cause"),
    [
        (
            "h:587 refused MAIL FROM: 530 5.7.0 Authentication required",
            530,
            "Authentication required",
            "smtp-auth-required",
        ),
        (
            "h:587 refused MAIL FROM: 550 5.7.57 Client not authenticated",
            550,
            "must authenticate first",
            "smtp-auth-required",
        ),
        (
            "h:587 refused every recipient: 554 5.7.1 <x@y>: Relay access denied",
            554,
            "<x@y>: Relay access denied",
            "relay-denied",
        ),
        (
            "h:587 refused the message: 554 5.7.1 Message rejected as spam",
            554,
            "Message rejected as spam",
            "rejected",
        ),
        (
            "h:587 refused DATA: 554 5.5.1 no valid recipients",
            554,
            "no valid recipients",
            "rejected",
        ),
        ("h:587 temporarily refused the message: 451 4.3.0 try later", 451, "try later", None),
    ],
)
def test_smtp_refusals_are_classified(
    message: str, code: int, text: str, cause: str | None
) -> None:
    from mailbag.diagnose.sessions import smtp_refusal_cause

    exc = ProtocolError(message, cause="refused", smtp_code=code, smtp_text=text)
    assert smtp_refusal_cause(exc) == cause
