"""The SASL mechanisms mailbag speaks, and its order of preference among them (read
through `mailbag.protocols.sasl`). Apart from the payload functions so that this enum
is built (~0.9M instructions) only where a mechanism is chosen: a password login over
IMAP, as in `mailbag sync`, never chooses one."""

from __future__ import annotations

from enum import StrEnum


class Mechanism(StrEnum):
    PLAIN = "PLAIN"
    LOGIN = "LOGIN"
    XOAUTH2 = "XOAUTH2"
    OAUTHBEARER = "OAUTHBEARER"


#: our order of preference among password mechanisms
PASSWORD_MECHANISMS = (Mechanism.PLAIN, Mechanism.LOGIN)
#: our order of preference among token mechanisms (RFC 7628 first)
TOKEN_MECHANISMS = (Mechanism.OAUTHBEARER, Mechanism.XOAUTH2)
