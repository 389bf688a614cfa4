"""`_remote_state`: a folder's server side after a QRESYNC SELECT, from the index's paired
rows with the server's changes (VANISHED and the FETCHes of changed flags) put in their
places: what a full `UID FETCH 1:* (FLAGS)` would list, in a few bytes a message."""

from __future__ import annotations

from pathlib import Path

from mailbag.paths import Paths
from mailbag.protocols.imap.client import SelectResult
from mailbag.protocols.imap.parser import FetchResult, UidSet
from mailbag.store.index import Folder, Store
from mailbag.sync.imap import _remote_state
from memtools import least_of_three, traced_peak


def _store(home: Path, uids: range) -> tuple[Store, Folder]:
    store = Store.open(Paths(config_dir=home, data_dir=home / "data", state_dir=home / "state"))
    folder = store.folder("acct", "INBOX")
    store.update_folder(folder, uidvalidity=9, highestmodseq=5, messages=len(uids))
    store.conn.executemany(
        "INSERT INTO messages (folder_id, uid, key, flags, synced_flags, size, date, added) "
        "VALUES (?, ?, ?, '\\Seen', ?, 10, 0, 0)",
        ((folder.id, uid, f"k{uid}", "\\Seen" if uid % 2 else "") for uid in uids),
    )
    store.commit()
    found = store.find_folder("acct", "INBOX")
    assert found is not None
    return store, found


def _select(exists: int, vanished: list[int], changed: dict[int, tuple[str, ...]]) -> SelectResult:
    return SelectResult(
        "INBOX",
        exists=exists,
        uidvalidity=9,
        highestmodseq=6,
        vanished=UidSet([(u, u) for u in vanished]),
        changed=[FetchResult(0, uid=u, flags=f) for u, f in changed.items()],
    )


def test_the_changes_are_put_in_their_places(tmp_path: Path) -> None:
    store, folder = _store(tmp_path, range(3, 40, 3))  # 3, 6, ..., 39
    try:
        # changed flags of paired rows (first, in the middle, last), new messages before,
        # between and after the rows, one given twice (the later FETCH counts), and
        # vanished ones
        changed = {3: ("\\Flagged",), 1: (), 20: ("a",), 39: (), 41: ("b",), 13: ("x",)}
        fetches = [FetchResult(0, uid=u, flags=f) for u, f in changed.items()]
        fetches.insert(0, FetchResult(0, uid=20, flags=("old",)))
        fetches.append(FetchResult(0, uid=None, flags=("\\Seen",)))  # (no UID: not counted)
        sel = _select(0, [9, 12, 30], {})
        sel.changed = fetches
        want = {uid: frozenset({"\\Seen"} if uid % 2 else set()) for uid in range(3, 40, 3)}
        for uid, flags in changed.items():
            want[uid] = frozenset(flags)
        for uid in (9, 12, 30):
            del want[uid]
        sel.exists = len(want)
        got_sel, listing = _remote_state(None, store, folder, sel)  # type: ignore[arg-type]
        assert got_sel is sel
        assert list(listing) == sorted(want.items())
    finally:
        store.close()


def _peak(store: Store, folder: Folder) -> int:
    """Peak traced memory of the server side of a folder of paired messages (UIDs 1 to
    `folder.messages`) where the server changed the flags of 1% and expunged 1%."""
    n = folder.messages or 0
    changed = {uid: ("\\Seen", "\\Flagged") for uid in range(50, n + 1, 100)}
    vanished = list(range(7, n + 1, 100))
    sel = _select(n - len(vanished), vanished, changed)
    peak, (_, listing) = traced_peak(
        lambda: _remote_state(None, store, folder, sel)  # type: ignore[arg-type]
    )
    assert len(listing) == n - len(vanished)
    return peak


def test_the_server_side_from_the_index_keeps_a_few_bytes_a_message(tmp_path: Path) -> None:
    stores = [_store(tmp_path / str(n), range(1, n + 1)) for n in (1000, 20_000, 60_000)]
    try:
        _peak(*stores[0])  # (what is imported or cached on first use is not counted)
        # the listing's 8 bytes a message (and its arrays' spare room); with the changes
        # after the rows, the listing was sorted whole: ~80 bytes a message, 16 by halves
        per_message = least_of_three(lambda: (_peak(*stores[2]) - _peak(*stores[1])) / 40_000, 12)
        assert per_message < 12, per_message
    finally:
        for store, _ in stores:
            store.close()
