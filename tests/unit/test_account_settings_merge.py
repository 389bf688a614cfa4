"""`account add`: how flags are merged over the discovered settings."""

from __future__ import annotations

import pytest

from mailbag.autoconfig import Candidate, Source
from mailbag.cli.cmd_account import _server_from
from mailbag.errors import UsageError
from mailbag.protocols.transport import Security

FOUND = Candidate(
    "imap", "imap.example.com", 993, Security.SSL, "me", ("password",), Source.ISPDB, True
)


def test_discovered_settings_are_used_as_they_are() -> None:
    assert _server_from("imap", FOUND, None, None, None) == (
        "imap.example.com",
        993,
        "ssl",
        "ispdb",
    )


def test_a_flag_overrides_only_its_field() -> None:
    # another security on the same host: the standard port for it, not the discovered one
    assert _server_from("imap", FOUND, None, None, "starttls") == (
        "imap.example.com",
        143,
        "starttls",
        "manual+ispdb",
    )
    assert _server_from("imap", FOUND, None, 1993, None) == (
        "imap.example.com",
        1993,
        "ssl",
        "manual+ispdb",
    )
    # another host: nothing of the discovered server carries over
    assert _server_from("imap", FOUND, "mail.example.org", None, None) == (
        "mail.example.org",
        993,
        "ssl",
        "manual",
    )


def test_manual_without_discovery() -> None:
    assert _server_from("pop3", None, "pop.example.com", None, "starttls") == (
        "pop.example.com",
        110,
        "starttls",
        "manual",
    )
    assert _server_from("smtp", None, "smtp.example.com", None, None)[1:3] == (465, "ssl")
    with pytest.raises(UsageError) as info:
        _server_from("smtp", None, None, None, None)
    assert info.value.hint == "give it with --smtp-host"
