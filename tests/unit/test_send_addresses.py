"""Strict address parsing: tables of inputs, what is accepted, what is refused."""

from __future__ import annotations

import pytest

from mailbag.errors import UsageError
from mailbag.message.addresses import (
    Address,
    AddressError,
    dedupe,
    parse_address,
    parse_address_list,
    parse_header_addresses,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice@example.org", ["alice@example.org"]),
        ("Alice <alice@example.org>", ["Alice <alice@example.org>"]),
        ("<a@example.org>", ["a@example.org"]),
        (
            '"Doe, Jane" <jane@example.org>, bob@x.org,',
            ['"Doe, Jane" <jane@example.org>', "bob@x.org"],
        ),
        # a display name that looks like an address is shown next to the real one
        ('"alice@example.org" <bob@evil.test>', ['"alice@example.org" <bob@evil.test>']),
        ("x@EXAMPLE.ORG", ["x@example.org"]),
        # IDN domains are shown and sent in their ASCII form
        ("Zoë <zoe@bücher.de>", ["Zoë <zoe@xn--bcher-kva.de>"]),
        ("s@Straße.de", ["s@xn--strae-oqa.de"]),
        ('"a b"@c.example', ['"a b"@c.example']),
        ("a@[127.0.0.1]", ["a@[127.0.0.1]"]),
        ("Bob <bob@example.org> (work)", ["Bob <bob@example.org>"]),
        ("", []),
    ],
)
def test_accepted(text: str, expected: list[str]) -> None:
    assert [a.display() for a in parse_address_list(text)] == expected


@pytest.mark.parametrize(
    "text",
    [
        # CVE-2023-27043: the two stdlib parsers read these differently
        "alice@example.org)<bob@example.org>",
        "alice@example.org<bob@example.org>",
        "a@b.example c@d.example",
        # incomplete or malformed
        "foo",
        "foo@",
        "@bar.example",
        "a.@b.example",
        "a@b.example, , c@d.example",
        "a@-x.example",
        "a@exa mple.org",
        "a@xn--zz.example",
        # header injection
        "a@b.example\r\nBcc: x@evil.test",
        "a@b.example\nBcc: x@evil.test",
        "=?UTF-8?Q?hi=0ABcc:_x@evil?= <a@b.example>",
        # groups are not something a user types on purpose
        "undisclosed-recipients:;",
        "Team: a@b.example, c@d.example;",
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address_list(text)
    assert isinstance(info.value, UsageError)  # exit code 2 at the CLI


def test_non_ascii_local_part_needs_smtputf8() -> None:
    a = parse_address("José <josé@example.org>")
    assert a.needs_smtputf8
    assert a.addr_spec == "josé@example.org"
    assert not parse_address("jose@bücher.de").needs_smtputf8


def test_parse_address_wants_exactly_one() -> None:
    with pytest.raises(AddressError):
        parse_address("a@b.example, c@d.example")
    with pytest.raises(AddressError):
        parse_address("")


def test_too_long_is_refused_before_parsing() -> None:
    with pytest.raises(AddressError):
        parse_address_list(", ".join(f"u{i}@example.org" for i in range(20000)))


def test_header_addresses_are_lenient_but_safe() -> None:
    got = parse_header_addresses(
        [
            "=?UTF-8?Q?hi=0ABcc:_x@evil?= <a@b.example>",
            "Team: c@d.example, e@f.example;",
            "junk",
            "x@y.example)<q@r.example>",
            "Zoë <zoe@bücher.de>",
        ]
    )
    assert [a.addr_spec for a in got] == [
        "a@b.example",
        "c@d.example",
        "e@f.example",
        "x@y.example",
        "zoe@xn--bcher-kva.de",
    ]
    assert all("\n" not in a.display_name for a in got)


def test_dedupe_case_insensitive_with_exclusions() -> None:
    a = parse_address_list("A@Example.org, b@example.org, a@example.org, Me <me@example.org>")
    assert [x.addr_spec for x in dedupe(a, exclude=["ME@example.org"])] == [
        "A@example.org",
        "b@example.org",
    ]


def test_to_header_round_trip() -> None:
    a = Address("Zoë, Z.", "zoe", "example.org")
    assert str(a.to_header()) == '"Zoë, Z." <zoe@example.org>'
