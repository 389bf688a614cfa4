"""Addresses the user has mail with, for completing To/Cc/Bcc: by prefix, ranked by use.

Taken from the index's From/To/Cc columns (no separate address book to keep in
step). An address counts once per message it appears in; in mail the user sent
(Sent and Drafts folders) it counts `SENT_WEIGHT` times, because someone the
user writes to is likelier to be written to again than someone who only sends
newsletters. Ties go to the address seen most recently.

A prefix matches the start of the address or of any word of the display name
(continuing into the following words: "carol jo" finds Carol Jones),
case-insensitively. Only the `SCAN_LIMIT` most recent matching messages are
read, so a one-letter prefix on a 200,000-message index stays fast; the ranking
is then "by use in recent mail", which is what completion wants anyway.

The result is a suggestion only: whatever the user accepts is parsed strictly
(`mailbag.message.addresses`) before anything is sent. Names and addresses come
from received mail, so control characters are removed and odd addresses left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import getaddresses

from mailbag.store.index import Store

__all__ = ["SCAN_LIMIT", "SENT_WEIGHT", "KnownAddress", "known_addresses"]

SENT_WEIGHT = 3
SCAN_LIMIT = 5000
MAX_PREFIX = 200

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# plausible enough to suggest; the strict parser decides when the user sends
_ADDR = re.compile(r"^[^\s@<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_SPECIALS = '()<>[]:;@\\,."'


@dataclass(frozen=True)
class KnownAddress:
    address: str  # local@domain, domain lower case
    name: str  # display name last seen with it ("" if none)
    uses: int  # weighted count of messages it appears in
    last: float  # date of the newest of them (0 if unknown)

    def display(self) -> str:
        """`Name <addr>` (quoted when the name needs it) or just the address."""
        if not self.name:
            return self.address
        name = self.name
        if any(c in _SPECIALS for c in name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{self.address}>"


@dataclass
class _Tally:
    name: str
    uses: int
    last: float


def _like_pattern(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matches(prefix: str, address: str, name: str) -> bool:
    if address.startswith(prefix):
        return True
    words = [w for w in re.split(r"[\s,.\"'()<>]+", name.casefold()) if w]
    # from any word on, so a name typed with its space ("carol jo") still matches
    return any(" ".join(words[i:]).startswith(prefix) for i in range(len(words)))


def known_addresses(
    store: Store,
    prefix: str,
    *,
    limit: int = 10,
    account: str | None = None,
    exclude: Iterable[str] = (),
) -> list[KnownAddress]:
    """Addresses starting with `prefix` (or with a name word starting with it), best first.

    `exclude`: addresses never suggested (the user's own). An empty prefix gives
    nothing: completion starts with the first letter.
    """
    wanted = " ".join(_CONTROL.sub(" ", prefix).split()).casefold()[:MAX_PREFIX]
    if not wanted or limit <= 0:
        return []
    skip = {e.casefold() for e in exclude}
    pattern = _like_pattern(wanted)
    sql = (
        "SELECT m.from_addr, m.to_addrs, m.cc_addrs, f.role, COALESCE(m.date, m.internal_date) "
        "FROM messages m JOIN folders f ON f.id = m.folder_id "
        "JOIN accounts a ON a.id = f.account_id "
        "WHERE m.gone = 0 AND (m.from_addr LIKE ?1 ESCAPE '\\' "
        "OR m.to_addrs LIKE ?1 ESCAPE '\\' OR m.cc_addrs LIKE ?1 ESCAPE '\\')"
    )
    params: list[object] = [pattern]
    if account is not None:
        sql += " AND a.name = ?2"
        params.append(account)
    # newest first along the date index: a common prefix stops after SCAN_LIMIT rows
    sql += " ORDER BY COALESCE(m.date, m.internal_date) DESC, m.id DESC LIMIT " + str(SCAN_LIMIT)
    found: dict[str, _Tally] = {}
    for from_addr, to_addrs, cc_addrs, role, when in store.conn.execute(sql, params):
        sent = role in ("sent", "drafts")
        weight = SENT_WEIGHT if sent else 1
        # in sent mail the recipients are the user's contacts; From is the user
        headers = [to_addrs, cc_addrs] if sent else [from_addr, to_addrs, cc_addrs]
        seen_here: set[str] = set()
        flat = [_CONTROL.sub(" ", h) for h in headers if h]
        for name, addr in getaddresses(flat):
            key = _normal(addr)
            if key is None or key in seen_here or key in skip:
                continue
            clean_name = " ".join(_CONTROL.sub(" ", name).split())
            if not _matches(wanted, key, clean_name):
                continue
            seen_here.add(key)
            tally = found.get(key)
            if tally is None:
                # rows come newest first: the first name seen is the most recent one
                found[key] = _Tally(clean_name, weight, float(when or 0))
            else:
                tally.uses += weight
                tally.name = tally.name or clean_name
    ranked = [KnownAddress(addr, t.name, t.uses, t.last) for addr, t in found.items()]
    ranked.sort(key=lambda k: (-k.uses, -k.last, k.address))
    return ranked[:limit]


def _normal(addr: str) -> str | None:
    addr = addr.strip()
    if len(addr) > 254 or not _ADDR.match(addr):
        return None
    local, _, domain = addr.rpartition("@")
    return f"{local.casefold()}@{domain.lower()}"
