"""Conversations kept up to date (`store.listing.Conversations`): folding changes in
gives the same conversations as grouping the whole folder again, on many generated
folders and change sequences; then the same against a real store."""

from __future__ import annotations

import random
from collections.abc import Collection
from pathlib import Path

import pytest

from mailbag.paths import Paths
from mailbag.store import listing
from mailbag.store.index import Store
from mailbag.store.listing import (
    Conversations,
    FolderConversations,
    Row,
    folder_threads,
    group_threads,
)
from mailbag.store.query import base_subject


class Folder:
    """A folder as plain rows: the `RowSource` a store would be."""

    def __init__(self) -> None:
        self.by_id: dict[int, Row] = {}

    def all(self) -> list[Row]:
        return self.rows(self.by_id)

    def rows(self, ids: Collection[int]) -> list[Row]:
        found = [self.by_id[i] for i in ids if i in self.by_id]
        return sorted(found, key=lambda r: (-(r[1] or 0.0), -r[0]))

    def owners(self, names: Collection[str]) -> set[int]:
        return {i for i, r in self.by_id.items() if r[3] and r[3] in names}

    def headerless_with(self, keys: Collection[str]) -> set[int]:
        return {
            i
            for i, r in self.by_id.items()
            if not (r[4] or r[5]) and base_subject(r[6] or "") in keys
        }

    def unread(self) -> set[int]:
        return {i for i, r in self.by_id.items() if "\\Seen" not in (r[2] or "")}


SUBJECTS = ["plan", "Re: plan", "RE: Plan", "Fwd: plan", "lunch", "Re: lunch", "", "Re:", "x"]


def _random_row(rnd: random.Random, n: int, ids: int) -> Row:
    """Message `n`: IDs from a small pool (so duplicates and missing parents happen),
    often no threading headers, subjects that join by Re: now and then."""

    def name() -> str:
        return f"<m{rnd.randrange(ids)}@x>"

    message_id = name() if rnd.random() < 0.9 else ""
    irt = refs = ""
    shape = rnd.random()
    if shape < 0.35:
        irt = name()
        if rnd.random() < 0.5:
            refs = " ".join(name() for _ in range(rnd.randrange(1, 4)))
    elif shape < 0.45:
        refs = " ".join(name() for _ in range(rnd.randrange(1, 3)))
    elif shape < 0.5:
        irt = "garbage without brackets"
    when = float(rnd.choice([0, rnd.randrange(1, 50)]))
    flags = "\\Seen" if rnd.random() < 0.6 else rnd.choice(["", "\\Flagged"])
    return (n, when, flags, message_id, irt, refs, rnd.choice(SUBJECTS))


def _check_same(grouped: Conversations, folder: Folder) -> None:
    assert grouped.threads == group_threads(folder.all())


@pytest.mark.parametrize("seed", range(150))
def test_folding_changes_in_equals_grouping_again(seed: int) -> None:
    rnd = random.Random(seed)
    pool = rnd.choice([5, 15, 40])
    folder = Folder()
    next_id = 1
    for _ in range(rnd.randrange(0, 30)):
        folder.by_id[next_id] = _random_row(rnd, next_id, pool)
        next_id += 1
    grouped = Conversations(folder.all())
    _check_same(grouped, folder)
    for _ in range(25):
        added: list[int] = []
        removed: set[int] = set()
        for _ in range(rnd.choice([1, 1, 2, 5])):
            action = rnd.random()
            if action < 0.45 or not folder.by_id:
                new = next_id
                if removed and rnd.random() < 0.2:
                    new = rnd.choice(sorted(removed))  # SQLite reuses a freed row ID
                else:
                    next_id += 1
                folder.by_id[new] = _random_row(rnd, new, pool)
                added.append(new)
            elif action < 0.75:
                gone = rnd.choice(sorted(folder.by_id))
                del folder.by_id[gone]
                removed.add(gone)
                if gone in added:
                    added.remove(gone)
            else:  # read or unread
                i = rnd.choice(sorted(folder.by_id))
                row = folder.by_id[i]
                flags = "" if "\\Seen" in row[2] else "\\Seen"
                folder.by_id[i] = (row[0], row[1], flags, *row[3:])  # type: ignore[assignment]
        # what was added and removed again in one round never existed for the grouping
        removed = {i for i in removed if i in grouped}
        grouped.fold(folder, added, removed, folder.unread())
        _check_same(grouped, folder)


def _row(n: int, msgid: str, irt: str = "", subject: str = "", when: float = 0.0) -> Row:
    return (n, when or float(n), "\\Seen", msgid, irt, irt, subject)


def test_a_reply_joins_and_a_parent_arriving_late_joins_its_replies() -> None:
    folder = Folder()
    for row in (_row(1, "<a@x>"), _row(2, "<c@x>", "<b@x>"), _row(3, "<d@x>", "<b@x>")):
        folder.by_id[row[0]] = row
    grouped = Conversations(folder.all())
    assert [t.ids for t in grouped.threads] == [(3, 2), (1,)]  # siblings: a parent not here
    folder.by_id[4] = _row(4, "<e@x>", "<a@x>")  # a reply to a
    folder.by_id[5] = _row(5, "<b@x>", when=0.5)  # the missing parent, older than all
    assert grouped.fold(folder, [4, 5], [], set()) == 5
    assert [t.ids for t in grouped.threads] == [(4, 1), (3, 2, 5)]
    del folder.by_id[5]  # the parent leaves again: its replies still share its name
    grouped.fold(folder, [], [5], set())
    assert [t.ids for t in grouped.threads] == [(4, 1), (3, 2)]
    del folder.by_id[1]
    grouped.fold(folder, [], [1], set())
    assert [t.ids for t in grouped.threads] == [(4,), (3, 2)]


def test_a_new_original_takes_over_the_replies_by_subject() -> None:
    folder = Folder()
    rows = [_row(1, "<1@x>", subject="Lunch?"), _row(2, "<2@x>", subject="Re: lunch?")]
    for row in rows:
        folder.by_id[row[0]] = row
    grouped = Conversations(folder.all())
    assert [t.ids for t in grouped.threads] == [(2, 1)]
    folder.by_id[3] = _row(3, "<3@x>", subject="lunch?", when=1.5)  # newer original
    grouped.fold(folder, [3], [], set())
    _check_same(grouped, folder)
    assert [t.ids for t in grouped.threads] == [(2, 3), (1,)]


def test_unread_counts_follow_without_regrouping() -> None:
    folder = Folder()
    for row in (_row(1, "<a@x>"), _row(2, "<b@x>", "<a@x>"), _row(3, "<z@x>")):
        folder.by_id[row[0]] = row
    grouped = Conversations(folder.all())
    folder.by_id[1] = (1, 1.0, "", "<a@x>", "", "", "")
    assert grouped.fold(folder, [], [], {1}) == 0  # nothing grouped again
    assert [(t.ids, t.unread) for t in grouped.threads] == [((3,), 0), ((2, 1), 1)]
    _check_same(grouped, folder)


def _mail(msgid: str, subject: str, day: int, irt: str = "") -> bytes:
    head = f"Message-ID: {msgid}\r\nSubject: {subject}\r\nFrom: a@example.org\r\n"
    head += f"Date: {day:02d} Jan 2026 10:00:00 +0000\r\n"
    if irt:
        head += f"In-Reply-To: {irt}\r\nReferences: {irt}\r\n"
    return (head + "\r\nbody\r\n").encode()


def test_folder_conversations_follow_the_store(tmp_path: Path) -> None:
    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    with Store.open(paths) as store:
        inbox = store.folder("acct", "INBOX", role="inbox")
        other = store.folder("acct", "Other")
        root = store.add_bytes(inbox, _mail("<a@x>", "plan", 1), flags={"\\Seen"})
        store.add_bytes(inbox, _mail("<s@x>", "solo", 2))
        store.add_bytes(other, _mail("<o@x>", "elsewhere", 3))
        live = FolderConversations("acct", "INBOX")
        first = live.refresh(store)
        assert first.full and live.threads == folder_threads(store, "acct", "INBOX")

        same = live.refresh(store)
        assert not same.full and same.added == same.removed == same.regrouped == 0

        reply = store.add_bytes(inbox, _mail("<b@x>", "Re: plan", 4, "<a@x>"))
        store.add_bytes(other, _mail("<o2@x>", "Re: plan", 5, "<a@x>"))  # another folder
        step = live.refresh(store)
        assert (step.full, step.added, step.removed, step.regrouped) == (False, 1, 0, 2)
        assert live.threads == folder_threads(store, "acct", "INBOX")
        assert live.threads[0].ids == (reply.id, root.id) and live.threads[0].unread == 1

        store.set_flags(store.lookup(str(reply.id)), {"\\Seen"})
        step = live.refresh(store)
        assert step.regrouped == 0 and live.threads[0].unread == 0

        store.remove(store.lookup(str(root.id)))  # a tombstone: gone = 1
        step = live.refresh(store)
        assert (step.full, step.removed) == (False, 1)
        assert live.threads == folder_threads(store, "acct", "INBOX")

        moved = store.move(store.lookup(str(reply.id)), other)  # the row is deleted here
        step = live.refresh(store)
        assert step.removed == 1 and live.threads == folder_threads(store, "acct", "INBOX")
        assert moved.id not in {i for t in live.threads for i in t.ids}

        # several gone at once (another program expunged them): found by their IDs
        more = [store.add_bytes(inbox, _mail(f"<m{n}@x>", "more", 10 + n)) for n in range(4)]
        assert live.refresh(store).added == 4
        for message in more[:3]:
            store.forget(message.id)
        store.commit()
        step = live.refresh(store)
        assert (step.full, step.added, step.removed) == (False, 0, 3)
        assert live.threads == folder_threads(store, "acct", "INBOX")

        # the newest row removed and a new message arriving: SQLite gives it the same row ID
        last = store.add_bytes(inbox, _mail("<last@x>", "last", 20))
        live.refresh(store)
        store.forget(last.id)
        store.commit()
        reused = store.add_bytes(inbox, _mail("<c@x>", "Re: plan", 21, "<a@x>"))
        assert reused.id == last.id
        step = live.refresh(store)
        assert (step.added, step.removed) == (1, 1)
        assert live.threads == folder_threads(store, "acct", "INBOX")

        # a new UIDVALIDITY: grouped again from scratch
        store.update_folder(store.find_folder("acct", "INBOX"), uidvalidity=99)  # type: ignore[arg-type]
        store.commit()
        assert live.refresh(store).full
        assert live.threads == folder_threads(store, "acct", "INBOX")


def test_many_changes_group_the_folder_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "REGROUP_WHOLE_AT", 3)
    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    with Store.open(paths) as store:
        inbox = store.folder("acct", "INBOX", role="inbox")
        store.add_bytes(inbox, _mail("<a@x>", "plan", 1))
        live = FolderConversations("acct", "INBOX")
        assert live.refresh(store).full
        for n in range(3):
            store.add_bytes(inbox, _mail(f"<r{n}@x>", "Re: plan", 2 + n, "<a@x>"))
        assert not live.refresh(store).full  # three: folded in
        for n in range(4):
            store.add_bytes(inbox, _mail(f"<s{n}@x>", "Re: plan", 6 + n, "<a@x>"))
        assert live.refresh(store).full  # four: grouped whole
        assert live.threads == folder_threads(store, "acct", "INBOX")
        assert [t.size for t in live.threads] == [8]
        assert FolderConversations("acct", "Nope").refresh(store).full
