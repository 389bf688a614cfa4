"""What one folder's sync must do, decided from three states: a pure function.

`plan(local, last_synced, remote)` compares the local folder (index rows and
the files found on disk), the state both sides agreed on at the last sync, and
the server's folder, and returns the list of actions that makes both sides
equal. It does no I/O, so the whole case matrix is unit-tested with values.

Rules it keeps (each one from a way other tools lost mail):
- missing local state is never evidence of deletion: a folder directory that
  is gone is downloaded again, a message the index does not know is paired by
  Message-ID and size before anything is uploaded or downloaded;
- a UIDVALIDITY change deletes nothing on either side: messages are paired
  again by Message-ID and size, only what is really new moves;
- more than `threshold` deletions on one side stop the plan (`Stop`) with an
  explanation, unless `force`;
- flags merge three ways against the last synced flags; with no base (a new
  pairing) they are united, so no flag is ever lost.
"""

from __future__ import annotations

import functools
import itertools
import operator
from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from mailbag.record import FrozenRecord, NamedTuple, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mailbag.sync.keep import Kept
    from mailbag.sync.repair import Digests

__all__ = [
    "Action",
    "Delete",
    "DeleteLocal",
    "Download",
    "ExpungeRemote",
    "Forget",
    "LocalMessage",
    "Merge",
    "Pair",
    "Pairs",
    "Plan",
    "RemoteFolder",
    "RemoteListing",
    "RemoteMessage",
    "SetFlags",
    "Stop",
    "SyncedState",
    "Upload",
    "merge_flags",
    "needs_identity",
    "plan",
    "plan_stream",
    "repair_note",
]

#: flags that are never synced: session-only or server-managed
IGNORED_FLAGS = frozenset({"\\Recent"})
_RECENT = "\\Recent"


# The values here are records (mailbag.record), not dataclasses: building 13 dataclasses
# and loading `dataclasses` (with inspect, ast, dis, tokenize) cost ~15 ms of every sync
# that has something to do. `LocalMessage` is a NamedTuple: a full folder read makes one
# per index row, and a tuple is the quickest to make. The frozen records set their
# fields with `_put` (`object.__setattr__`, as a frozen dataclass's `__init__` does).
_put = object.__setattr__


class LocalMessage(NamedTuple):
    """A message as the local side knows it."""

    row: int | None  # index row; None: a file the index does not know (yet)
    key: str
    uid: int | None  # server UID it is paired with, per the index
    flags: frozenset[str]
    present: bool  # its file is on disk
    message_id: str = ""
    size: int | None = None
    synced_flags: frozenset[str] | None = None  # from the index; None: never synced


class RemoteMessage(FrozenRecord):
    __slots__ = ("flags", "message_id", "size", "uid")
    uid: int
    flags: frozenset[str]
    message_id: str | None  # None: not fetched (only fetched when needed)
    size: int | None

    def __init__(
        self,
        uid: int,
        flags: frozenset[str],
        message_id: str | None = None,
        size: int | None = None,
    ) -> None:
        _put(self, "uid", uid)
        _put(self, "flags", flags)
        _put(self, "message_id", message_id)
        _put(self, "size", size)


class RemoteFolder(FrozenRecord):
    __slots__ = ("messages", "uidvalidity")
    uidvalidity: int
    messages: Mapping[int, RemoteMessage]  # every message now on the server

    def __init__(self, uidvalidity: int, messages: Mapping[int, RemoteMessage]) -> None:
        _put(self, "uidvalidity", uidvalidity)
        _put(self, "messages", messages)


class _TupleIds(dict[tuple[str, ...], int]):
    """Flag tuples -> their set's number in a `RemoteListing` (filled on first use)."""

    __slots__ = ("listing",)

    def __init__(self, listing: RemoteListing) -> None:
        super().__init__()
        self.listing = listing

    def __missing__(self, key: tuple[str, ...]) -> int:
        n = self[key] = self.listing._set_id(frozenset(key))
        return n


#: array type codes of at least 32 bits (IMAP UIDs are 32-bit)
_U32 = "I" if array("I").itemsize >= 4 else "L"
#: the number of no flag set in a `RemoteListing` (they are counted from 0)
_NO_SET = 0xFFFFFFFF


class RemoteListing:
    """Every message of a server folder as (UID, flags), compact, for a full folder
    read: UIDs in one array, flags as numbers into a table of the distinct flag sets
    (a folder has few). About 8 bytes a message, where a dict of `RemoteMessage`
    took about 300 (a new frozenset each): at 200,000 messages 1.6 MB instead of
    60 MB. Filled with `add` in the server's order (ascending UIDs, as servers
    answer `UID FETCH 1:*`; any order is accepted and sorted), then `finish`."""

    __slots__ = ("_flag_ids", "_ids_of", "_sets", "_sorted", "_tuple_ids", "_uids")

    def __init__(self) -> None:
        self._uids = array(_U32)
        self._flag_ids = array(_U32)
        self._sets: list[frozenset[str]] = []
        self._ids_of: dict[frozenset[str], int] = {}
        self._tuple_ids = _TupleIds(self)
        self._sorted = True

    def _set_id(self, fs: frozenset[str]) -> int:
        n = self._ids_of.get(fs)
        if n is None:
            n = self._ids_of[fs] = len(self._sets)
            self._sets.append(fs)
        return n

    def extend(self, uids: Sequence[int], flags: Sequence[tuple[str, ...]]) -> None:
        """`add` for many messages at once, UIDs and flags side by side, in C loops (a
        20,000 message listing: ~11 ms less than by `add`); the flags as tuples the
        caller shares between messages (as a flag listing's are)."""
        if not uids:
            return
        if (self._uids and uids[0] <= self._uids[-1]) or not all(
            map(operator.lt, uids, itertools.islice(uids, 1, None))
        ):
            self._sorted = False
        self._uids.extend(uids)
        self._flag_ids.extend(map(self._tuple_ids.__getitem__, flags))

    @classmethod
    def of(cls, flags_by_uid: Mapping[int, Iterable[str]]) -> RemoteListing:
        listing = cls()
        for uid in sorted(flags_by_uid):
            listing.add(uid, flags_by_uid[uid])
        return listing.finish()

    def add(self, uid: int, flags: Iterable[str]) -> None:
        n = self._set_id(flags if isinstance(flags, frozenset) else frozenset(flags))
        if self._uids and uid <= self._uids[-1]:
            self._sorted = False
        self._uids.append(uid)
        self._flag_ids.append(n)

    def finish(self) -> RemoteListing:
        """Sorted by UID; of a UID given twice the last flags count (as in a dict)."""
        if self._sorted:
            return self
        # The ascending head (a listing in order, or nearly: a few given after it) is
        # taken as it is, in slices between the rest's UIDs, and only the rest is sorted
        # (a list of positions: ~80 bytes each, where a sort of every position took that
        # a message)
        given, numbers = self._uids, self._flag_ids
        n = len(given)
        head = next(
            itertools.compress(
                itertools.count(1), map(operator.ge, given, itertools.islice(given, 1, None))
            ),
            n,
        )
        uids, ids = array(_U32), array(_U32)
        at = 0
        for i in sorted(range(head, n), key=given.__getitem__):
            uid = given[i]
            to = bisect_left(given, uid, at, head)
            if to > at:
                uids.extend(given[at:to])
                ids.extend(numbers[at:to])
                at = to
            if at < head and given[at] == uid:
                at += 1  # (given again later: the later one counts)
            if uids and uids[-1] == uid:
                ids[-1] = numbers[i]  # (a stable sort: the later one)
            else:
                uids.append(uid)
                ids.append(numbers[i])
        uids.extend(given[at:head])
        ids.extend(numbers[at:head])
        self._uids, self._flag_ids, self._sorted = uids, ids, True
        return self

    def __len__(self) -> int:
        return len(self._uids)

    def parts(self) -> tuple[array[int], array[int], list[frozenset[str]]]:
        """UIDs and the numbers of their flag sets side by side, and the sets (after
        `finish`; not to be changed)."""
        return self._uids, self._flag_ids, self._sets

    def index(self, uid: int) -> int:
        """The position of `uid`, -1 when the server does not have it."""
        i = bisect_left(self._uids, uid)
        return i if i < len(self._uids) and self._uids[i] == uid else -1

    def uid_at(self, i: int) -> int:
        return self._uids[i]

    def flags_at(self, i: int) -> frozenset[str]:
        return self._sets[self._flag_ids[i]]

    def __iter__(self) -> Iterator[tuple[int, frozenset[str]]]:
        sets = self._sets
        for uid, n in zip(self._uids, self._flag_ids, strict=True):
            yield uid, sets[n]


class SyncedState(FrozenRecord):
    """What both sides agreed on at the end of the last sync of this folder."""

    __slots__ = ("local_dir_missing", "uidvalidity")
    uidvalidity: int | None  # None: never synced (or the index was lost)
    local_dir_missing: bool  # the folder's Maildir directory is gone

    def __init__(self, uidvalidity: int | None, local_dir_missing: bool = False) -> None:
        _put(self, "uidvalidity", uidvalidity)
        _put(self, "local_dir_missing", local_dir_missing)


# --- actions -----------------------------------------------------------------------------


class Download(FrozenRecord):
    """Fetch a server message and store it here (replacing `row`'s lost file if set)."""

    __slots__ = ("flags", "row", "uid")
    uid: int
    flags: frozenset[str]
    row: int | None

    def __init__(self, uid: int, flags: frozenset[str], row: int | None = None) -> None:
        _put(self, "uid", uid)
        _put(self, "flags", flags)
        _put(self, "row", row)


class Upload(FrozenRecord):
    """APPEND a local message to the server, then pair it."""

    __slots__ = ("flags", "key", "row")
    key: str
    row: int | None
    flags: frozenset[str]

    def __init__(self, key: str, row: int | None, flags: frozenset[str]) -> None:
        _put(self, "key", key)
        _put(self, "row", row)
        _put(self, "flags", flags)


class Pair(FrozenRecord):
    """Record that local `key` is server `uid` (same Message-ID and size)."""

    __slots__ = ("key", "row", "uid")
    key: str
    row: int | None
    uid: int

    def __init__(self, key: str, row: int | None, uid: int) -> None:
        _put(self, "key", key)
        _put(self, "row", row)
        _put(self, "uid", uid)


class SetFlags(FrozenRecord):
    """Bring both sides to `flags`; either change may be empty."""

    __slots__ = ("add", "flags", "key", "local", "remove", "row", "uid")
    uid: int
    key: str
    row: int | None
    flags: frozenset[str]
    local: bool  # the local file's flags must change
    add: frozenset[str]  # remote: +FLAGS
    remove: frozenset[str]  # remote: -FLAGS

    def __init__(
        self,
        uid: int,
        key: str,
        row: int | None,
        flags: frozenset[str],
        local: bool,
        add: frozenset[str],
        remove: frozenset[str],
    ) -> None:
        _put(self, "uid", uid)
        _put(self, "key", key)
        _put(self, "row", row)
        _put(self, "flags", flags)
        _put(self, "local", local)
        _put(self, "add", add)
        _put(self, "remove", remove)


class DeleteLocal(FrozenRecord):
    """The server expunged it: delete the local copy."""

    __slots__ = ("key", "row", "uid")
    uid: int
    key: str
    row: int | None

    def __init__(self, uid: int, key: str, row: int | None) -> None:
        _put(self, "uid", uid)
        _put(self, "key", key)
        _put(self, "row", row)


class ExpungeRemote(FrozenRecord):
    """Deleted here: expunge it on the server."""

    __slots__ = ("row", "uid")
    uid: int
    row: int | None

    def __init__(self, uid: int, row: int | None) -> None:
        _put(self, "uid", uid)
        _put(self, "row", row)


class Forget(FrozenRecord):
    """Gone on both sides: drop the index row."""

    __slots__ = ("row",)
    row: int

    def __init__(self, row: int) -> None:
        _put(self, "row", row)


Action = Download | Upload | Pair | SetFlags | DeleteLocal | ExpungeRemote | Forget
Delete = DeleteLocal | ExpungeRemote


class Stop(FrozenRecord):
    """The plan would delete too much; nothing is done without `force`."""

    __slots__ = ("count", "reason", "side", "total")
    side: str  # "local" or "server": where the deletions would happen
    count: int
    total: int
    reason: str

    def __init__(self, side: str, count: int, total: int, reason: str) -> None:
        _put(self, "side", side)
        _put(self, "count", count)
        _put(self, "total", total)
        _put(self, "reason", reason)


#: (merged flags, the local file changes, +FLAGS on the server, -FLAGS, all three equal)
Merge = tuple[frozenset[str], bool, frozenset[str], frozenset[str], bool]


class Pairs:
    """Index rows paired with server UIDs, as columns: the row (8 bytes), the UID (4)
    and the flag merge (4, a number into `table`: a folder has few distinct pairs of
    flag sets). 16 bytes a pairing, where a `Pair` and a `SetFlags` took ~300.

    Past `_PAIRS_CHUNK` pairings the columns go, a chunk at a time, to a file of their
    own (unlinked: the system removes it when it is closed, at the latest when the
    process ends) and are read back a chunk at a time (`chunks`): a UIDVALIDITY change
    pairs every message of a folder again, and 17 bytes a message in memory made the
    peak grow with the folder (3.4 MB at 200,000). What stays in memory is one chunk
    and the table."""

    __slots__ = (
        "_fd",
        "_ids",
        "_merges",
        "_rows",
        "_settled",
        "_spilled",
        "_uids",
        "settled_count",
        "table",
    )

    def __init__(self) -> None:
        self._rows = array("q")
        self._uids = array(_U32)
        self._merges = array(_U32)
        self.table: list[Merge] = []
        self._ids: dict[tuple[frozenset[str], frozenset[str]], int] = {}
        # per pairing, 1 when the row is already recorded so (`add`'s `known`): 1 byte
        self._settled = bytearray()
        self._fd: _Spilled | None = None
        self._spilled = 0  # pairings in the file
        self.settled_count = 0

    def add(
        self, row: int, uid: int, local: frozenset[str], remote: frozenset[str], known: bool = False
    ) -> None:
        """Pair `row` with `uid`; a new pairing has no common base: the flags are united.
        `known`: the index already pairs `row` with `uid` and last synced `local` (a
        server that kept its UIDs under a new UIDVALIDITY): with the same flags there,
        the pairing is `settled`, and applying it need not write the row."""
        key = (local, remote)
        n = self._ids.get(key)
        if n is None:
            n = self._ids[key] = len(self.table)
            self.table.append(_merged(local, None, remote))
        self._rows.append(row)
        self._uids.append(uid)
        self._merges.append(n)
        settled = known and self.table[n][4]
        self._settled.append(1 if settled else 0)
        self.settled_count += settled
        if len(self._rows) >= _PAIRS_CHUNK:
            self._spill()

    def _spill(self) -> None:
        if self._fd is None:
            self._fd = _Spilled()
        self._fd.write(
            self._rows.tobytes()
            + self._uids.tobytes()
            + self._merges.tobytes()
            + bytes(self._settled)
        )
        self._spilled += len(self._rows)
        del self._rows[:], self._uids[:], self._merges[:], self._settled[:]

    def chunks(self) -> Iterator[tuple[array[int], array[int], array[int], bytes]]:
        """The pairings in the order added, as columns a chunk at a time: rows, UIDs,
        merges (numbers into `table`), settled (1 a byte)."""
        if self._fd is not None:
            rows, uids, merges = array("q"), array(_U32), array(_U32)
            sizes = (rows.itemsize, uids.itemsize, merges.itemsize, 1)
            step = _PAIRS_CHUNK * sum(sizes)
            for at in range(0, self._spilled * sum(sizes), step):
                data = self._fd.read(at, step)
                a = _PAIRS_CHUNK * sizes[0]
                b = a + _PAIRS_CHUNK * sizes[1]
                c = b + _PAIRS_CHUNK * sizes[2]
                rows, uids, merges = array("q"), array(_U32), array(_U32)
                rows.frombytes(data[:a])
                uids.frombytes(data[a:b])
                merges.frombytes(data[b:c])
                yield rows, uids, merges, data[c:]
        if self._rows:
            yield self._rows, self._uids, self._merges, bytes(self._settled)

    def __iter__(self) -> Iterator[tuple[int, int, Merge]]:
        table = self.table
        for rows, uids, merges, _ in self.chunks():
            for row, uid, n in zip(rows, uids, merges, strict=True):
                yield row, uid, table[n]

    def settled_rows(self) -> Iterator[tuple[int, int, int, int]]:
        """(row, UID, merge, settled) of every pairing, in the order added."""
        for rows, uids, merges, settled in self.chunks():
            yield from zip(rows, uids, merges, settled, strict=True)

    # the whole columns (for tests and small plans: they hold every pairing in memory)

    @property
    def rows(self) -> array[int]:
        return self._column(0, array("q"))

    @property
    def uids(self) -> array[int]:
        return self._column(1, array(_U32))

    @property
    def merges(self) -> array[int]:
        return self._column(2, array(_U32))

    @property
    def settled(self) -> bytearray:
        out = bytearray()
        for part in self.chunks():
            out += part[3]
        return out

    def _column(self, i: int, out: array[int]) -> array[int]:
        for part in self.chunks():
            out.extend(part[i])
        return out

    def __len__(self) -> int:
        return self._spilled + len(self._rows)

    def __bool__(self) -> bool:
        return len(self) > 0

    def actions(self, key_of: Callable[[int], str]) -> Iterator[Action]:
        """The same as `Pair` and `SetFlags` actions (for tests and small plans)."""
        for row, uid, (flags, local, add, remove, _same) in self:
            key = key_of(row)
            yield Pair(key, row, uid)
            yield SetFlags(uid, key, row, flags, local, add, remove)


#: pairings kept in memory before `Pairs` writes them to its file (~140 KB)
_PAIRS_CHUNK = 8192


class _Spilled:
    """An unlinked temporary file written and read by offset (its pages live in the
    system's cache, not in this process's memory), closed when it is collected (with
    the plan that holds it)."""

    __slots__ = ("__weakref__", "fd", "size")

    def __init__(self) -> None:
        import os
        import tempfile
        import weakref

        fd, path = tempfile.mkstemp(prefix="mailbag-pairs-")
        os.unlink(path)
        self.fd, self.size = fd, 0
        weakref.finalize(self, os.close, fd)

    def write(self, data: bytes) -> None:
        import os

        view = memoryview(data)
        while view:
            done = os.pwrite(self.fd, view, self.size)
            self.size += done
            view = view[done:]

    def read(self, at: int, n: int) -> bytes:
        import os

        parts = []
        while n > 0:
            got = os.pread(self.fd, n, at)
            if not got:
                break
            parts.append(got)
            at += len(got)
            n -= len(got)
        return b"".join(parts)


class Plan(Record):
    __slots__ = (
        "actions",
        "fetch",
        "hashed",
        "kept",
        "notes",
        "pairs",
        "restored",
        "stop",
        "uidvalidity_changed",
    )
    actions: list[Action]
    # more server messages to download as they are (as `Download(uid, flags)` without a
    # row), ascending: an array of UIDs, 4 bytes each, where a big folder's first sync
    # resumed after a crash would hold ~100 bytes of `Download` per message
    fetch: array[int]
    # index rows paired with server messages (as `Pair` + `SetFlags`, compact): a
    # UIDVALIDITY change pairs every message again
    pairs: Pairs
    stop: Stop | None
    uidvalidity_changed: bool
    restored: int  # local files lost and downloaded again
    hashed: int  # of the pairings, those made by size and a hash (no Message-ID): `repair`
    # after a UIDVALIDITY change, the index rows paired again with the message of their
    # own UID and left as they are (`keep`): not in `pairs`
    kept: Kept | None
    notes: list[str]

    def __init__(
        self,
        actions: list[Action] | None = None,
        fetch: array[int] | None = None,
        stop: Stop | None = None,
        uidvalidity_changed: bool = False,
        restored: int = 0,
        notes: list[str] | None = None,
        pairs: Pairs | None = None,
    ) -> None:
        self.actions = [] if actions is None else actions
        self.fetch = array(_U32) if fetch is None else fetch
        self.stop = stop
        self.uidvalidity_changed = uidvalidity_changed
        self.restored = restored
        self.notes = [] if notes is None else notes
        self.pairs = Pairs() if pairs is None else pairs
        self.hashed = 0
        self.kept = None

    def of(self, kind: type) -> list[Action]:
        return [a for a in self.actions if isinstance(a, kind)]


# --- the planner -----------------------------------------------------------------------


def _clean(flags: Iterable[str]) -> frozenset[str]:
    return frozenset(f for f in flags if f not in IGNORED_FLAGS)


def merge_flags(
    local: frozenset[str], base: frozenset[str] | None, remote: frozenset[str]
) -> frozenset[str]:
    """Three-way merge: each side's additions and removals since `base` both apply.

    Without a base (never synced together) the union: no flag is lost.
    """
    if base is None:
        return local | remote
    added = (local - base) | (remote - base)
    removed = (base - local) | (base - remote)
    return (base | added) - removed


def _identity(message_id: str | None, size: int | None) -> tuple[str, int] | None:
    if not message_id or size is None:
        return None
    return (message_id, size)


def needs_identity(
    local: Iterable[LocalMessage], last_synced: SyncedState, remote: RemoteFolder
) -> set[int]:
    """Server UIDs whose Message-ID and size the planner needs to pair safely.

    Only unpaired server messages, and only when some local message is
    unpaired too (a new draft, a file the index lost, a UIDVALIDITY change).
    """
    local = list(local)
    changed = last_synced.uidvalidity is not None and last_synced.uidvalidity != remote.uidvalidity
    paired: set[int] = set()
    unpaired_local = False
    for m in local:
        if m.uid is not None and not changed:
            paired.add(m.uid)
        elif m.present:
            unpaired_local = True
    if not unpaired_local:
        return set()
    return {uid for uid in remote.messages if uid not in paired}


def plan(
    local: Iterable[LocalMessage],
    last_synced: SyncedState,
    remote: RemoteFolder,
    *,
    threshold: int = 50,
    force: bool = False,
    exclude_uids: Iterable[int] = (),
) -> Plan:
    """The actions that make the local folder and the server folder equal.

    `exclude_uids`: server messages another step owns (a local move in flight);
    they are neither downloaded nor paired here.
    """
    result = Plan()
    local = list(local)
    excluded = set(exclude_uids)
    remote_msgs = {uid: m for uid, m in remote.messages.items() if uid not in excluded}
    changed = last_synced.uidvalidity is not None and last_synced.uidvalidity != remote.uidvalidity
    result.uidvalidity_changed = changed

    paired: dict[int, LocalMessage] = {}
    unpaired: list[LocalMessage] = []
    for m in local:
        if m.uid is not None and not changed:
            if m.uid in paired:
                # two rows claim one UID (should not happen): keep the first, re-pair the other
                unpaired.append(m)
            else:
                paired[m.uid] = m
        elif m.present:
            unpaired.append(m)
        elif m.row is not None:
            # a file that was never on the server (or whose UID is void) is gone: forget it
            result.actions.append(Forget(m.row))

    local_deletes: list[ExpungeRemote] = []
    remote_deletes: list[DeleteLocal] = []
    lost: list[LocalMessage] = []  # files gone with their whole folder directory
    for uid, m in paired.items():
        r = remote_msgs.get(uid)
        if uid in excluded:
            continue
        if r is None:
            if m.present:
                remote_deletes.append(DeleteLocal(uid, m.key, m.row))
            elif m.row is not None:
                result.actions.append(Forget(m.row))
            continue
        if not m.present:
            if last_synced.local_dir_missing:
                lost.append(m)
            else:
                local_deletes.append(ExpungeRemote(uid, m.row))
            continue
        _merge_into(result, m, uid, r.flags)

    # pair what is unpaired on both sides by Message-ID + size, before any transfer
    unpaired_remote = [r for uid, r in remote_msgs.items() if uid not in paired]
    by_identity: dict[tuple[str, int], list[LocalMessage]] = defaultdict(list)
    for m in unpaired:
        ident = _identity(m.message_id, m.size)
        if ident is not None:
            by_identity[ident].append(m)
    matched_keys: set[str] = set()
    for r in sorted(unpaired_remote, key=lambda r: r.uid):
        ident = _identity(r.message_id, r.size)
        candidates = by_identity.get(ident) if ident is not None else None
        if candidates:
            m = candidates.pop(0)
            matched_keys.add(m.key)
            result.actions.append(Pair(m.key, m.row, r.uid))
            # a new pairing has no common base: unite the flags
            _merge_into(result, m, r.uid, r.flags, use_base=False)
        else:
            result.actions.append(Download(r.uid, _clean(r.flags)))
    for m in unpaired:
        if m.key not in matched_keys:
            result.actions.append(Upload(m.key, m.row, _clean(m.flags)))

    for m in lost:
        assert m.uid is not None
        r = remote_msgs[m.uid]
        result.actions.append(Download(r.uid, merge_flags(m.flags, m.synced_flags, r.flags), m.row))
        result.restored += 1
    if lost:
        result.notes.append(
            f"the local folder directory was missing: {len(lost)} messages downloaded again "
            "(nothing deleted on the server)"
        )

    if changed:
        result.notes.insert(
            0,
            repair_note(
                last_synced.uidvalidity,
                remote.uidvalidity,
                sum(1 for a in result.actions if isinstance(a, Pair)),
                sum(1 for a in result.actions if isinstance(a, Download)),
                sum(1 for a in result.actions if isinstance(a, Upload)),
            ),
        )
    _guard(result, local_deletes, remote_deletes, len(paired), threshold, force)
    return result


def repair_note(
    old: int | None, new: int, paired: int, fetched: int, uploaded: int, hashed: int = 0
) -> str:
    """What a UIDVALIDITY change made the plan do, for the report (`hashed` of the
    `paired`: messages without a Message-ID, paired by size and a hash of their headers)."""
    how = (
        f"({paired - hashed:,} by Message-ID and size, {hashed:,} without one by size and "
        "header hash)"
        if hashed
        else "by Message-ID and size"
    )
    return (
        f"the server's UIDVALIDITY changed ({old} -> {new}): {paired:,} messages paired "
        f"again {how}, {fetched:,} new there to download, {uploaded:,} only here to upload; "
        "nothing was deleted"
    )


def _merge_into(
    result: Plan,
    m: LocalMessage,
    uid: int,
    remote_flags: frozenset[str],
    *,
    use_base: bool = True,
) -> None:
    """Add the `SetFlags` that brings `m` and server message `uid` (with `remote_flags`)
    to their merged flags, if anything differs."""
    base_flags = m.synced_flags if use_base else None
    merged, local, add, remove, same = _merged(m.flags, base_flags, remote_flags)
    if use_base and same and m.synced_flags == merged:
        return
    result.actions.append(SetFlags(uid, m.key, m.row, merged, local, add, remove))


@functools.lru_cache(maxsize=4096)
def _merged(
    local: frozenset[str], base: frozenset[str] | None, remote: frozenset[str]
) -> tuple[frozenset[str], bool, frozenset[str], frozenset[str], bool]:
    """(merged flags, local file changes, +FLAGS, -FLAGS, all three equal) of a merge.
    Cached: a folder has few distinct flag sets, so a plan that touches every message
    (a UIDVALIDITY change pairs them all again) shares these sets instead of making
    three new ones (~650 bytes) per message."""
    lflags, rflags = _clean(local), _clean(remote)
    merged = merge_flags(lflags, None if base is None else _clean(base), rflags)
    same = merged == lflags and merged == rflags
    return merged, merged != lflags, merged - rflags, rflags - merged, same


# --- the same plan, for a full folder read ----------------------------------------------

#: (UID, Message-ID, size) of server messages, for pairing
Identities = Iterable[tuple[int, str | None, int | None]]


def plan_stream(
    local: Iterable[LocalMessage],
    last_synced: SyncedState,
    uidvalidity: int,
    remote: RemoteListing,
    *,
    identities: Callable[[Sequence[int]], Identities],
    threshold: int = 50,
    force: bool = False,
    exclude_uids: Iterable[int] = (),
    settled: Iterable[tuple[Sequence[int], Sequence[frozenset[str]]]] = (),
    settled_rows: Callable[[Sequence[int]], Iterable[LocalMessage]] | None = None,
    digests: Digests | None = None,
) -> Plan:
    """`plan`, with the same actions, for a folder read whole: the local messages are
    taken one at a time as they stream from the index (none is kept unless it is
    unpaired or its action needs it), the server's side is a compact `RemoteListing`,
    and what is kept per message of the folder is one byte (paired or not). Messages
    to download as they are go into `Plan.fetch` (4 bytes each), not `Download`s.
    Memory grows with the changes, not with the folder.

    `identities(uids)` gives the Message-ID and size of the unpaired server messages
    `uids` (ascending); it is called only when some local message is unpaired too
    (as `needs_identity` says), and may leave out messages that vanished meanwhile.

    `settled` is the cheap form of most of a folder after a sync: UIDs and flags (in
    batches, side by side, ascending UIDs best) of local messages paired with that
    UID, present, whose flags are also those last synced (not repeated in `local`).
    Where the server has the same flags nothing is to do and nothing more is asked;
    the others (`settled_rows(uids)`, the same messages in full) are planned as
    `local` is. In a 20,000 message folder whose index was trusted this took the
    planning of a no-op re-sync from 61 ms (every row a `LocalMessage`) to 19 ms,
    most of it the index query.

    `digests`: unpaired messages without a usable Message-ID are paired by size and a
    digest of their header block (`repair._Unnamed`): a draft uploaded where the
    server gives no UID (no UIDPLUS), or a sync killed between an APPEND and its
    record, is not uploaded again. None: they are not paired."""
    excluded = set(exclude_uids)
    if last_synced.uidvalidity is not None and last_synced.uidvalidity != uidvalidity:
        # every message is to be paired again: see `repair`
        if settled_rows is not None:
            raise ValueError("settled messages are for a folder whose UIDVALIDITY holds")
        from mailbag.sync.repair import listed_identities, plan_repair

        return plan_repair(
            local,
            last_synced,
            uidvalidity,
            listed_identities(remote, identities, excluded),
            exclude_uids=excluded,
            digests=digests,
        )
    result = Plan()
    paired_here = bytearray(len(remote))  # 1: a local message is paired with it
    paired_gone: set[int] = set()  # paired UIDs the server no longer has
    unpaired: list[LocalMessage] = []
    want_identities = False
    total = 0
    local_deletes: list[ExpungeRemote] = []
    remote_deletes: list[DeleteLocal] = []
    lost: list[tuple[LocalMessage, int]] = []
    later = array(_U32)  # settled messages the server side differs for
    uids, flag_ids, sets, ids_of = remote._uids, remote._flag_ids, remote._sets, remote._ids_of
    for batch_uids, batch_flags in settled:
        n = len(batch_uids)
        if not n:
            continue
        # Where the batch's UIDs are the listing's at one place (no expunge among them)
        # it is compared whole, in C; only the messages whose flags differ are looked
        # at one by one (as the loop below does for any batch).
        a = bisect_left(uids, batch_uids[0])
        mine = array(_U32, batch_uids)
        if uids[a : a + n] != mine and n > 1 and batch_uids[-1] > batch_uids[0]:
            # expunged on the server (read in full, below), then compared as above
            there_now = set(uids[a : bisect_right(uids, batch_uids[-1], a)])
            if not there_now.issuperset(batch_uids):
                keep = list(map(there_now.__contains__, batch_uids))
                later.extend(itertools.compress(batch_uids, map(operator.not_, keep)))
                batch_uids = list(itertools.compress(batch_uids, keep))
                batch_flags = list(itertools.compress(batch_flags, keep))
                n = len(batch_uids)
                if not n:
                    continue
                a = bisect_left(uids, batch_uids[0])
                mine = array(_U32, batch_uids)
        if (
            uids[a : a + n] == mine
            and paired_here.count(0, a, a + n) == n
            and (not excluded or excluded.isdisjoint(batch_uids))
            and not any(_RECENT in f for f in set(batch_flags))
        ):
            # the flags compared as the listing's numbers for them (a set the listing
            # does not have: a number it has not), in C, and one by one where they differ
            there = flag_ids[a : a + n]
            numbered = array(_U32, map(ids_of.get, batch_flags, itertools.repeat(_NO_SET, n)))
            differ = (
                []
                if numbered == there
                else list(itertools.compress(range(n), map(operator.ne, numbered, there)))
            )
            paired_here[a : a + n] = b"\x01" * n
            total += n - len(differ)
            for j in differ:
                paired_here[a + j] = 0
                later.append(batch_uids[j])
            continue
        for uid, flags in zip(batch_uids, batch_flags, strict=True):
            i = bisect_left(uids, uid)
            if (
                i < len(uids)
                and uids[i] == uid
                and not paired_here[i]
                and ((sets[flag_ids[i]] == flags and _RECENT not in flags) or uid in excluded)
            ):
                paired_here[i] = 1  # (what the loop below does for an unchanged message)
                total += 1
                continue
            later.append(uid)
    if later:
        if settled_rows is None:
            raise ValueError("settled messages to plan in full, but no settled_rows")
        local = itertools.chain(local, settled_rows(array(_U32, sorted(later))))
    for m in local:
        if m.uid is None:
            if m.present:
                unpaired.append(m)
                want_identities = True
            elif m.row is not None:
                result.actions.append(Forget(m.row))
            continue
        uid = m.uid
        i = remote.index(uid)
        if paired_here[i] if i >= 0 else uid in paired_gone:
            unpaired.append(m)  # a second row with this UID (should not happen): re-paired
            continue
        if i >= 0:
            paired_here[i] = 1
        else:
            paired_gone.add(uid)
        total += 1
        if uid in excluded:
            continue
        if i < 0:
            if m.present:
                remote_deletes.append(DeleteLocal(uid, m.key, m.row))
            elif m.row is not None:
                result.actions.append(Forget(m.row))
            continue
        if not m.present:
            if last_synced.local_dir_missing:
                lost.append((m, i))
            else:
                local_deletes.append(ExpungeRemote(uid, m.row))
            continue
        _merge_into(result, m, uid, remote.flags_at(i))

    # the server's unpaired messages, paired by Message-ID + size before any transfer
    waiting = array(_U32)
    i = paired_here.find(0)  # (most are paired: skipped in C)
    while i >= 0:
        if uids[i] not in excluded:
            waiting.append(uids[i])
        i = paired_here.find(0, i + 1)
    matched = bytearray(len(unpaired))  # 1: paired with a server message by identity
    unnamed = None
    if want_identities and waiting and digests is not None:
        from mailbag.sync.repair import _Unnamed

        unnamed = _Unnamed()
    if want_identities and waiting:
        # identity -> position in `unpaired` (a list when several share it: the first
        # one pairs first), one int per message rather than a list
        by_identity: dict[tuple[str, int], int | list[int]] = {}
        for pos, m in enumerate(unpaired):
            if unnamed is not None and unnamed.take_local(m):
                matched[pos] = 1  # (paired or uploaded below)
                continue
            ident = _identity(m.message_id, m.size)
            if ident is not None:
                had = by_identity.setdefault(ident, pos)
                if had != pos:
                    if isinstance(had, int):
                        by_identity[ident] = [had, pos]
                    else:
                        had.append(pos)
        for uid, message_id, size in identities(waiting):
            i = remote.index(uid)
            if i < 0 or paired_here[i] or uid in excluded:
                continue  # not asked for
            if unnamed is not None and unnamed.take_remote(i, message_id, size):
                continue
            ident = _identity(message_id, size)
            found = None if ident is None else by_identity.pop(ident, None)
            if ident is None or found is None:
                if ident is not None and unnamed is not None:
                    # (compared again as a file with bare LF line ends may be)
                    unnamed.take_remote(i, message_id, size, named=True)
                continue
            if isinstance(found, list):
                pos = found.pop(0)
                if found:
                    by_identity[ident] = found
            else:
                pos = found
            m = unpaired[pos]
            matched[pos] = 1
            paired_here[i] = 2
            result.actions.append(Pair(m.key, m.row, uid))
            # a new pairing has no common base: unite the flags
            _merge_into(result, m, uid, remote.flags_at(i), use_base=False)
        del by_identity
    if unnamed is not None and digests is not None:
        for pos, m in enumerate(unpaired):
            if not matched[pos]:  # (no partner by Message-ID and size: see `_Unnamed`)
                unnamed.take_leftover(m)
                matched[pos] = 1

        def on_pair(m: LocalMessage, i: int) -> None:
            paired_here[i] = 2
            uid = remote.uid_at(i)
            result.actions.append(Pair(m.key, m.row, uid))
            _merge_into(result, m, uid, remote.flags_at(i), use_base=False)

        for m in unnamed.finish(digests, remote.uid_at, on_pair):
            result.actions.append(Upload(m.key, m.row, _clean(m.flags)))
        result.hashed = unnamed.paired
    unmatched = (m for pos, m in enumerate(unpaired) if not matched[pos])
    if want_identities:
        result.fetch = array(_U32, (uid for uid in waiting if not paired_here[remote.index(uid)]))
    else:
        result.fetch = waiting
    for m in unmatched:
        result.actions.append(Upload(m.key, m.row, _clean(m.flags)))

    for m, i in lost:
        flags = merge_flags(m.flags, m.synced_flags, remote.flags_at(i))
        result.actions.append(Download(remote.uid_at(i), flags, m.row))
        result.restored += 1
    if lost:
        result.notes.append(
            f"the local folder directory was missing: {len(lost)} messages downloaded again "
            "(nothing deleted on the server)"
        )
    _guard(result, local_deletes, remote_deletes, total, threshold, force)
    return result


def _guard(
    result: Plan,
    local_deletes: list[ExpungeRemote],
    remote_deletes: list[DeleteLocal],
    total: int,
    threshold: int,
    force: bool,
) -> None:
    """The mass-deletion guard: too many deletions on one side stop the plan."""
    for side, deletes in (("server", local_deletes), ("local", remote_deletes)):
        if len(deletes) > threshold and not force:
            where = "deleted here" if side == "server" else "gone from the server"
            result.stop = Stop(
                side=side,
                count=len(deletes),
                total=total,
                reason=(
                    f"{len(deletes)} of {total} messages are {where}; syncing would delete them "
                    f"on the {'server' if side == 'server' else 'local side'} too (more than the "
                    f"limit of {threshold})"
                ),
            )
    if result.stop is None:
        result.actions.extend(local_deletes)
        result.actions.extend(remote_deletes)
