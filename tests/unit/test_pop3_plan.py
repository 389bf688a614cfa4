"""The POP3 session planner: downloads, server-copy policy, limits, with a controlled clock."""

from __future__ import annotations

import pytest

from mailbag.errors import SyncError
from mailbag.store.pop_ledger import LedgerEntry, LedgerState
from mailbag.sync.pop3_plan import (
    DAY,
    Download,
    LocalStatus,
    OversizeAction,
    PopPolicy,
    Removal,
    ServerMessage,
    plan_pop_session,
)

T0 = 1_780_000_000.0  # a fixed "now" for the clock


def listing(*uidls: str, size: int = 1000) -> list[ServerMessage]:
    return [ServerMessage(i, u, size) for i, u in enumerate(uidls, start=1)]


def stored(uidl: str, at: float = T0, *, headers_only: bool = False) -> LedgerEntry:
    return LedgerEntry(uidl, LedgerState.STORED, 1000, f"k-{uidl}", 7, at, headers_only)


def test_first_session_downloads_everything_in_server_order_and_removes_nothing() -> None:
    plan = plan_pop_session({}, listing("a", "b", "c"), {}, PopPolicy(), T0)
    assert [d.uidl for d in plan.to_download] == ["a", "b", "c"]
    assert [d.number for d in plan.to_download] == [1, 2, 3]
    assert not any(d.remove_after for d in plan.to_download)
    assert plan.to_delete == ()


def test_held_uidls_are_not_downloaded_again_in_any_held_state() -> None:
    ledger = {
        "a": stored("a"),
        "b": LedgerEntry("b", LedgerState.DELE_SENT, 1, "k", 1, T0),
        "c": LedgerEntry("c", LedgerState.REMOVED, 1, "k", 2, T0),
    }
    plan = plan_pop_session(ledger, listing("a", "b", "c", "e"), {}, PopPolicy(), T0)
    assert [d.uidl for d in plan.to_download] == ["e"]


def test_different_uidls_with_the_same_content_are_both_downloaded() -> None:
    # the planner only knows UIDLs: identical bodies under two UIDLs are two messages
    plan = plan_pop_session({}, listing("x1", "x2"), {}, PopPolicy(), T0)
    assert len(plan.to_download) == 2


def test_a_uidl_listed_twice_is_downloaded_once_and_never_removed() -> None:
    pol = PopPolicy(leave_on_server=False)
    plan = plan_pop_session({}, listing("dup", "ok", "dup"), {}, pol, T0)
    assert [d.uidl for d in plan.to_download] == ["dup", "ok"]
    assert plan.ambiguous == ("dup",)
    assert [d.remove_after for d in plan.to_download] == [False, True]
    plan2 = plan_pop_session({"dup": stored("dup")}, listing("dup", "dup"), {}, pol, T0)
    assert plan2.to_delete == () and plan2.to_download == ()


@pytest.mark.parametrize(
    ("age_days", "limit_days", "removed"),
    [
        (0.0, 7, False),
        (6.99, 7, False),
        (7.0, 7, True),  # exactly N days: due
        (30.0, 7, True),
        (0.0, 0, True),  # 0 days: as soon as it is stored
        (400.0, None, False),  # no age rule
    ],
)
def test_remove_after_n_days_with_a_controlled_clock(
    age_days: float, limit_days: float | None, removed: bool
) -> None:
    pol = PopPolicy(delete_after_days=limit_days)
    ledger = {"a": stored("a", at=T0)}
    plan = plan_pop_session(ledger, listing("a"), {}, pol, T0 + age_days * DAY)
    assert plan.to_download == ()
    assert plan.to_delete == ((Removal(1, "a", "age"),) if removed else ())


def test_age_counts_from_when_it_was_stored_here_per_message() -> None:
    pol = PopPolicy(delete_after_days=3)
    ledger = {"old": stored("old", at=T0 - 5 * DAY), "new": stored("new", at=T0 - 1 * DAY)}
    plan = plan_pop_session(ledger, listing("old", "new", "fresh"), {}, pol, T0)
    assert [r.uidl for r in plan.to_delete] == ["old"]
    assert [d.uidl for d in plan.to_download] == ["fresh"]
    assert not plan.to_download[0].remove_after


def test_remove_right_after_download() -> None:
    pol = PopPolicy(leave_on_server=False)
    ledger = {"old": stored("old")}
    plan = plan_pop_session(ledger, listing("old", "new"), {}, pol, T0)
    # left over from a session kept under another policy: removed now
    assert plan.to_delete == (Removal(1, "old", "downloaded"),)
    assert plan.to_download == (Download(2, "new", 1000, remove_after=True),)


def test_remove_when_deleted_here_needs_positive_evidence() -> None:
    pol = PopPolicy(delete_when_deleted_here=True)
    ledger = {u: stored(u) for u in ("a", "b", "c")}
    local = {"a": LocalStatus.DELETED, "b": LocalStatus.PRESENT}  # c: the store does not know
    plan = plan_pop_session(ledger, listing("a", "b", "c"), local, pol, T0)
    assert plan.to_delete == (Removal(1, "a", "deleted-here"),)


def test_deleted_here_without_the_policy_keeps_the_server_copy() -> None:
    ledger = {"a": stored("a")}
    plan = plan_pop_session(ledger, listing("a"), {"a": LocalStatus.DELETED}, PopPolicy(), T0)
    assert plan.to_delete == ()


def test_mass_removal_because_deleted_here_stops_unless_forced() -> None:
    pol = PopPolicy(delete_when_deleted_here=True, mass_delete_limit=2)
    uidls = ["a", "b", "c"]
    ledger = {u: stored(u) for u in uidls}
    local = dict.fromkeys(uidls, LocalStatus.DELETED)
    with pytest.raises(SyncError) as err:
        plan_pop_session(ledger, listing(*uidls), local, pol, T0)
    assert err.value.hint and "--force" in err.value.hint
    plan = plan_pop_session(ledger, listing(*uidls), local, pol, T0, force=True)
    assert len(plan.to_delete) == 3
    # age-based removals are the user's explicit rule and are not capped
    pol_age = PopPolicy(delete_after_days=1, mass_delete_limit=2)
    assert len(plan_pop_session(ledger, listing(*uidls), {}, pol_age, T0 + DAY).to_delete) == 3


def test_headers_only_copies_are_never_a_reason_to_remove() -> None:
    pol = PopPolicy(leave_on_server=False, delete_after_days=0, delete_when_deleted_here=True)
    ledger = {"big": stored("big", headers_only=True)}
    plan = plan_pop_session(ledger, listing("big"), {"big": LocalStatus.DELETED}, pol, T0)
    assert plan.to_delete == ()
    assert plan.to_download == ()


@pytest.mark.parametrize(
    ("action", "downloads", "skipped"),
    [(OversizeAction.SKIP, ["small"], ["big"]), (OversizeAction.HEADERS, ["small", "big"], [])],
)
def test_size_limit(action: OversizeAction, downloads: list[str], skipped: list[str]) -> None:
    server = [ServerMessage(1, "small", 100), ServerMessage(2, "big", 5_000_001)]
    pol = PopPolicy(max_size=5_000_000, oversize=action, leave_on_server=False)
    plan = plan_pop_session({}, server, {}, pol, T0)
    assert [d.uidl for d in plan.to_download] == downloads
    assert [m.uidl for m in plan.skipped] == skipped
    for d in plan.to_download:
        # a header-only copy is not the message: its server copy stays
        assert d.headers_only == (d.uidl == "big")
        assert d.remove_after == (d.uidl == "small")


def test_size_exactly_at_the_limit_is_downloaded() -> None:
    plan = plan_pop_session({}, listing("a", size=10), {}, PopPolicy(max_size=10), T0)
    assert plan.to_download[0].headers_only is False


def test_cap_per_session_defers_the_rest_oldest_first() -> None:
    plan = plan_pop_session({}, listing("a", "b", "c", "d"), {}, PopPolicy(max_per_session=2), T0)
    assert [d.uidl for d in plan.to_download] == ["a", "b"]
    assert [m.uidl for m in plan.deferred] == ["c", "d"]
    # the next session picks up where the cap stopped
    ledger = {"a": stored("a"), "b": stored("b")}
    plan2 = plan_pop_session(
        ledger, listing("a", "b", "c", "d"), {}, PopPolicy(max_per_session=2), T0
    )
    assert [d.uidl for d in plan2.to_download] == ["c", "d"]


def test_ledger_rows_for_messages_no_longer_listed_change_nothing() -> None:
    ledger = {"gone": stored("gone", at=T0 - 100 * DAY)}
    plan = plan_pop_session(ledger, listing("new"), {}, PopPolicy(delete_after_days=1), T0)
    assert plan.to_delete == ()
    assert [d.uidl for d in plan.to_download] == ["new"]


def test_invalid_policy_values_are_refused() -> None:
    with pytest.raises(SyncError):
        PopPolicy(delete_after_days=-1)
    with pytest.raises(SyncError):
        PopPolicy(max_per_session=-5)
