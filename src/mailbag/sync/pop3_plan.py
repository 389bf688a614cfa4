"""What one POP3 session should do: a pure function of the ledger, the server and the policy.

`plan_pop_session(ledger, server_listing, local_state, policy, now)` decides which
messages to download and which server copies to remove. It does no I/O, so its
whole case matrix is tested with plain values and a controlled clock.

Safety rules it enforces (they are why this is a separate, tested step):
- a server copy is removed only when the ledger says the full message is stored
  here (never a headers-only copy, never an unfinished download);
- a UIDL the server lists twice is ambiguous: it is downloaded once and never removed;
- "deleted here" needs positive evidence from the local store; a message the store
  cannot find is unknown, not deleted (an empty or lost store must not wipe a server);
- more removals "because deleted here" than the mass-delete limit stop the plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailbag.errors import SyncError
from mailbag.store.pop_ledger import LedgerEntry

__all__ = [
    "DAY",
    "Download",
    "LocalStatus",
    "OversizeAction",
    "PopPlan",
    "PopPolicy",
    "Removal",
    "ServerMessage",
    "plan_pop_session",
]

DAY = 86_400.0


class OversizeAction(StrEnum):
    SKIP = "skip"  # leave it on the server, do not download
    HEADERS = "headers"  # keep only the header (TOP n 0)


class LocalStatus(StrEnum):
    PRESENT = "present"  # the local copy is still in the store
    DELETED = "deleted"  # the user deleted the local copy (positive evidence)


@dataclass(frozen=True)
class PopPolicy:
    """What to do with server copies, and limits for one session.

    The four classic server-copy choices: `leave_on_server=True` with no other
    option (the default) keeps everything; `delete_after_days=N` removes copies
    stored here N days ago or more; `delete_when_deleted_here` removes copies whose
    local message was deleted; `leave_on_server=False` removes right after download.
    """

    leave_on_server: bool = True
    delete_after_days: float | None = None
    delete_when_deleted_here: bool = False
    #: messages larger than this many bytes get `oversize` treatment (None: no limit)
    max_size: int | None = None
    oversize: OversizeAction = OversizeAction.SKIP
    #: download at most this many messages in one session (None: no cap)
    max_per_session: int | None = None
    #: more "deleted here" removals than this in one session stop the plan (unless forced)
    mass_delete_limit: int | None = 100

    def __post_init__(self) -> None:
        if self.delete_after_days is not None and self.delete_after_days < 0:
            raise SyncError("delete_after_days must be 0 or more")
        if self.max_size is not None and self.max_size < 0:
            raise SyncError("max_size must be 0 or more")
        if self.max_per_session is not None and self.max_per_session < 0:
            raise SyncError("max_per_session must be 0 or more")

    @property
    def removes_right_after_download(self) -> bool:
        return not self.leave_on_server or self.delete_after_days == 0


@dataclass(frozen=True)
class ServerMessage:
    """One line of the server's listing: message number, UIDL, size in octets."""

    number: int
    uidl: str
    size: int


@dataclass(frozen=True)
class Download:
    number: int
    uidl: str
    size: int
    headers_only: bool = False
    #: send DELE as soon as this message is durably stored (same session)
    remove_after: bool = False


@dataclass(frozen=True)
class Removal:
    number: int
    uidl: str
    reason: str  # "downloaded" | "age" | "deleted-here"


@dataclass(frozen=True)
class PopPlan:
    to_download: tuple[Download, ...]
    to_delete: tuple[Removal, ...]
    #: over the size limit and left on the server
    skipped: tuple[ServerMessage, ...] = ()
    #: new messages left for a later session by the per-session cap
    deferred: tuple[ServerMessage, ...] = ()
    #: UIDLs the server listed more than once
    ambiguous: tuple[str, ...] = ()


def plan_pop_session(
    ledger: Mapping[str, LedgerEntry],
    server_listing: Sequence[ServerMessage],
    local_state: Mapping[str, LocalStatus],
    policy: PopPolicy,
    now: float,
    *,
    force: bool = False,
) -> PopPlan:
    """Decide downloads and removals for one session.

    `ledger` maps UIDL to its ledger row (every row is a message held here, in
    whatever state its server copy is). `local_state` maps
    UIDL to what the local store positively knows; a missing key means unknown.
    `now` is epoch seconds. Downloads keep the server's order (oldest first).
    """
    seen = Counter(m.uidl for m in server_listing)
    ambiguous = tuple(sorted(u for u, n in seen.items() if n > 1))

    downloads: list[Download] = []
    skipped: list[ServerMessage] = []
    deferred: list[ServerMessage] = []
    removals: list[Removal] = []
    planned: set[str] = set()
    deleted_here = 0
    cap = policy.max_per_session

    for msg in server_listing:
        entry = ledger.get(msg.uidl)
        if entry is None:
            if msg.uidl in planned:
                continue  # a repeated UIDL: one local copy is what the UIDL promises
            planned.add(msg.uidl)
            too_big = policy.max_size is not None and msg.size > policy.max_size
            if too_big and policy.oversize is OversizeAction.SKIP:
                skipped.append(msg)
                continue
            if cap is not None and len(downloads) >= cap:
                deferred.append(msg)
                continue
            downloads.append(
                Download(
                    msg.number,
                    msg.uidl,
                    msg.size,
                    headers_only=too_big,
                    remove_after=(
                        policy.removes_right_after_download and not too_big and seen[msg.uidl] == 1
                    ),
                )
            )
            continue

        # held here: is it time to remove the server copy?
        if entry.headers_only or seen[msg.uidl] > 1:
            continue
        reason = _removal_reason(entry, local_state.get(msg.uidl), policy, now)
        if reason is None:
            continue
        if reason == "deleted-here":
            deleted_here += 1
        removals.append(Removal(msg.number, msg.uidl, reason))

    limit = policy.mass_delete_limit
    if not force and limit is not None and deleted_here > limit:
        raise SyncError(
            f"{deleted_here} server messages would be removed because their local copies "
            f"are gone, more than the limit of {limit}",
            hint="if you really deleted them here, run again with --force; otherwise check "
            "that the local mail folder is where it should be",
            count=deleted_here,
            limit=limit,
        )

    return PopPlan(
        to_download=tuple(downloads),
        to_delete=tuple(removals),
        skipped=tuple(skipped),
        deferred=tuple(deferred),
        ambiguous=ambiguous,
    )


def _removal_reason(
    entry: LedgerEntry, local: LocalStatus | None, policy: PopPolicy, now: float
) -> str | None:
    if not policy.leave_on_server:
        return "downloaded"
    days = policy.delete_after_days
    if days is not None and entry.stored_at is not None and now - entry.stored_at >= days * DAY:
        return "age"
    if policy.delete_when_deleted_here and local is LocalStatus.DELETED:
        return "deleted-here"
    return None
