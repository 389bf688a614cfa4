"""The streaming planner (`plan_stream`, for full folder reads) against the reference
planner (`plan`) on generated folders, and its memory on a big one."""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterator, Sequence

import pytest

from mailbag.sync.plan import (
    Action,
    Download,
    LocalMessage,
    Plan,
    RemoteFolder,
    RemoteListing,
    RemoteMessage,
    SyncedState,
    needs_identity,
    plan,
    plan_stream,
)
from memtools import least_of_three, traced_peak

FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft", "\\Recent", "$label"]


def _flags(rng: random.Random) -> frozenset[str]:
    return frozenset(f for f in FLAGS if rng.random() < 0.3)


def _case(
    rng: random.Random,
) -> tuple[list[LocalMessage], SyncedState, RemoteFolder, dict[int, tuple[str, int]], set[int]]:
    """A random folder: local rows (paired, unpaired, deleted here, duplicates), the
    server's messages, their identities as the server would give them, UIDs excluded."""
    n = rng.randint(0, 40)
    uids = sorted(rng.sample(range(1, 200), n))
    truth: dict[int, tuple[str, int]] = {}
    server: dict[int, RemoteMessage] = {}
    for uid in uids:
        truth[uid] = (f"<m{rng.randint(0, 25)}@x>", rng.choice([100, 200]))
        if rng.random() < 0.9:
            server[uid] = RemoteMessage(uid, _flags(rng))
    local: list[LocalMessage] = []
    row = 0
    for uid in uids + rng.sample(range(200, 260), rng.randint(0, 5)):
        if rng.random() < 0.3:
            continue
        row += 1
        synced = _flags(rng) if rng.random() < 0.9 else None
        paired = rng.random() < 0.85
        mid, size = truth.get(uid, (f"<m{rng.randint(0, 25)}@x>", 100))
        if rng.random() < 0.2:
            mid = ""
        local.append(
            LocalMessage(
                row=row if rng.random() < 0.95 else None,
                key=f"k{row}",
                uid=uid if paired else None,
                flags=_flags(rng),
                present=rng.random() < 0.85,
                message_id=mid,
                size=size,
                synced_flags=synced,
            )
        )
    if local and rng.random() < 0.1:
        dup = rng.choice(local)
        row += 1
        local.append(
            LocalMessage(row, f"k{row}", dup.uid, dup.flags, True, dup.message_id, dup.size)
        )
    rng.shuffle(local)
    state = SyncedState(
        uidvalidity=rng.choice([None, 1, 1, 1, 1, 2]), local_dir_missing=rng.random() < 0.1
    )
    excluded = set(rng.sample(uids, min(len(uids), rng.randint(0, 2)))) if uids else set()
    return local, state, RemoteFolder(1, server), truth, excluded


def _key(a: Action) -> str:
    if hasattr(a, "flags"):
        return f"{type(a).__name__}:{sorted(repr(a.__getattribute__(s)) for s in a.__slots__)}"
    return repr(a)


def _same(a: Plan, b: Plan) -> None:
    assert sorted(map(_key, a.actions)) == sorted(map(_key, b.actions))
    assert a.stop == b.stop
    assert a.notes == b.notes
    assert a.restored == b.restored
    assert a.uidvalidity_changed == b.uidvalidity_changed


def _reference(
    local: list[LocalMessage],
    state: SyncedState,
    remote: RemoteFolder,
    truth: dict[int, tuple[str, int]],
    excluded: set[int],
    threshold: int,
    force: bool,
) -> Plan:
    """`plan` as the engine used it: identities fetched first for what it needs."""
    msgs = dict(remote.messages)
    for uid in needs_identity(local, state, remote) - excluded:
        if uid in truth and uid % 7:  # (some vanish before the server answers)
            msgs[uid] = RemoteMessage(uid, msgs[uid].flags, *truth[uid])
    full = RemoteFolder(remote.uidvalidity, msgs)
    return plan(local, state, full, threshold=threshold, force=force, exclude_uids=excluded)


def _same_expanded(got: Plan, want: Plan, local: list[LocalMessage], remote: RemoteFolder) -> None:
    """`_same`, once the streaming plan's compact parts are written out as actions: its
    downloads (`fetch`) and its pairings (`pairs`)."""
    for uid in got.fetch:
        got.actions.append(Download(uid, frozenset(remote.messages[uid].flags - {"\\Recent"})))
    keys = {m.row: m.key for m in local}
    got.actions.extend(got.pairs.actions(keys.__getitem__))
    _same(got, want)


@pytest.mark.parametrize("seed", range(600))
def test_the_streaming_planner_plans_as_the_reference_does(seed: int) -> None:
    rng = random.Random(seed)
    local, state, remote, truth, excluded = _case(rng)
    threshold = rng.choice([0, 2, 50])
    force = rng.random() < 0.2
    asked: list[list[int]] = []

    def identities(uids: Sequence[int]) -> Iterator[tuple[int, str | None, int | None]]:
        asked.append(list(uids))
        for uid in uids:
            if uid in truth and uid % 7:
                yield (uid, *truth[uid])

    want = _reference(local, state, remote, truth, excluded, threshold, force)
    listing = RemoteListing.of({u: m.flags for u, m in remote.messages.items()})
    got = plan_stream(
        iter(local),
        state,
        remote.uidvalidity,
        listing,
        identities=identities,
        threshold=threshold,
        force=force,
        exclude_uids=excluded,
    )
    assert list(got.fetch) == sorted(got.fetch)
    _same_expanded(got, want, local, remote)
    need = needs_identity(local, state, remote) - excluded
    assert sorted(need) == (asked[0] if asked else [])


def _batches(
    pairs: list[tuple[int, frozenset[str]]], rng: random.Random
) -> list[tuple[list[int], list[frozenset[str]]]]:
    """Pairs cut into batches of random sizes, sorted by UID or not."""
    if rng.random() < 0.7:
        pairs = sorted(pairs)
    out = []
    while pairs:
        n = rng.randint(1, 8)
        out.append(([u for u, _ in pairs[:n]], [f for _, f in pairs[:n]]))
        pairs = pairs[n:]
    return out


@pytest.mark.parametrize("seed", range(600))
def test_settled_messages_given_as_uid_and_flags_plan_the_same(seed: int) -> None:
    """Most rows of a synced folder come as (UID, flags) (`settled`); the planner asks
    in full only for those the server differs for, and plans what `plan` plans."""
    rng = random.Random(seed)
    local, state, remote, truth, excluded = _case(rng)
    threshold = rng.choice([0, 2, 50])
    force = rng.random() < 0.2
    uids = [m.uid for m in local if m.uid is not None]
    once = {u for u in uids if uids.count(u) == 1}  # (the index holds a UID once)
    settled = [
        m
        for m in local
        if m.uid in once and m.present and m.flags == m.synced_flags and m.row is not None
    ]
    changed = state.uidvalidity is not None and state.uidvalidity != remote.uidvalidity
    if changed:
        settled = []  # all are paired again: the caller splits only while UIDVALIDITY holds
    rest = [m for m in local if m not in settled]
    by_uid = {m.uid: m for m in settled}
    asked_rows: list[list[int]] = []

    def settled_rows(uids: Sequence[int]) -> Iterator[LocalMessage]:
        asked_rows.append(list(uids))
        return (by_uid[u] for u in uids)

    def identities(uids: Sequence[int]) -> Iterator[tuple[int, str | None, int | None]]:
        for uid in uids:
            if uid in truth and uid % 7:
                yield (uid, *truth[uid])

    want = _reference(local, state, remote, truth, excluded, threshold, force)
    listing = RemoteListing.of({u: m.flags for u, m in remote.messages.items()})
    got = plan_stream(
        iter(rest),
        state,
        remote.uidvalidity,
        listing,
        identities=identities,
        threshold=threshold,
        force=force,
        exclude_uids=excluded,
        settled=_batches([(m.uid, m.flags) for m in settled if m.uid is not None], rng),
        settled_rows=None if changed else settled_rows,
    )
    _same_expanded(got, want, local, remote)
    # only the settled messages whose server side differs were read in full
    differ = [
        m.uid
        for m in settled
        if changed
        or m.uid not in remote.messages
        or (m.uid not in excluded and remote.messages[m.uid].flags != m.flags)
        or "\\Recent" in m.flags
    ]
    assert sorted(u for uids in asked_rows for u in uids) == sorted(differ)


def test_settled_messages_are_refused_after_a_uidvalidity_change() -> None:
    listing = RemoteListing.of({1: {"\\Seen"}})
    with pytest.raises(ValueError, match="UIDVALIDITY"):
        plan_stream(
            iter(()),
            SyncedState(1),
            2,
            listing,
            identities=lambda uids: (),
            settled=[([1], [frozenset({"\\Seen"})])],
            settled_rows=lambda uids: iter(()),
        )


def test_a_settled_folder_is_planned_without_reading_rows() -> None:
    seen, flagged = frozenset({"\\Seen"}), frozenset({"\\Seen", "\\Flagged"})
    listing = RemoteListing()
    for uid in range(1, 5001):
        if uid % 1000 != 7:  # 5 expunged on the server
            listing.add(uid, flagged if uid % 1000 == 3 else seen)  # 5 flagged there
    listing.finish()
    asked: list[int] = []

    def settled_rows(uids: Sequence[int]) -> Iterator[LocalMessage]:
        asked.extend(uids)
        for uid in uids:
            yield LocalMessage(uid, f"k{uid}", uid, seen, True, "", None, seen)

    result = plan_stream(
        iter(()),
        SyncedState(1),
        1,
        listing,
        identities=lambda uids: (),
        settled=[(range(i, i + 1000), [seen] * 1000) for i in range(1, 5001, 1000)],
        settled_rows=settled_rows,
    )
    assert asked == sorted(u for u in range(1, 5001) if u % 1000 in (3, 7))
    assert len(result.actions) == 10 and len(result.fetch) == 0


def test_a_listing_extended_by_batches_equals_one_added_by_message() -> None:
    rng = random.Random(3)
    pairs = [(uid, tuple(sorted(_flags(rng)))) for uid in rng.sample(range(1, 5000), 800)]
    by_add, by_extend = RemoteListing(), RemoteListing()
    for uid, flags in pairs:
        by_add.add(uid, flags)
    for i in range(0, len(pairs), 97):
        chunk = pairs[i : i + 97]
        by_extend.extend([u for u, _ in chunk], [f for _, f in chunk])
    by_extend.extend([], [])
    assert list(by_add.finish()) == list(by_extend.finish())
    ascending = RemoteListing()
    ascending.extend([1, 2, 3], [("a",), ("a",), ()])
    ascending.extend([4, 9], [(), ("a",)])
    assert ascending._sorted and len(ascending._sets) == 2
    assert list(ascending.finish()) == [
        (1, frozenset({"a"})),
        (2, frozenset({"a"})),
        (3, frozenset()),
        (4, frozenset()),
        (9, frozenset({"a"})),
    ]


def test_a_listing_in_any_order_is_sorted_and_the_last_flags_count() -> None:
    listing = RemoteListing()
    for uid, flags in [(5, {"a"}), (2, set()), (9, {"b"}), (2, {"c"})]:
        listing.add(uid, flags)
    listing.finish()
    assert list(listing) == [(2, frozenset({"c"})), (5, frozenset({"a"})), (9, frozenset({"b"}))]
    assert listing.index(5) == 1 and listing.index(3) == -1 and listing.index(10) == -1


@pytest.mark.parametrize("seed", range(40))
def test_a_listing_sorted_from_an_ascending_head_and_a_tail_is_what_a_dict_gives(
    seed: int,
) -> None:
    # (`finish` keeps the ascending head and sorts only what follows it: the tail's UIDs
    # may fall before, between, on and after the head's, and come more than once)
    rng = random.Random(seed)
    head = sorted(rng.sample(range(1, 60), rng.randint(0, 25)))
    given = [(uid, tuple(sorted(_flags(rng)))) for uid in head]
    given += [(rng.randint(1, 70), tuple(sorted(_flags(rng)))) for _ in range(rng.randint(0, 12))]
    if seed % 5 == 0:
        rng.shuffle(given)
    listing = RemoteListing()
    for uid, flags in given:
        listing.add(uid, flags)
    want = {uid: frozenset(flags) for uid, flags in given}
    assert list(listing.finish()) == sorted(want.items())


def _peak_of_finish(n: int) -> int:
    """Peak traced memory of sorting a listing of `n` messages given in order but for
    the last 1% (as the index's rows with the server's changes after them)."""
    seen = ("\\Seen",)
    listing = RemoteListing()
    listing.extend(array("I", [u for u in range(1, n + 1) if u % 100]), [seen] * (n - n // 100))
    listing.extend(array("I", range(n - n % 100, 0, -100)), [()] * (n // 100))
    peak, _ = traced_peak(listing.finish)
    assert len(listing) == n and listing.flags_at(99) == frozenset()
    return peak


def test_sorting_a_listing_given_nearly_in_order_keeps_a_few_bytes_a_message() -> None:
    # the sorted copy's arrays (8 bytes a message) and the tail's positions (1%); a sort of
    # every position took ~80 bytes a message
    per_message = least_of_three(
        lambda: (_peak_of_finish(60_000) - _peak_of_finish(20_000)) / 40_000, 12
    )
    assert per_message < 12, per_message


def _peak_of_full_read(n: int) -> int:
    """Peak traced memory of planning a folder of `n` messages where 1% changed
    flags and 1% vanished on the server (the local side streamed, as from the index)."""
    seen, flagged = frozenset({"\\Seen"}), frozenset({"\\Seen", "\\Flagged"})

    def rows() -> Iterator[LocalMessage]:
        for uid in range(1, n + 1):
            yield LocalMessage(uid, f"1700000000.M{uid}P1.host", uid, seen, True, "", None, seen)

    def plan() -> Plan:
        listing = RemoteListing()
        for uid in range(1, n + 1):
            if uid % 100 != 7:
                listing.add(uid, flagged if uid % 100 == 3 else {"\\Seen"})
        listing.finish()
        return plan_stream(
            rows(), SyncedState(1), 1, listing, identities=lambda uids: (), force=True
        )

    peak, result = traced_peak(plan)
    assert len(result.actions) == 2 * (n // 100)
    return peak


def test_planning_a_full_read_keeps_memory_to_the_changes() -> None:
    # per message: the listing's 8 bytes and one byte, plus the plan's actions (2%);
    # a dict of RemoteMessage and a list of LocalMessage took ~500 bytes a message
    per_message = least_of_three(
        lambda: (_peak_of_full_read(60_000) - _peak_of_full_read(20_000)) / 40_000, 60
    )
    assert per_message < 60, per_message


def test_settled_batches_matching_the_listing_are_compared_whole() -> None:
    """No expunge on the server: each batch lines up with the listing; the few flag
    changes there (and only they) are read in full and planned."""
    seen, flagged = frozenset({"\\Seen"}), frozenset({"\\Seen", "\\Flagged"})
    recent = frozenset({"\\Seen", "\\Recent"})
    listing = RemoteListing()
    for uid in range(1, 3001):
        listing.add(uid, flagged if uid % 500 == 3 else recent if uid == 1234 else seen)
    listing.finish()
    asked: list[int] = []

    def settled_rows(uids: Sequence[int]) -> Iterator[LocalMessage]:
        asked.extend(uids)
        for uid in uids:
            yield LocalMessage(uid, f"k{uid}", uid, seen, True, "", None, seen)

    result = plan_stream(
        iter(()),
        SyncedState(1),
        1,
        listing,
        identities=lambda uids: (),
        settled=[(list(range(i, i + 1000)), [seen] * 1000) for i in range(1, 3001, 1000)],
        settled_rows=settled_rows,
    )
    assert asked == [3, 503, 1003, 1234, 1503, 2003, 2503]
    assert sorted(a.uid for a in result.actions) == [3, 503, 1003, 1503, 2003, 2503]
    assert len(result.fetch) == 0 and result.stop is None
