"""SASL client mechanisms as pure functions: bytes in, bytes out.

Used by IMAP (AUTHENTICATE), POP3 (AUTH) and SMTP (AUTH) alike. The protocol
clients do the base64 framing; these functions only build the payloads.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mailbag.protocols.sasl_mechanisms import (
        PASSWORD_MECHANISMS,
        TOKEN_MECHANISMS,
        Mechanism,
    )

__all__ = [
    "PASSWORD_MECHANISMS",
    "TOKEN_MECHANISMS",
    "Mechanism",
    "choose",
    "login_responses",
    "oauthbearer",
    "plain",
    "xoauth2",
]

#: the names `__getattr__` (PEP 562) loads from `sasl_mechanisms` on first use
_MECHANISM_NAMES = frozenset({"Mechanism", "PASSWORD_MECHANISMS", "TOKEN_MECHANISMS"})


if not TYPE_CHECKING:  # (hidden from mypy: it sees the names imported above, and still
    # flags any other name as missing instead of typing it as `Any`)

    def __getattr__(name: str) -> Any:
        if name in _MECHANISM_NAMES:
            from mailbag.protocols import sasl_mechanisms

            value = getattr(sasl_mechanisms, name)
            globals()[name] = value
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plain(username: str, password: str, authzid: str = "") -> bytes:
    """RFC 4616: authzid NUL authcid NUL passwd."""
    for value in (username, password, authzid):
        if "\x00" in value:
            raise ValueError("NUL is not allowed in SASL PLAIN credentials")
    return f"{authzid}\x00{username}\x00{password}".encode()


def login_responses(username: str, password: str) -> tuple[bytes, bytes]:
    """The two answers of the (non-standard but universal) LOGIN mechanism."""
    return username.encode(), password.encode()


def xoauth2(username: str, access_token: str) -> bytes:
    """Google's and Microsoft's XOAUTH2 initial response."""
    return f"user={username}\x01auth=Bearer {access_token}\x01\x01".encode()


def oauthbearer(username: str, access_token: str, host: str, port: int) -> bytes:
    """RFC 7628 OAUTHBEARER initial response (GS2 header with the authzid)."""
    safe_user = username.replace("=", "=3D").replace(",", "=2C")
    return (
        f"n,a={safe_user},\x01host={host}\x01port={port}\x01auth=Bearer {access_token}\x01\x01"
    ).encode()


def choose(offered: set[str], preferred: tuple[Mechanism, ...]) -> Mechanism | None:
    """The first of our preferred mechanisms that the server offers."""
    upper = {m.upper() for m in offered}
    for mech in preferred:
        if mech.value in upper:
            return mech
    return None
