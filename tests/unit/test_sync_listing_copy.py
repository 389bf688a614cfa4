"""`_ListingCopy`: the copy of the flag listing a folder's index rows matched, kept beside
the index, gives exactly the settled rows the index would (flags as the index stores
them), and is taken only when it is sound: for the listing whose print the index
records, for this folder and UIDVALIDITY, with its bytes as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbag.store.index import Store
from mailbag.sync import imap as engine
from mailbag.sync.imap import _ListingCopy
from mailbag.sync.plan import RemoteListing

PRINT = "0123abcd4567ef01.420"


@pytest.fixture
def store(tmp_store: Store) -> Store:
    return tmp_store


def _listing() -> RemoteListing:
    listing = RemoteListing()
    for uid in range(1, 301):
        flags: tuple[str, ...] = ()
        if uid % 2:
            flags += ("\\Seen",)
        if uid % 7 == 0:
            flags += ("\\Flagged", "$Label1")
        if uid % 50 == 0:
            flags += ("\\Recent",)  # (never stored in the index)
        listing.add(uid, flags)
    return listing.finish()


def _rows(listing: RemoteListing) -> list[tuple[int, frozenset[str]]]:
    """What the index holds for the listing: its flags without \\Recent."""
    return [(uid, flags - {"\\Recent"}) for uid, flags in listing]


def _loaded(copy: _ListingCopy, listed: str, uidvalidity: int) -> list[tuple[int, frozenset[str]]]:
    early = copy.load(listed, uidvalidity)
    assert early is not None
    assert early.rest_after is None
    return [(uid, early.sets[n]) for uid, n in zip(early.uids, early.ids, strict=True)]


def test_a_copy_gives_the_rows_as_the_index_holds_them(store: Store) -> None:
    listing = _listing()
    copy = _ListingCopy(store, 7)
    copy.save(PRINT, 99, listing)
    listings = Path(store_file(store)).parent / "listings"
    assert [p.name for p in listings.iterdir()] == [f"7.{PRINT}"]
    assert _loaded(copy, PRINT, 99) == _rows(listing)
    assert _loaded(_ListingCopy(store, 7), PRINT, 99) == _rows(listing)  # (read again)
    # the copy of the next listing replaces it (another folder's stays)
    _ListingCopy(store, 17).save(PRINT, 99, listing)
    later = RemoteListing.of({uid: flags for uid, flags in listing if uid % 3})
    copy.save("feedfeedfeedfeed.123", 99, later)
    # (the old copy goes with the sync's other removals, at its end)
    assert copy.load(PRINT, 99) is not None
    store.finish_removals()
    assert sorted(p.name for p in listings.iterdir()) == ["17." + PRINT, "7.feedfeedfeedfeed.123"]
    assert copy.load(PRINT, 99) is None
    assert _loaded(copy, "feedfeedfeedfeed.123", 99) == _rows(later)


def store_file(store: Store) -> str:
    return next(f for _, name, f in store.conn.execute("PRAGMA database_list") if name == "main")


def test_a_copy_of_another_listing_folder_or_uidvalidity_is_not_taken(store: Store) -> None:
    copy = _ListingCopy(store, 7)
    copy.save(PRINT, 99, _listing())
    data = copy.path(PRINT).read_bytes()
    assert copy.load("0123abcd4567ef01.421", 99) is None  # another listing
    assert copy.load(PRINT, 98) is None  # another UIDVALIDITY (and removed)
    assert not copy.path(PRINT).exists()
    copy.save(PRINT, 99, _listing())
    assert copy.load(PRINT, None) is None
    other = _ListingCopy(store, 8)
    other.path(PRINT).write_bytes(data)  # (another folder's file)
    assert other.load(PRINT, 99) is None
    other.path(PRINT + "0").write_bytes(data)  # (another listing's, under this name)
    assert other.load(PRINT + "0", 99) is None
    copy.save(PRINT, 99, _listing())
    assert copy.load(PRINT, 99) is not None


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend", "empty", "head"])
def test_a_damaged_copy_is_not_taken(store: Store, damage: str) -> None:
    # (the file is not flushed: a crash may leave it torn or empty)
    copy = _ListingCopy(store, 7)
    copy.save(PRINT, 99, _listing())
    data = bytearray(copy.path(PRINT).read_bytes())
    if damage == "flip":
        data[-5] ^= 0x01  # one bit of a flag set's number
    elif damage == "truncate":
        del data[-4:]
    elif damage == "extend":
        data += b"\x00\x00\x00\x00\x00\x00"
    elif damage == "empty":
        data = bytearray()
    else:
        data[:5] = b"xxxxx"
    copy.path(PRINT).write_bytes(bytes(data))
    assert copy.load(PRINT, 99) is None
    assert not copy.path(PRINT).exists()  # (removed: the next sync writes it again)
    copy.save(PRINT, 99, _listing())
    assert copy.load(PRINT, 99) is not None


def test_no_copy_where_there_is_none_to_take(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_COPY_MAX", 1000)
    copy = _ListingCopy(store, 7)
    assert copy.load(PRINT, 99) is None  # (no file)
    copy.save(PRINT, 99, _listing())
    assert copy.path(PRINT).exists()
    copy.save("0" + PRINT, 99, RemoteListing().finish())  # an empty folder: nothing to keep
    store.finish_removals()
    assert not list(copy.dir.iterdir())
    copy.save(PRINT, 99, _listing())
    big = RemoteListing()
    big.extend(list(range(1, 1002)), [()] * 1001)
    copy.save("1" + PRINT, 99, big.finish())  # more than a copy is kept for
    store.finish_removals()
    assert not list(copy.dir.iterdir())
    copy.save(PRINT, 99, _listing())
    many = RemoteListing()
    for uid in range(1, 0x10002):
        many.add(uid, (f"$k{uid}",))  # more distinct flag sets than a copy numbers
    copy.save("2" + PRINT, 99, many.finish())
    store.finish_removals()
    assert not list(copy.dir.iterdir())


def test_a_folder_bigger_than_the_rows_read_early_has_its_copy(store: Store) -> None:
    # (a copy is read in ~6 bytes a message, straight into its arrays: a folder of
    # 200,000 messages is read from it, not from the index)
    n = engine._EARLY_MAX + 50_000
    big = RemoteListing()
    big.extend(list(range(1, n + 1)), [("\\Seen",) if uid % 3 else () for uid in range(1, n + 1)])
    big.finish()
    copy = _ListingCopy(store, 7)
    copy.save(PRINT, 99, big)
    early = copy.load(PRINT, 99)
    assert early is not None and early.rest_after is None
    assert len(early.uids) == n and early.uids[-1] == n
    assert [early.sets[early.ids[i]] for i in (0, 1, 2, n - 1)] == [
        frozenset({"\\Seen"}),
        frozenset({"\\Seen"}),
        frozenset(),
        frozenset({"\\Seen"}) if n % 3 else frozenset(),
    ]
