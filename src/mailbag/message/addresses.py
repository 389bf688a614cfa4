"""Email addresses parsed strictly, shown exactly as they will be sent.

Two parsers in the standard library disagree on crafted input
(`email.utils.parseaddr`/`getaddresses` versus the policy-based
`email.headerregistry` parser, CVE-2023-27043): ``alice@example.org)<bob@evil>``
is one address to one of them and two to the other. A mail client that checks
one reading and sends to the other can be steered. So user input is parsed with
the policy-based parser, every defect it reports is an error, and when the two
parsers do not agree on the list of addresses the input is refused as
ambiguous. Nothing here guesses what the user meant.

Domains are stored in their ASCII form (IDNA 2008 with UTS 46 mapping), so what
is displayed, what goes into the headers and what goes into the SMTP envelope
are the same string. A non-ASCII local part is kept and marks the message as
needing SMTPUTF8.

This module never prints and never touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import errors as email_errors
from email import headerregistry, policy, utils

from mailbag.errors import UsageError

__all__ = [
    "Address",
    "AddressError",
    "dedupe",
    "format_list",
    "parse_address",
    "parse_address_list",
    "parse_header_addresses",
]

# header values longer than this are refused before parsing: the stdlib parser
# is quadratic on huge address lists (seconds for 20,000 addresses)
MAX_ADDRESS_TEXT = 64 * 1024
MAX_ADDRESSES = 1000

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_ADDRESS_LITERAL = re.compile(r"^\[(?:IPv6:[0-9A-Fa-f:.]+|[0-9]{1,3}(?:\.[0-9]{1,3}){3})\]$")
# RFC 5322 atext: local parts made only of these need no quoting
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


class AddressError(UsageError):
    """An address (list) that cannot be used as it is."""


@dataclass(frozen=True)
class Address:
    """One mailbox: an optional display name and `local@domain`.

    `domain` is always the ASCII form (A-labels) or an address literal, lower case.
    """

    display_name: str
    local: str
    domain: str

    @property
    def addr_spec(self) -> str:
        """The address as it goes into headers and into the SMTP envelope."""
        local = self.local
        if not _DOT_ATOM.match(local) and local.isascii():
            local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{local}@{self.domain}"

    @property
    def needs_smtputf8(self) -> bool:
        return not self.local.isascii()

    @property
    def key(self) -> str:
        """What makes two addresses "the same" for duplicate and own-address checks.

        Domains compare case-insensitively; local parts are compared
        case-insensitively too, because that is how virtually every server treats
        them and a reply-all that mails someone twice is worse than the rare
        server with case-sensitive mailboxes.
        """
        return f"{self.local.casefold()}@{self.domain}"

    def display(self) -> str:
        """How to show it to the user: the real address always visible, never hidden
        behind a display name (a name that looks like another address is shown
        with the address that will actually be used)."""
        if self.display_name:
            return f"{_quote_display(self.display_name)} <{self.addr_spec}>"
        return self.addr_spec

    def to_header(self) -> headerregistry.Address:
        """The stdlib value to assign to a header; the policy does RFC 2047 encoding."""
        return headerregistry.Address(self.display_name, self.local, self.domain)

    def __str__(self) -> str:
        return self.display()


def _quote_display(name: str) -> str:
    specials = '()<>[]:;@\\,."'
    if any(c in specials for c in name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def normalize_domain(domain: str) -> str:
    """ASCII, lower-case form of a domain; raises AddressError when it is not one."""
    if _ADDRESS_LITERAL.match(domain):
        return domain
    if not domain or len(domain) > 253:
        raise AddressError(f"invalid domain {domain!r}")
    if domain.isascii():
        labels = domain.rstrip(".").split(".") if domain != "." else []
        if not labels or not all(_ASCII_LABEL.match(label) for label in labels):
            raise AddressError(f"invalid domain {domain!r}")
        ascii_domain = ".".join(labels).lower()
        if any(label.startswith("xn--") for label in labels):
            import idna

            try:
                idna.decode(ascii_domain)
            except idna.IDNAError as exc:
                raise AddressError(f"invalid internationalized domain {domain!r}: {exc}") from exc
        return ascii_domain
    import idna  # only for non-ASCII domains

    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise AddressError(f"invalid internationalized domain {domain!r}: {exc}") from exc


def _check_text(text: str, what: str) -> None:
    if len(text) > MAX_ADDRESS_TEXT:
        raise AddressError(f"{what} is too long ({len(text)} characters)")
    if _CONTROL.search(text):
        raise AddressError(
            f"{what} contains a line break or control character",
            hint="give each address on one line, separated by commas",
        )


def _parse_with_policy(text: str, what: str) -> headerregistry.AddressHeader:
    try:
        header = policy.default.header_factory("To", text)
    # the parser signals malformed input with assorted exceptions (IndexError on
    # "foo@", ValueError on decoded CR/LF); all of them mean "not an address list"
    except (ValueError, IndexError, TypeError, email_errors.HeaderParseError) as exc:
        raise AddressError(f"cannot parse {what} {text!r}: {exc}") from exc
    assert isinstance(header, headerregistry.AddressHeader)
    return header


def parse_address_list(text: str, *, what: str = "address list") -> list[Address]:
    """Parse user input like ``Ann <ann@example.org>, bob@example.org`` strictly.

    Refused: anything the parser reports a defect for, anything the two stdlib
    parsers read differently, groups, control characters, empty parts, and
    domains that are not valid host names.
    """
    _check_text(text, what)
    # users type a trailing comma; an empty element in the middle is still refused
    stripped = text.strip().strip(",").strip()
    if not stripped:
        return []
    header = _parse_with_policy(stripped, what)
    all_defects: tuple[email_errors.MessageDefect, ...] = getattr(header, "defects", ())
    defects = [d for d in all_defects if not isinstance(d, email_errors.NonASCIILocalPartDefect)]
    if defects:
        raise AddressError(
            f"cannot use {what} {text!r}: {defects[0]}",
            hint='write addresses as name@example.org or "Name" <name@example.org>, '
            "separated by commas",
        )
    if any(group.display_name is not None for group in header.groups):
        raise AddressError(f"group syntax is not accepted in {what}: {text!r}")
    result = [_from_stdlib(a, text) for a in header.addresses]
    # the disagreement check (CVE-2023-27043): the legacy parser must see the
    # same addresses, or the text is ambiguous and we refuse to guess
    legacy = [spec for _, spec in utils.getaddresses([stripped]) if spec]
    if [_legacy_key(s) for s in legacy] != [a.key for a in result]:
        raise AddressError(
            f"ambiguous address text {text!r}: it can be read as different recipients",
            hint="write each address as name@example.org, separated by commas",
        )
    if len(result) > MAX_ADDRESSES:
        raise AddressError(f"too many addresses in {what} ({len(result)})")
    return result


def _legacy_key(spec: str) -> str:
    local, _, domain = spec.rpartition("@")
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        local = local[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    try:
        return f"{local.casefold()}@{normalize_domain(domain)}"
    except AddressError:
        return spec.casefold()


def _from_stdlib(a: headerregistry.Address, text: str) -> Address:
    if not a.username or not a.domain:
        raise AddressError(f"{a.addr_spec or text!r} is not a complete address (name@domain)")
    if _CONTROL.search(a.display_name) or _CONTROL.search(a.username):
        raise AddressError(f"address {text!r} contains control characters")
    return Address(a.display_name, a.username, normalize_domain(a.domain))


def parse_address(text: str, *, what: str = "address") -> Address:
    """Exactly one address."""
    found = parse_address_list(text, what=what)
    if len(found) != 1:
        raise AddressError(f"{what} must be exactly one address, got {len(found)}: {text!r}")
    return found[0]


def parse_header_addresses(values: Iterable[str]) -> list[Address]:
    """Addresses from headers of a received message (for replies), leniently.

    Mail from others is not ours to refuse, but nothing unsafe may pass: each
    header is parsed on its own, group members are included, and an address
    that cannot be used as it is (incomplete, invalid domain, read differently
    by the two stdlib parsers) is left out rather than repaired. A display
    name with line breaks is flattened to spaces.
    """
    out: list[Address] = []
    for raw in values:
        if len(raw) > MAX_ADDRESS_TEXT:
            continue
        text = raw.replace("\r", " ").replace("\n", " ")
        try:
            header = policy.default.header_factory("To", text)
        except (ValueError, IndexError, TypeError, email_errors.HeaderParseError):
            # decoded names with CR/LF land here: take the addresses alone
            header = policy.default.header_factory(
                "To", ", ".join(spec for _, spec in utils.getaddresses([text]) if spec)
            )
        assert isinstance(header, headerregistry.AddressHeader)
        # only addresses both stdlib parsers agree on (CVE-2023-27043)
        legacy = {_legacy_key(spec) for _, spec in utils.getaddresses([text]) if spec}
        for a in header.addresses:
            if not a.username or not a.domain or _CONTROL.search(a.username):
                continue
            if f"{a.username.casefold()}@{a.domain.lower()}" not in legacy and (
                _legacy_key(a.addr_spec) not in legacy
            ):
                continue
            try:
                domain = normalize_domain(a.domain)
            except AddressError:
                continue
            name = " ".join(_CONTROL.sub(" ", a.display_name).split())
            out.append(Address(name, a.username, domain))
            if len(out) >= MAX_ADDRESSES:
                return out
    return out


def dedupe(addresses: Iterable[Address], *, exclude: Iterable[Address | str] = ()) -> list[Address]:
    """Keep the first of each address (by `key`), dropping those in `exclude`."""
    seen: set[str] = set()
    for e in exclude:
        seen.add(e.key if isinstance(e, Address) else _legacy_key(e))
    out = []
    for a in addresses:
        if a.key not in seen:
            seen.add(a.key)
            out.append(a)
    return out


def format_list(addresses: Sequence[Address]) -> str:
    """A list for display (and for the editable template), one line."""
    return ", ".join(a.display() for a in addresses)
