"""The address lists of the compose screen's To/Cc/Bcc fields: which address the
cursor is in (so completion works on that one, not the whole field) and what
accepting a match does to the rest of the list."""

from __future__ import annotations

import pytest

from mailbag.message.addresses import parse_address_list
from mailbag.tui.compose import accept_address, address_span, address_typed


@pytest.mark.parametrize(
    ("value", "cursor", "typed"),
    [
        ("", 0, ""),
        ("car", 3, "car"),
        ("car", 1, "car"),
        ("dave@x.org, car", 15, "car"),
        ("dave@x.org, car", 4, "dave@x.org"),
        ("dave@x.org,car", 14, "car"),
        ("dave@x.org, ", 12, ""),
        ("dave@x.org,", 11, ""),
        ("a@x, b@y, jo", 12, "jo"),
        ("a@x, b@y, jo", 7, "b@y"),
        # commas in a quoted name, an angle address or a comment do not separate
        ('"Jones, Carol" <c@x.org>, ca', 28, "ca"),
        ('"Jones, Carol" <c@x.org>, ca', 3, '"Jones, Carol" <c@x.org>'),
        ('"a \\" , b" <c@x>, d', 19, "d"),
        ("<odd,route@x>, e", 16, "e"),
        ("x@y (work, mostly), e", 21, "e"),
    ],
)
def test_the_address_at_the_cursor(value: str, cursor: int, typed: str) -> None:
    assert address_typed(value, cursor) == typed


def test_span_is_inside_the_text() -> None:
    assert address_span("a@x, bo", 7) == (5, 7)
    assert address_span("a@x, bo", 99) == (5, 7)  # a cursor past the end counts as the end
    assert address_span("  bo", 0) == (2, 4)


def test_accepting_at_the_end_adds_a_separator_for_the_next_address() -> None:
    new, cursor = accept_address("dave@x.org, car", 15, "Carol Jones <carol@x.org>")
    assert new == "dave@x.org, Carol Jones <carol@x.org>, "
    assert cursor == len(new)
    new, cursor = accept_address("car", 3, "carol@x.org")
    assert (new, cursor) == ("carol@x.org, ", 13)
    new, _ = accept_address("dave@x.org,car", 14, "carol@x.org")
    assert new == "dave@x.org, carol@x.org, "


def test_accepting_in_the_middle_keeps_the_others() -> None:
    value = "a@x.org, car, b@y.org"
    new, cursor = accept_address(value, 12, '"Jones, Carol" <carol@x.org>')
    assert new == 'a@x.org, "Jones, Carol" <carol@x.org>, b@y.org'
    assert new[:cursor].endswith("<carol@x.org>")
    new, _ = accept_address("car, b@y.org", 2, "carol@x.org")
    assert new == "carol@x.org, b@y.org"


def test_what_completion_leaves_parses() -> None:
    new, _ = accept_address("a@x.org, car", 12, '"Jones, Carol" <carol@x.org>')
    assert [a.addr_spec for a in parse_address_list(new, what="To")] == [
        "a@x.org",
        "carol@x.org",
    ]
