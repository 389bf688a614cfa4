"""Which addresses are the user's own, and which one a message is sent from.

Shared by every front end (CLI, TUI): a reply-all never goes back to any of the
user's addresses, and a chosen From must be one of the account's addresses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag.errors import UsageError
from mailbag.message.addresses import Address, AddressError, parse_address

if TYPE_CHECKING:
    from mailbag.config import Account, Config

__all__ = ["from_address", "identities"]


def identities(config: Config) -> list[Address]:
    """Every address of every account (with the account's display name on its main one)."""
    out = []
    for account in config.accounts.values():
        for addr in account.all_addresses:
            try:
                a = parse_address(addr)
            except AddressError:
                continue
            if addr == account.email and account.display_name:
                a = Address(account.display_name, a.local, a.domain)
            out.append(a)
    return out


def from_address(account: Account, chosen: str | None = None) -> Address:
    """The From of a message sent with `account`: `chosen` (one of its addresses) or its email."""
    if chosen:
        a = parse_address(chosen, what="--from")
        allowed = {parse_address(x).key for x in account.all_addresses}
        if a.key not in allowed:
            raise UsageError(
                f"{a.addr_spec} is not an address of account {account.name!r}",
                hint="its addresses: " + ", ".join(account.all_addresses),
            )
        if not a.display_name and account.display_name:
            a = Address(account.display_name, a.local, a.domain)
        return a
    base = parse_address(account.email)
    return Address(account.display_name, base.local, base.domain)
