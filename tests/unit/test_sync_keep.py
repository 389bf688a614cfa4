"""Finding the index rows a server kept under a new UIDVALIDITY (`sync.keep.find_kept`),
with values: a run of answers equal to the rows of its UID range is kept whole, any
difference (flags, size, Message-ID, a row gone there, a message new there, a row with
unpushed changes) leaves just those messages to the planner, and no row or message is
ever paired twice (a UID given twice, answers out of order, excluded UIDs). Checked
against the rule it stands for: a row is kept exactly when the server lists its UID
once, with its Message-ID (with an "@"), size and flags as last synced."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence

import pytest

from mailbag.protocols.imap.parser import IdentityRun
from mailbag.store.index import flags_text
from mailbag.sync import keep
from mailbag.sync.keep import NO_END, IndexColumns, IndexRow, Kept, find_kept

#: a row: UID, size, Message-ID, flags, last synced flags, gone, moved from UID
Row = IndexRow
#: a listed message: UID, flags, size, Message-ID (None: an answer without one)
Listed = tuple[int, tuple[str, ...], int, "str | None"]


class FakeIndex:
    def __init__(self, rows: Iterable[Row]) -> None:
        self.rows_by_uid = {r.uid: r for r in rows}
        self.queries = 0
        self.most_rows = 0  # the most rows given at once

    def _range(self, after: int, upto: int, limit: int) -> list[Row]:
        got = [self.rows_by_uid[u] for u in sorted(self.rows_by_uid) if after < u <= upto]
        return got[:limit]

    def columns(self, after: int, upto: int, limit: int) -> IndexColumns:
        self.queries += 1
        rs = self._range(after, upto, limit)
        self.most_rows = max(self.most_rows, len(rs))
        odd = "".join(
            "1"
            if r.synced_flags != r.flags
            or r.gone
            or r.moved_from_uid is not None
            or r.size is None
            or not r.message_id
            or "@" not in r.message_id
            else "0"
            for r in rs
        )
        return IndexColumns(
            len(rs),
            ",".join(str(r.uid) for r in rs),
            ",".join(str(-1 if r.size is None else r.size) for r in rs),
            "\n".join(r.message_id or "" for r in rs),
            "\n".join(r.flags for r in rs),
            odd,
        )

    def rows(self, after: int, upto: int, limit: int) -> list[Row]:
        return self._range(after, upto, limit)

    def has_uid(self, uid: int) -> bool:
        return uid in self.rows_by_uid


def row(uid: int, mid: str | None = None, size: int = 100, flags: str = "\\Seen") -> Row:
    return Row(uid, size, f"<m{uid}@x>" if mid is None else mid, flags, flags, 0, None)


def listed_of(r: Row) -> Listed:
    return (r.uid, tuple(r.flags.split()), r.size or 0, r.message_id)


def answers(
    listed: Sequence[Listed], run: int = 50, unnamed_in_runs: bool = False
) -> list[list[object]]:
    """The listing as the scanner gives it: runs of the usual answers (`run` at most in
    one), an answer of another shape for one without a Message-ID (or, with
    `unnamed_in_runs`, in the run with an empty one, as `scan_identity_runs` gives the
    usual empty header block)."""
    batches: list[list[object]] = []
    cur: list[Listed] = []

    def close() -> None:
        if cur:
            batches.append(
                [
                    IdentityRun(
                        tuple(str(u).encode() for u, _, _, _ in cur),
                        tuple(" ".join(f).encode() for _, f, _, _ in cur),
                        tuple(str(s).encode() for _, _, s, _ in cur),
                        tuple((m or "").encode() for _, _, _, m in cur),
                    )
                ]
            )
            cur.clear()

    for item in listed:
        uid, flags, size, mid = item
        if mid is None and not unnamed_in_runs:
            close()
            batches.append([(uid, flags, size, b"\r\n")])
        else:
            cur.append(item)
            if len(cur) >= run:
                close()
    close()
    return batches


def kept_uids(kept: Kept, index: FakeIndex) -> set[int]:
    """The UIDs of the rows `kept` keeps, as `Store.unpair_all` reads it."""
    out = set()
    for uid in index.rows_by_uid:
        if not kept.in_open(uid) or kept.has(uid):
            out.add(uid)
    return out


def run_keep(
    rows: list[Row],
    listed: list[Listed],
    excluded: set[int] | None = None,
    run: int = 50,
    unnamed_in_runs: bool = False,
) -> tuple[Kept, set[int], list[tuple[int, frozenset[str], str, int]], FakeIndex]:
    index = FakeIndex(rows)
    left: list[tuple[int, frozenset[str], str, int]] = []
    got = answers(listed, run, unnamed_in_runs)
    kept = find_kept(got, index, excluded or set(), left.append)  # type: ignore[arg-type]
    return kept, kept_uids(kept, index), left, index


def expected(rows: list[Row], listed: list[Listed], excluded: set[int]) -> set[int]:
    """The rule: the UID listed once, as the row says, the row with nothing to push."""
    counts: dict[int, int] = {}
    for uid, *_ in listed:
        counts[uid] = counts.get(uid, 0) + 1
    there = {item[0]: item for item in listed}
    out = set()
    for r in rows:
        item = there.get(r.uid)
        if (
            item is not None
            and counts[r.uid] == 1
            and r.uid not in excluded
            and item[3] is not None
            and item[3] == r.message_id
            and "@" in item[3]
            and item[2] == r.size
            and flags_text(item[1]) == r.flags == r.synced_flags
            and not r.gone
            and r.moved_from_uid is None
        ):
            out.add(r.uid)
    return out


def test_a_folder_the_server_kept_is_kept_whole_in_few_queries() -> None:
    rows = [row(u) for u in range(1, 5001)]
    kept, uids, left, index = run_keep(rows, [listed_of(r) for r in rows])
    assert kept.count == 5000 and uids == set(range(1, 5001)) and not left
    assert kept.open == [(5000, NO_END)] and not kept.uids  # (nothing else to read)
    assert index.queries <= 5000 // 2048 + 1


def test_each_difference_leaves_just_that_message_to_the_planner() -> None:
    rows = [row(u) for u in range(1, 201)]
    listed = [listed_of(r) for r in rows]
    listed[9] = (10, ("\\Seen", "\\Flagged"), 100, "<m10@x>")  # flags changed there
    listed[19] = (20, ("\\Seen",), 101, "<m20@x>")  # another size
    listed[29] = (30, ("\\Seen",), 100, "<other@x>")  # another message
    del listed[39]  # uid 40 gone there
    listed.append((300, ("\\Seen",), 5, "<new@x>"))  # new there
    rows[49] = rows[49]._replace(flags="\\Seen \\Answered")  # changed here, not pushed
    rows[59] = rows[59]._replace(message_id="<>", size=100)  # no usable Message-ID
    listed[58] = (60, ("\\Seen",), 100, "<>")
    kept, uids, left, _ = run_keep(rows, listed)
    assert uids == expected(rows, listed, set()) == set(range(1, 201)) - {10, 20, 30, 40, 50, 60}
    assert kept.count == len(uids)
    assert [item[0] for item in left] == [10, 20, 30, 50, 60, 300]  # in the order listed
    assert left[0][1] == frozenset({"\\Seen", "\\Flagged"}) and left[2][2] == "<other@x>"
    # the rows not kept are in open ranges, to be read for the planner
    for uid in (10, 20, 30, 40, 50, 60):
        assert kept.in_open(uid) and not kept.has(uid)


def test_answers_without_a_message_id_and_ignored_flags() -> None:
    rows = [row(u) for u in range(1, 101)]
    rows[4] = Row(5, 100, "", "", "", 0, None)  # no Message-ID here either
    listed = [listed_of(r) for r in rows]
    listed[4] = (5, (), 100, None)
    listed[6] = (7, ("\\Seen", "\\Recent"), 100, "<m7@x>")  # \Recent is not a flag kept
    _, uids, left, _ = run_keep(rows, listed, run=10)
    assert uids == set(range(1, 101)) - {5}
    assert [item[0] for item in left] == [5]


@pytest.mark.parametrize("cut", [7, 50, 2048])
def test_rows_beside_unnamed_ones_are_kept_outside_the_open_ranges(cut: int) -> None:
    # every 20th message without a Message-ID, here and there, in the runs (cut where
    # a read ended): the others are kept as runs, whole; only the unnamed rows are in
    # open ranges (what the planner reads), each alone
    rows = [row(u) for u in range(1, 1001)]
    for u in range(20, 1001, 20):
        rows[u - 1] = Row(u, 100, None, "\\Seen", "\\Seen", 0, None)
    listed = [listed_of(r) for r in rows]
    kept, uids, left, _ = run_keep(rows, listed, run=cut, unnamed_in_runs=True)
    unnamed = list(range(20, 1001, 20))
    assert uids == expected(rows, listed, set()) == set(range(1, 1001)) - set(unnamed)
    assert kept.count == len(uids)
    assert [item[0] for item in left] == unnamed
    assert all(item[2] == "" and item[1] == frozenset({"\\Seen"}) for item in left)
    assert kept.open == [(u - 1, u) for u in unnamed[:-1]] + [(999, NO_END)]
    assert not kept.uids


def test_a_uid_given_twice_or_out_of_order_never_pairs_twice() -> None:
    rows = [row(u) for u in range(1, 101)]
    listed = [listed_of(r) for r in rows]
    # uid 50 again later (a flag change another client made meanwhile), then 30 again
    # out of order, then a new one
    listed += [(50, ("\\Seen",), 100, "<m50@x>"), (30, ("\\Seen",), 100, "<m30@x>")]
    listed.append((101, ("\\Seen",), 100, "<m101@x>"))
    _, uids, left, _ = run_keep(rows, listed, run=20)
    # every row kept once; the repeated UIDs are not given to the planner again
    assert uids == set(range(1, 101))
    assert [item[0] for item in left] == [101]


def test_excluded_uids_are_neither_kept_nor_left() -> None:
    rows = [row(u) for u in range(1, 51)]
    kept, uids, left, _ = run_keep(rows, [listed_of(r) for r in rows], excluded={7, 8})
    assert uids == set(range(1, 51)) - {7, 8} and not left
    assert kept.in_open(7) and kept.in_open(8)  # (their rows go to the planner)


def test_a_server_that_renumbered_its_messages_costs_few_rows_at_a_time() -> None:
    # the new UIDs above the old ones: no batch's range holds an old row; every 4th
    # message listed of a folder that lost the others: a batch's range holds 4x its
    # messages, of which at most _ROWS_AT_MOST are read (all 10,000 at once before)
    rows = [row(u) for u in range(1, 10_001)]
    moved = [(u + 20_000, *listed_of(r)[1:]) for u, r in zip(range(1, 10_001), rows, strict=True)]
    kept, uids, left, index = run_keep(rows, moved, run=200)  # type: ignore[arg-type]
    assert not uids and len(left) == 10_000 and index.most_rows == 0
    sparse = [listed_of(r) for r in rows[::4]]
    kept, uids, left, index = run_keep(rows, sparse, run=200)
    assert index.most_rows <= keep._ROWS_AT_MOST < 10_000
    assert uids <= expected(rows, sparse, set()) and kept.count == len(uids) > 0
    assert set(uids).isdisjoint(item[0] for item in left)
    assert {item[0] for item in left} | uids == {x[0] for x in sparse}
    for r in rows:  # a row not kept is in an open range: read for the planner
        assert r.uid in uids or (kept.in_open(r.uid) and not kept.has(r.uid))


@pytest.mark.parametrize("unnamed_in_runs", [False, True])
@pytest.mark.parametrize("small", [False, True])
def test_random_listings_follow_the_rule(
    small: bool, unnamed_in_runs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if small:  # (batches of a few, a few rows read for each)
        monkeypatch.setattr(keep, "_BATCH", 7)
        monkeypatch.setattr(keep, "_ROWS_AT_MOST", 9)
    rng = random.Random(12)
    for _ in range(150):
        n = rng.randint(1, 120)
        rows = [row(u * 2 + rng.randint(0, 1), size=rng.randint(1, 3)) for u in range(1, n)]
        rows = list({r.uid: r for r in rows}.values())
        listed: list[Listed] = []
        for r in rows:
            k = rng.random()
            if k < 0.75:
                listed.append(listed_of(r))
            elif k < 0.8:
                listed.append((r.uid, ("\\Seen", "$x"), r.size or 0, r.message_id))
            elif k < 0.85:
                listed.append((r.uid, ("\\Seen",), r.size or 0, None))
            elif k < 0.9:
                listed.append((r.uid, ("\\Seen",), (r.size or 0) + 1, r.message_id))
            if rng.random() < 0.05:
                listed.append((r.uid * 1000, (), 1, f"<n{r.uid}@x>"))  # new there
        if listed and rng.random() < 0.2:
            listed.insert(rng.randrange(len(listed)), rng.choice(listed))  # a UID again
        if rng.random() < 0.3:
            for i, r in enumerate(rows):
                if rng.random() < 0.1:
                    rows[i] = r._replace(flags="\\Seen \\Flagged")  # not pushed yet
        excluded = {r.uid for r in rows if rng.random() < 0.03}
        kept, uids, left, _ = run_keep(
            rows, listed, excluded, run=rng.randint(1, 30), unnamed_in_runs=unnamed_in_runs
        )
        ordered = all(a[0] < b[0] for a, b in itertools.pairwise(listed))
        rule = expected(rows, listed, excluded)
        if ordered and not small:
            assert uids == rule
        elif ordered:
            assert uids <= rule
        else:
            assert uids <= rule | {r.uid for r in rows if r.uid in {x[0] for x in listed}}
        assert kept.count == len(uids)
        # no row kept is also given to the planner, none left out (a UID listed twice
        # and not kept goes twice, as the planner takes such listings)
        left_uids = [item[0] for item in left]
        assert not set(left_uids) & uids
        assert not ordered or len(left_uids) == len(set(left_uids))
        listed_uids = {x[0] for x in listed} - excluded
        assert set(left_uids) == listed_uids - uids
