"""The index rows a server kept under a new UIDVALIDITY, found a run of answers at a time:
what pairing a folder again (`repair`) need not look at message by message.

Servers often keep their UIDs when only the UIDVALIDITY changes (Dovecot does, a
restored backup may): then most index rows are, once more, the message the server
lists under their UID, with their Message-ID, size and flags (as last synced). Such a
row is paired again with that message by the same UID, and stays as it is. Found one
by one (a row read into Python, a dict of identities, a pairing kept in memory, then
written back for the check) that cost ~15 us a message, most of a re-pair's time.
Here the usual identity answers come as runs of their bytes on the wire
(`parser.IdentityRun`), the index gives the rows of the same UID range as strings
joined by SQLite (`IndexSide.columns`), and a whole run is compared in a few string
comparisons. Where a run and its rows differ, they are compared one by one
(`IndexSide.rows`); what is not kept is left to the planner (`repair.plan_repair`): the
server messages as `RemoteIdentity`s (`Leftovers`), the rows by the UID ranges they
are in (`Kept.open`).

Why pairing by the same UID may differ from the planner's rule (the k-th of an
identity here with the k-th there) and is right all the same: the planner's rule is
for messages of the same Message-ID and size, which are taken for the same message;
any one-to-one pairing among them is as good. Here a row is paired with one message
only (a UID the listing gives twice is not kept: `Kept.holds`), and each message with
one row (a UID is one row's in a folder).

Nothing here writes; memory: 4 bytes a row kept one by one, and a few per range.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from mailbag.protocols.imap.parser import IdentityRun
from mailbag.record import NamedTuple, Record
from mailbag.sync.plan import _U32, IGNORED_FLAGS

if TYPE_CHECKING:
    import sqlite3

    from mailbag.protocols.imap.parser import IdentityItem, UidIdentity
    from mailbag.store.index import Folder, Store
    from mailbag.sync.repair import RemoteIdentity

__all__ = [
    "NO_END",
    "IndexColumns",
    "IndexRow",
    "IndexSide",
    "Kept",
    "Leftovers",
    "StoreSide",
    "find_kept",
]

#: the end of the last UID range (above any UID)
NO_END = 1 << 32


class IndexColumns(NamedTuple):
    """An index's rows of a UID range, in UID order, as SQLite joins them: how many,
    their UIDs and sizes (comma separated), Message-IDs and flags (one a line), and
    `odd`, a "1" for each that cannot be kept as it is (flags not as last synced,
    deleted or moved here, no Message-ID with an "@" (`repair._named`), no size), else a
    "0"."""

    rows: int
    uids: str
    sizes: str
    message_ids: str
    flags: str
    odd: str


class IndexRow(NamedTuple):
    uid: int
    size: int | None
    message_id: str | None
    flags: str
    synced_flags: str | None
    gone: int
    moved_from_uid: int | None


class IndexSide(Protocol):
    """A folder's rows in the index, by UID range (`after` < UID <= `upto`)."""

    def columns(self, after: int, upto: int, limit: int) -> IndexColumns:
        """The rows (at most `limit`, the lowest UIDs)."""
        ...

    def rows(self, after: int, upto: int, limit: int) -> Iterable[IndexRow]: ...

    def has_uid(self, uid: int) -> bool: ...


class StoreSide:
    """`IndexSide` of a folder in a store."""

    def __init__(self, store: Store, folder: Folder) -> None:
        self.store, self.folder = store, folder

    def columns(self, after: int, upto: int, limit: int) -> IndexColumns:
        return IndexColumns(*self.store.uid_range_columns(self.folder, after, upto, limit))

    def rows(self, after: int, upto: int, limit: int) -> list[IndexRow]:
        return [IndexRow(*r) for r in self.store.uid_range_rows(self.folder, after, upto, limit)]

    def has_uid(self, uid: int) -> bool:
        return self.store.has_uid(self.folder, uid)


class Kept(Record):
    """The rows kept as they are: all those with UIDs outside the `open` ranges
    (`(after, upto]`, ascending, the last one up to NO_END), and within them those of
    `uids` (ascending). `count`: how many."""

    __slots__ = ("count", "open", "uids")
    count: int
    open: list[tuple[int, int]]
    uids: array[int]

    def __init__(self) -> None:
        self.count = 0
        self.open = []
        self.uids = array(_U32)

    def opened(self, after: int, upto: int) -> None:
        if self.open and self.open[-1][1] == after:
            self.open[-1] = (self.open[-1][0], upto)  # (adjacent: one range)
        else:
            self.open.append((after, upto))

    def in_open(self, uid: int) -> bool:
        i = bisect.bisect_left(self.open, (uid, 0)) - 1
        return i >= 0 and self.open[i][0] < uid <= self.open[i][1]

    def has(self, uid: int) -> bool:
        """Whether `uid` is one kept within the open ranges."""
        i = bisect.bisect_left(self.uids, uid)
        return i < len(self.uids) and self.uids[i] == uid


class _Flags:
    """Flag texts on the wire as the index writes them (`flags_text` of the flags but
    the ignored ones), and as the planner takes them; a folder has few."""

    def __init__(self) -> None:
        self.text: dict[bytes, bytes] = {}
        self.sets: dict[bytes, frozenset[str]] = {}

    def texts(self, raw: Sequence[bytes]) -> Iterator[bytes]:
        text = self.text
        for r in set(raw).difference(text):
            text[r] = " ".join(sorted(self.set_of(r) - IGNORED_FLAGS)).encode("latin-1")
        return map(text.__getitem__, raw)

    def set_of(self, raw: bytes) -> frozenset[str]:
        got = self.sets.get(raw)
        if got is None:
            got = self.sets[raw] = frozenset(raw.decode("latin-1").split())
        return got


#: listed messages compared with the index at once (one query for their UID range)
_BATCH = 2048
#: index rows read for a batch at most. A batch's UID range may hold many more rows
#: than it has messages (a server that renumbered its messages, or expunged most of
#: them): all of them read at once made the memory grow with the folder (every row of a
#: 200,000 message folder in one query, where the server's new UIDs started above the
#: old ones). Rows past it stay in an open range, as any not kept (`Kept.open`).
_ROWS_AT_MOST = 2 * _BATCH


class _Run(NamedTuple):
    run: IdentityRun
    uids: list[int]


class _Batch:
    """Listed messages in ascending UID order, waiting to be compared: runs (with their
    UIDs as numbers) and answers of other shapes, in the order they came."""

    def __init__(self) -> None:
        self.parts: list[_Run | UidIdentity] = []
        self.size = 0
        self.first = 0
        self.last = 0

    def add(self, part: _Run | UidIdentity, n: int, first: int, last: int) -> None:
        if not self.parts:
            self.first = first
        self.parts.append(part)
        self.size += n
        self.last = last


def find_kept(
    items: Iterable[Sequence[IdentityItem]],
    index: IndexSide,
    excluded: set[int],
    leftover: Callable[[RemoteIdentity], None],
) -> Kept:
    """The rows kept (see the module), from the server's identity answers (`items`, in
    batches, in the order they came); each server message not paired so goes to
    `leftover` in that order (but those excluded, and a UID given again whose row is
    kept), with its Message-ID as `message_id_of` reads it."""
    kept = Kept()
    flags = _Flags()
    after = 0  # the UIDs up to here are in ranges compared
    ordered = True  # UIDs came ascending so far (else nothing more is kept)
    batch = _Batch()

    def again(uid: int) -> bool:
        # a UID given twice, its row kept already: its first answer counts
        if kept.in_open(uid):
            return kept.has(uid)
        return uid <= after and index.has_uid(uid)

    def left(uid: int, names: frozenset[str], message_id: str, size: int) -> None:
        if uid not in excluded and (ordered or not again(uid)):
            leftover((uid, names, message_id, size))

    def flush() -> None:
        nonlocal after, batch
        if batch.parts:
            _compare(batch, after, index, flags, excluded, kept, left)
            after = batch.last
            batch = _Batch()

    for got in items:
        for item in got:
            if isinstance(item, IdentityRun):
                uids = list(map(int, item.uids))
                first, last, n = uids[0], uids[-1], len(uids)
                if ordered and not all(map(operator.lt, uids, itertools.islice(uids, 1, None))):
                    first = 0  # (not ascending within)
                part: _Run | UidIdentity = _Run(item, uids)
            else:
                first = last = item[0]
                n = 1
                part = _as_run(item)
            if ordered and first <= (batch.last or after):
                flush()
                ordered = False
            if ordered:
                batch.add(part, n, first, last)
                if batch.size >= _BATCH:
                    flush()
            else:
                _leave(part, flags, left)
    flush()
    kept.opened(after, NO_END)
    return kept


def _as_run(item: UidIdentity) -> _Run | UidIdentity:
    """An answer of another shape (a header block on several lines, or cut by a read)
    as a run of one when it has a Message-ID with an "@" (as `message_id_of` reads it),
    else as it is (its row, if any, is not kept)."""
    from mailbag.store.envelope import message_id_of

    uid, names, size, head = item
    mid = message_id_of(head)
    if "@" not in mid:
        return item
    raw = " ".join(names).encode("latin-1")
    run = IdentityRun((str(uid).encode(),), (raw,), (str(size).encode(),), (mid.encode(),))
    return _Run(run, [uid])


def _leave(
    part: _Run | UidIdentity,
    flags: _Flags,
    left: Callable[[int, frozenset[str], str, int], None],
) -> None:
    """Every message of `part` to the planner."""
    if isinstance(part, _Run):
        run, uids = part
        for uid, raw, mid, size in zip(uids, run.flags, run.message_ids, run.sizes, strict=True):
            left(uid, flags.set_of(raw), mid.decode(), int(size))
    else:
        from mailbag.store.envelope import message_id_of

        uid, names, size_n, head = part
        left(uid, frozenset(names), message_id_of(head), size_n)


def _compare(
    batch: _Batch,
    after: int,
    index: IndexSide,
    flags: _Flags,
    excluded: set[int],
    kept: Kept,
    left: Callable[[int, frozenset[str], str, int], None],
) -> None:
    """Compare a batch with the index's rows of its UID range (after, batch.last]: the
    runs in a row (the scanner cuts them where a read ended) are compared as one, else
    each alone, else message by message; the rows of a run equal to them are kept but
    those `odd` (their messages go to the planner), and the UID ranges of rows not kept
    whole are opened (`Kept.open`). The rows below the batch's first UID cannot be kept
    by it: they are not read (but opened)."""
    rows = _Rows(index, max(after, batch.first - 1), batch.last)
    cursor = after
    parts = batch.parts
    i = 0
    while i < len(parts):
        part = parts[i]
        if not isinstance(part, _Run):
            _leave(part, flags, left)  # (its row, if any, stays in an open range)
            i += 1
            continue
        j = i + 1
        while j < len(parts) and isinstance(parts[j], _Run):
            j += 1
        runs = cast("list[_Run]", parts[i:j])
        i = j
        if len(runs) > 1:
            whole = _joined(runs)
            span = rows.span(whole, flags, excluded)
            if span is not None:
                cursor = _keep(whole, span, rows, flags, kept, left, cursor)
                continue
        for run in runs:
            span = rows.span(run, flags, excluded)
            if span is not None:
                cursor = _keep(run, span, rows, flags, kept, left, cursor)
            else:
                rows.one_by_one(run, flags, excluded, kept, left)
    if cursor < batch.last:
        kept.opened(cursor, batch.last)


def _joined(runs: Sequence[_Run]) -> _Run:
    """Runs one after the other as one."""
    chain = itertools.chain.from_iterable
    return _Run(
        IdentityRun(
            tuple(chain(r.run.uids for r in runs)),
            tuple(chain(r.run.flags for r in runs)),
            tuple(chain(r.run.sizes for r in runs)),
            tuple(chain(r.run.message_ids for r in runs)),
        ),
        list(chain(r.uids for r in runs)),
    )


def _keep(
    part: _Run,
    span: tuple[int, int],
    rows: _Rows,
    flags: _Flags,
    kept: Kept,
    left: Callable[[int, frozenset[str], str, int], None],
    cursor: int,
) -> int:
    """Keep the rows `span` of a run equal to them (`_Rows.span`) but those `odd`, whose
    messages go to the planner; the new cursor (the end of the ranges compared)."""
    run, uids = part
    odd = rows.cols.odd[span[0] : span[1]]
    if uids[0] - 1 > cursor:
        kept.opened(cursor, uids[0] - 1)
    k = odd.find("1")
    kept.count += len(uids) - (0 if k < 0 else odd.count("1"))
    while k >= 0:
        # (the range of its UID alone: the rows of the span are the run's UIDs)
        kept.opened(uids[k] - 1, uids[k])
        left(uids[k], flags.set_of(run.flags[k]), run.message_ids[k].decode(), int(run.sizes[k]))
        k = odd.find("1", k + 1)
    return uids[-1]


class _Rows:
    """The index's rows of a batch's UID range (after, upto] (`IndexSide.columns`),
    split into values only when a run is not compared with all of them at once."""

    def __init__(self, index: IndexSide, after: int, upto: int) -> None:
        self.index, self.after, self.upto = index, after, upto
        self.cols = index.columns(after, upto, _ROWS_AT_MOST)
        self._split: tuple[list[int], list[str], list[str], list[str]] | None = None
        self._at: dict[int, int] | None = None  # row by UID, made when needed
        self._rows: dict[int, IndexRow] | None = None  # (a value had a separator)

    def _values(self) -> tuple[list[int], list[str], list[str], list[str]] | None:
        """UIDs, sizes, Message-IDs, flags, one a row; None when a value had a
        separator."""
        if self._split is None:
            cols, n = self.cols, self.cols.rows
            ids = cols.uids.split(",") if n else []
            sizes = cols.sizes.split(",") if n else []
            mids = cols.message_ids.split("\n") if n else []
            texts = cols.flags.split("\n") if n else []
            if not len(ids) == len(sizes) == len(mids) == len(texts) == len(cols.odd) == n:
                return None
            self._split = (list(map(int, ids)), sizes, mids, texts)
        return self._split

    def span(self, part: _Run, flags: _Flags, excluded: set[int]) -> tuple[int, int] | None:
        """(a, b) when the rows [a:b] are the run's messages, with their UIDs, sizes,
        Message-IDs and flags (whatever their `odd`) and none excluded; else None."""
        run, uids = part
        if excluded and not excluded.isdisjoint(uids):
            return None
        cols = self.cols
        if len(uids) == cols.rows:
            # all the rows: compared as SQLite joined them (the values on the wire have no
            # separator, so equal texts of as many values are equal values)
            if (
                b",".join(run.uids) == cols.uids.encode("ascii")
                and b",".join(run.sizes) == cols.sizes.encode("ascii")
                and b"\n".join(run.message_ids) == cols.message_ids.encode("utf-8")
                and b"\n".join(flags.texts(run.flags)) == cols.flags.encode("utf-8")
            ):
                return 0, len(uids)
            return None
        values = self._values()
        if values is None:
            return None
        ids, sizes, mids, texts = values
        a = bisect.bisect_left(ids, uids[0])
        b = bisect.bisect_right(ids, uids[-1])
        if (
            ids[a:b] == uids
            and ",".join(sizes[a:b]).encode("ascii") == b",".join(run.sizes)
            and "\n".join(mids[a:b]).encode("utf-8") == b"\n".join(run.message_ids)
            and "\n".join(texts[a:b]).encode("utf-8") == b"\n".join(flags.texts(run.flags))
        ):
            return a, b
        return None

    def one_by_one(
        self,
        part: _Run,
        flags: _Flags,
        excluded: set[int],
        kept: Kept,
        left: Callable[[int, frozenset[str], str, int], None],
    ) -> None:
        """Compare a run's messages each with the row of its UID."""
        run, uids = part
        values = self._values()
        if values is not None and self._at is None:
            self._at = {uid: i for i, uid in enumerate(values[0])}
        if values is None and self._rows is None:
            self._rows = {r.uid: r for r in self.index.rows(self.after, self.upto, _ROWS_AT_MOST)}
        odd = self.cols.odd
        for uid, raw, text, mid, size_b in zip(
            uids, run.flags, flags.texts(run.flags), run.message_ids, run.sizes, strict=True
        ):
            size = int(size_b)
            if uid in excluded:
                same = False
            elif values is not None:
                assert self._at is not None
                _, sizes, mids, texts = values
                i = self._at.get(uid, -1)
                same = (
                    i >= 0
                    and odd[i] == "0"
                    and sizes[i] == str(size)
                    and mids[i].encode("utf-8") == mid
                    and texts[i].encode("utf-8") == text
                )
            else:
                assert self._rows is not None
                r = self._rows.get(uid)
                same = (
                    r is not None
                    and r.size == size
                    and r.message_id is not None
                    and r.message_id.encode("utf-8") == mid
                    and b"@" in mid
                    and r.flags.encode("utf-8") == text
                    and r.synced_flags == r.flags
                    and not r.gone
                    and r.moved_from_uid is None
                )
            if same:
                kept.uids.append(uid)
                kept.count += 1
            else:
                left(uid, flags.set_of(raw), mid.decode(), size)


class Leftovers:
    """The server messages `find_kept` leaves, in order: in a list, past `limit` in a
    private temporary SQLite database (memory stays bounded when few are kept, as after
    a server renumbered its messages)."""

    # 1,000: what waits in the list stops growing there (at 10,000 a folder of 8,000
    # messages without a Message-ID, all left over, peaked 1.5 MB above one of 1,000)
    def __init__(self, limit: int = 1_000) -> None:
        self.limit = limit
        self.items: list[RemoteIdentity] = []
        self.db: sqlite3.Connection | None = None
        self._flag_ids: dict[frozenset[str], int] = {}
        self._flag_sets: list[frozenset[str]] = []
        self.count = 0

    def add(self, item: RemoteIdentity) -> None:
        self.count += 1
        self.items.append(item)
        if len(self.items) >= self.limit:
            self._spill()

    def _spill(self) -> None:
        from mailbag.sync.repair import _private_db

        if self.db is None:
            self.db = _private_db()
            self.db.execute(
                "CREATE TABLE there(pos INTEGER PRIMARY KEY, uid INTEGER NOT NULL, "
                "flags INTEGER NOT NULL, mid TEXT, size INTEGER)"
            )
        ids = self._flag_ids
        rows = []
        for uid, names, mid, size in self.items:
            fs = names if isinstance(names, frozenset) else frozenset(names)
            n = ids.get(fs)
            if n is None:
                n = ids[fs] = len(self._flag_sets)
                self._flag_sets.append(fs)
            rows.append((uid, n, mid, size))
        self.db.executemany("INSERT INTO there(uid, flags, mid, size) VALUES (?,?,?,?)", rows)
        self.items.clear()

    def __iter__(self) -> Iterator[RemoteIdentity]:
        if self.db is not None:
            sets = self._flag_sets
            for uid, n, mid, size in self.db.execute(
                "SELECT uid, flags, mid, size FROM there ORDER BY pos"
            ):
                yield uid, sets[n], mid, size
        yield from self.items

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
