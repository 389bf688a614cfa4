"""'POP is turned off at this provider': recognised and explained with the provider's steps."""

from __future__ import annotations

import pytest

from mailbag.errors import AuthError, NetworkError, ProtocolError
from mailbag.sync.pop3 import explain_pop_unavailable, pop_disabled_hint


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("pop.gmail.com", "Forwarding and POP/IMAP"),
        ("outlook.office365.com", "Forwarding and IMAP"),
        ("POP-MAIL.OUTLOOK.COM.", "Forwarding and IMAP"),
        ("pop.gmx.net", "POP3 & IMAP"),
        ("pop3.web.de", "POP3 & IMAP"),
        ("mail.example.org", "provider's mail settings"),
        ("notgmail.com", "provider's mail settings"),  # a suffix match needs a dot
    ],
)
def test_hint_names_where_to_turn_pop_on(host: str, words: str) -> None:
    assert words in pop_disabled_hint(host)


def test_connection_refused_becomes_pop_disabled() -> None:
    exc = NetworkError("refused", host="pop.gmail.com", port=995, cause="refused")
    out = explain_pop_unavailable(exc, "pop.gmail.com", 995)
    assert isinstance(out, NetworkError) and out.fields["cause"] == "pop-disabled"
    assert "pop.gmail.com:995" in out.message and out.hint and "Enable POP" in out.hint


@pytest.mark.parametrize(
    ("text", "explained"),
    [
        ("-ERR [SYS/PERM] POP access is disabled for this account", True),
        ("-ERR Your account is not enabled for POP access", True),
        ("-ERR [AUTH] authentication failed", False),
    ],
)
def test_login_refusals_that_name_pop(text: str, explained: bool) -> None:
    exc = AuthError(f"localhost:995 refused the login: {text}")
    out = explain_pop_unavailable(exc, "pop.gmail.com", 995)
    assert (out.fields.get("cause") == "pop-disabled") is explained
    if not explained:
        assert out is exc


def test_other_errors_pass_through() -> None:
    timeout = NetworkError("timed out", cause="timeout")
    assert explain_pop_unavailable(timeout, "h", 1) is timeout
    proto = ProtocolError("odd")
    assert explain_pop_unavailable(proto, "h", 1) is proto
