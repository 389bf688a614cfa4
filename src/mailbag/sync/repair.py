"""Pairing a folder's messages with the server's again after a UIDVALIDITY change, in
memory that does not grow with the folder: a pure planner, as `plan.py`.

A new UIDVALIDITY voids every UID the index holds: each local message is paired again
with the server message of the same Message-ID and size (of several with the same,
the k-th here in the order given with the k-th there), only what is left moves
(server messages downloaded, local ones uploaded) and nothing is deleted on either
side (`plan.plan` is the reference for these rules).

Why not `plan.plan_stream`'s way (a list of the unpaired local messages, a dict by
identity, a `Pair` and a `SetFlags` per message): after a UIDVALIDITY change every
message is unpaired, and that cost ~450 bytes a message (~90 MB for a 200,000 message
folder). Here both sides stream (the local rows from the index, the server's
identities from one FETCH) and are matched as they come: a message waits only until
its partner arrives. The driver gives the local rows in the order of their old UIDs,
and a server that renumbers a folder keeps its messages' order (a rebuilt index, a
migration copying the folder in order), so few wait: two, measured on 100,000. When
more than `limit` wait (the orders differ), the waiting ones and all that follow go
to a private temporary SQLite database, which keeps a bounded cache in memory and the
rest in a file, and are matched there at the end. Nothing is kept per message but
what waits, the UIDs to download (`Plan.fetch`) and the pairings, which `Pairs` writes
to a file of its own a chunk at a time: memory does not grow with the folder.

Messages without a usable Message-ID (none, empty, or garbage such as "<>" that one
broken program gives all its mail) cannot be paired that way: given `digests`, they
are paired by size and a digest of their header block (`_Unnamed`); without, they
are copied to the other side as before (and so end up twice there).
"""

from __future__ import annotations

import heapq
import itertools
import operator
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from mailbag.sync.plan import (
    _U32,
    Forget,
    Identities,
    LocalMessage,
    Pair,
    Plan,
    RemoteListing,
    SyncedState,
    Upload,
    _clean,
    _identity,
    _merge_into,
    repair_note,
)

if TYPE_CHECKING:
    import sqlite3

    from mailbag.sync.keep import Kept

_W = TypeVar("_W")

__all__ = ["Digests", "RemoteIdentity", "listed_identities", "plan_repair"]

#: a server message as `plan_repair` takes it: UID, flags, Message-ID, size (None: unknown)
RemoteIdentity = tuple[int, Iterable[str], "str | None", "int | None"]

#: messages waiting for their partner, kept in memory, before the rest goes to SQLite
LIMIT = 10_000


class Digests(Protocol):
    """What pairing messages without a Message-ID asks of the two sides: digests of
    their header blocks (or whole messages), made alike on both (`sync.digests`)."""

    def here(
        self, files: Sequence[tuple[str, frozenset[str]]], whole: bool
    ) -> Iterable[bytes | None]:
        """The digest of each local message (Maildir key, flags), in the order given: of
        its header block, or of all of it when `whole`; None for a file that is gone."""

    def there(self, uids: Iterable[int], whole: bool) -> Iterable[tuple[int, bytes]]:
        """(UID, digest) of server messages (ascending `uids`, taken as needed), the same
        digests of their BODY[HEADER] (or BODY[]), in any order; messages gone meanwhile
        are left out."""

    def measure(
        self, files: Sequence[tuple[str, frozenset[str]]]
    ) -> Iterable[tuple[int, bytes] | None]:
        """(size, header digest) of each local message as the server would give it (bare
        LF line ends as CRLF: the size its RFC822.SIZE would be), in the order given;
        None for a file that is gone."""


def _private_db() -> sqlite3.Connection:
    """A private temporary SQLite database: its pages beyond a small cache live in a file
    that SQLite removes when it is closed (memory stays bounded however many wait)."""
    import sqlite3

    db = sqlite3.connect("", isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    # 512 KiB: full before a few thousand messages wait, so memory stops growing there
    # (2 MB: ~1.5 MB more at 8,000 messages without a Message-ID; CPU the same at 100,000)
    db.execute("PRAGMA cache_size=-512")
    return db


class _FlagSets:
    """The local flag sets, numbered (a folder has few): what the SQLite tables keep."""

    def __init__(self) -> None:
        self._ids: dict[frozenset[str], int] = {}
        self.sets: list[frozenset[str]] = []

    def number(self, flags: frozenset[str]) -> int:
        n = self._ids.get(flags)
        if n is None:
            n = self._ids[flags] = len(self.sets)
            self.sets.append(flags)
        return n


class _Spill:
    """The waiting messages of both sides in a private temporary SQLite database."""

    def __init__(self) -> None:
        self.db = _private_db()
        self.db.execute(
            "CREATE TABLE here(seq INTEGER PRIMARY KEY, mid TEXT NOT NULL, size INTEGER NOT NULL, "
            "row INTEGER, key TEXT NOT NULL, flags INTEGER NOT NULL, kuid INTEGER)"
        )
        self.db.execute(
            "CREATE TABLE there(seq INTEGER PRIMARY KEY, pos INTEGER NOT NULL, "
            "mid TEXT NOT NULL, size INTEGER NOT NULL)"
        )
        self.db.execute("BEGIN")
        self._here: list[tuple[int, str, int, int | None, str, int, int | None]] = []
        self._there: list[tuple[int, int, str, int]] = []
        self._seq = itertools.count()
        self.flag_sets = _FlagSets()

    def local(self, m: LocalMessage, ident: tuple[str, int]) -> None:
        n = self.flag_sets.number(m.flags)
        self._here.append((next(self._seq), ident[0], ident[1], m.row, m.key, n, _known_uid(m)))
        if len(self._here) >= 1000:
            self._flush()

    def remote(self, pos: int, ident: tuple[str, int]) -> None:
        self._there.append((next(self._seq), pos, ident[0], ident[1]))
        if len(self._there) >= 1000:
            self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO here VALUES (?,?,?,?,?,?,?)", self._here)
        self.db.executemany("INSERT INTO there VALUES (?,?,?,?)", self._there)
        self._here.clear()
        self._there.clear()

    def matches(self) -> Iterator[tuple[LocalMessage, int | None]]:
        """Every waiting local message with the position of its server partner (None:
        none): the k-th of an identity here (in arrival order) with the k-th there."""
        self._flush()
        sets = self.flag_sets.sets
        rows = self.db.execute(
            "SELECT h.row, h.key, h.flags, h.kuid, t.pos FROM "
            "(SELECT seq, mid, size, row, key, flags, kuid, "
            " row_number() OVER (PARTITION BY mid, size ORDER BY seq) AS k FROM here) AS h "
            "LEFT JOIN "
            "(SELECT pos, mid, size, row_number() OVER (PARTITION BY mid, size ORDER BY seq) AS k "
            " FROM there) AS t "
            "ON t.mid = h.mid AND t.size = h.size AND t.k = h.k"
        )
        for row, key, flags, kuid, pos in rows:
            yield _unnamed_row(row, key, sets[flags], kuid), pos

    def left_there(self) -> Iterator[tuple[int, str, int]]:
        """(position, Message-ID, size) of the waiting server messages without a
        partner here (by `matches`' rule), in the order of their positions."""
        self._flush()
        rows = self.db.execute(
            "SELECT t.pos, t.mid, t.size FROM "
            "(SELECT pos, mid, size, row_number() OVER (PARTITION BY mid, size ORDER BY seq) "
            " AS k FROM there) AS t "
            "LEFT JOIN (SELECT mid, size, row_number() OVER (PARTITION BY mid, size ORDER BY seq) "
            " AS k FROM here) AS h "
            "ON h.mid = t.mid AND h.size = t.size AND h.k = t.k WHERE h.k IS NULL ORDER BY t.pos"
        )
        yield from rows

    def close(self) -> None:
        self.db.close()


class _Matcher:
    """Pairs local messages and server messages of the same identity as they arrive,
    first come first paired on each side; the unmatched wait in dicts by identity, and
    past `limit` in a `_Spill`."""

    def __init__(self, on_pair: Callable[[LocalMessage, int], None], limit: int) -> None:
        self.on_pair = on_pair
        self.limit = limit
        # identity -> the waiting local message(s) / server position(s), oldest first;
        # only one side of an identity waits at a time
        self.here: dict[tuple[str, int], LocalMessage | list[LocalMessage]] = {}
        self.there: dict[tuple[str, int], int | list[int]] = {}
        self.waiting = 0
        self.most = 0  # (the most that waited at once: for tests and measurements)
        self.spill: _Spill | None = None

    def local(self, m: LocalMessage, ident: tuple[str, int]) -> None:
        if self.spill is not None:
            self.spill.local(m, ident)
            return
        pos = _take(self.there, ident)
        if pos is not None:
            self.waiting -= 1
            self.on_pair(m, pos)
            return
        _put(self.here, ident, m)
        self._grew()

    def remote(self, pos: int, ident: tuple[str, int]) -> None:
        if self.spill is not None:
            self.spill.remote(pos, ident)
            return
        m = _take(self.here, ident)
        if m is not None:
            self.waiting -= 1
            self.on_pair(m, pos)
            return
        _put(self.there, ident, pos)
        self._grew()

    def _grew(self) -> None:
        self.waiting += 1
        self.most = max(self.most, self.waiting)
        if self.waiting > self.limit:
            spill = self.spill = _Spill()
            for ident, ms in self.here.items():
                for m in ms if isinstance(ms, list) else (ms,):
                    spill.local(m, ident)
            for ident, ps in self.there.items():
                for pos in ps if isinstance(ps, list) else (ps,):
                    spill.remote(pos, ident)
            self.here, self.there = {}, {}

    def finish(
        self, left_there: Callable[[int, tuple[str, int]], None] | None = None
    ) -> Iterator[LocalMessage]:
        """Pair what the spill holds; yields the local messages left without a partner,
        then gives `left_there` each server message left so (position, identity)."""
        if self.spill is None:
            for ms in self.here.values():
                yield from ms if isinstance(ms, list) else (ms,)
            if left_there is not None:
                for ident, ps in self.there.items():
                    for at in ps if isinstance(ps, list) else (ps,):
                        left_there(at, ident)
            return
        try:
            for m, pos in self.spill.matches():
                if pos is None:
                    yield m
                else:
                    self.on_pair(m, pos)
            if left_there is not None:
                for at, mid, size in self.spill.left_there():
                    left_there(at, (mid, size))
        finally:
            self.spill.close()
            self.spill = None


def _put(d: dict[tuple[str, int], _W | list[_W]], ident: tuple[str, int], item: _W) -> None:
    # one item as itself, several as a list (most identities are unique)
    had = d.get(ident)
    if had is None:
        d[ident] = item
    elif isinstance(had, list):
        had.append(item)
    else:
        d[ident] = [had, item]


def _take(d: dict[tuple[str, int], _W | list[_W]], ident: tuple[str, int]) -> _W | None:
    found = d.pop(ident, None)
    if isinstance(found, list):
        item = found.pop(0)
        d[ident] = found if len(found) > 1 else found[0]
        return item
    return found


def _known_uid(m: LocalMessage) -> int | None:
    """The UID the index pairs `m` with where its flags are as last synced (else None):
    paired again with the message of that UID, with those flags there, its row need not
    be written (`Pairs.add`'s `known`)."""
    return m.uid if m.synced_flags == m.flags else None


def _unnamed_row(
    row: int | None, key: str, flags: frozenset[str], kuid: int | None
) -> LocalMessage:
    """A waiting local message as it comes back from SQLite (what the planner needs of
    it): `kuid` as `_known_uid` gave it."""
    return LocalMessage(row, key, kuid, flags, True, "", None, None if kuid is None else flags)


# --- messages without a Message-ID --------------------------------------------------------


def _named(message_id: str) -> bool:
    """A Message-ID good to pair by (with the size): one with an "@". Garbage such as
    "<>" or "unknown" is what one broken program gives all its mail, so pairing by it
    could take one message for another of the same size; those pay for a digest
    instead (`_Unnamed`). (The test is inlined where every message passes it.)"""
    return "@" in message_id


#: a batch of local files asked for their digests at once
_BATCH = 500
#: server messages asked for their digests at once (several commands in flight)
_THERE_BATCH = 4096


class _Unnamed:
    """Messages without a usable Message-ID, paired by size and a digest of their
    header block (lines, Date, Received..., as exact bytes: the local file is the
    server's BODY[], byte for byte, and BODY[HEADER] is its start).

    Why the header block and not the whole message: a server message's header costs
    one `BODY.PEEK[HEADER]` (a few KB), its body may be megabytes, and these are
    usually all paired (the same messages on both sides). Only the messages whose
    size some unpaired one on the other side has are asked for: here their files'
    header blocks are read (`Digests.here`), there their headers fetched in
    pipelined UID sets (`Digests.there`).

    Ambiguity: messages of the same size and header block but different bodies (a
    program sending the same headers twice) would be taken for each other if paired
    one by one in order; a wrong pairing is lost mail later (a deletion here expunges
    the other message there). So where a (size, header digest) has more than one
    message on either side, those messages are compared by a digest of their whole
    content, and paired one to one, the k-th here (in the order given: the old UIDs')
    with the k-th there (the new UIDs'), only among equal ones: byte-identical
    copies, for which it does not matter which goes with which. What is left (no
    partner, a file gone, a message expunged meanwhile) is copied as it would be
    without this: nothing is deleted, and nothing is paired that is not the same
    message (but for a 128-bit digest collision).

    Files with bare LF line ends (written or rewritten here by another program, or
    uploaded so: the server stores and counts such a message with CRLF, as IMAP
    gives it): their size is not the server's, so neither the pairing by Message-ID
    and size nor the first round here finds them. A second round takes what is still
    unpaired on both sides, also the messages with a Message-ID that found no
    partner by it (`take_leftover`, `take_remote(named=True)`), and compares each
    file as the server would give it (`Digests.measure`: the size and header digest
    with every bare LF made CRLF) with the server's, by the same rules. That reads
    the whole of each such file here, so it runs only when both sides still have
    unpaired messages after the first round (new mail on both sides, or such files).

    Both sides wait in a private SQLite database (a bounded cache in memory, the rest
    in a file), written by 1,000, and every query walks its indexes: memory does not
    grow with the number of such messages (`_round`)."""

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None
        self._here: list[tuple[int, int, int | None, str, int, int, int | None]] = []
        self._seq = 0
        self._unnamed_here = 0
        self.flag_sets = _FlagSets()
        # the server's: (position, size, 1 for a Message-ID), written to `tpos` by 1,000
        self._there: list[tuple[int, int, int]] = []
        self._there_count = 0
        self.paired = 0

    def take_local(self, m: LocalMessage) -> bool:
        """Keep the local message `m` for `finish` if it has no usable Message-ID (and a
        size): True when kept."""
        if m.size is None or _named(m.message_id):
            return False
        self._keep(m, m.size, 0)
        self._unnamed_here += 1
        return True

    def take_leftover(self, m: LocalMessage) -> None:
        """Keep the local message `m`, which has a Message-ID but no partner by it, for
        the second round (its file may have bare LF line ends)."""
        self._keep(m, -1 if m.size is None else m.size, 1)

    def _keep(self, m: LocalMessage, size: int, named: int) -> None:
        flags = self.flag_sets.number(m.flags)
        self._here.append((self._seq, size, m.row, m.key, flags, named, _known_uid(m)))
        self._seq += 1
        if len(self._here) >= 1000:
            self._flush()

    def take_remote(
        self, pos: int, message_id: str | None, size: int | None, *, named: bool = False
    ) -> bool:
        """The same for the server's message at `pos` with this Message-ID and size
        (None: not asked for). `named`: one with a Message-ID that no local message
        had (with its size), kept for the second round."""
        if message_id is None or size is None or (_named(message_id) and not named):
            return False
        self._there.append((pos, size, 1 if named else 0))
        self._there_count += 1
        if len(self._there) >= 1000:
            self._flush()
        return True

    def _open(self) -> sqlite3.Connection:
        if self.db is None:
            db = self.db = _private_db()
            db.executescript(
                "CREATE TABLE here(seq INTEGER PRIMARY KEY, size INTEGER NOT NULL, row INTEGER, "
                " key TEXT NOT NULL, flags INTEGER NOT NULL, named INTEGER NOT NULL, kuid INTEGER);"
                "CREATE INDEX here_size ON here(size);"
                "CREATE TABLE there(uid INTEGER PRIMARY KEY, pos INTEGER NOT NULL, "
                " size INTEGER NOT NULL, named INTEGER NOT NULL);"
                "CREATE INDEX there_size ON there(size);"
                # (as they came, before their UIDs are looked up)
                "CREATE TABLE tpos(pos INTEGER NOT NULL, size INTEGER NOT NULL, "
                " named INTEGER NOT NULL);"
                # digests of header blocks (h: here, t: there) and of whole messages
                "CREATE TABLE hh(seq INTEGER PRIMARY KEY, d BLOB NOT NULL);"
                "CREATE TABLE th(uid INTEGER PRIMARY KEY, d BLOB NOT NULL);"
                "CREATE TABLE hw(seq INTEGER PRIMARY KEY, d BLOB NOT NULL);"
                "CREATE TABLE tw(uid INTEGER PRIMARY KEY, d BLOB NOT NULL);"
                # a round's keys: (size, header digest) of the messages it compares
                "CREATE TABLE hk(seq INTEGER PRIMARY KEY, size INTEGER NOT NULL, d BLOB NOT NULL);"
                "CREATE INDEX hk_key ON hk(size, d);"
                "CREATE TABLE tk(uid INTEGER PRIMARY KEY, size INTEGER NOT NULL, d BLOB NOT NULL);"
                "CREATE INDEX tk_key ON tk(size, d);"
                # the (size, header digest) found on both sides, with how many each has
                "CREATE TABLE g(size INTEGER, d BLOB, nh INTEGER, nt INTEGER, "
                " PRIMARY KEY (size, d)) WITHOUT ROWID;"
                # a round's pairings, found in key order, given in the order here
                "CREATE TABLE pr(seq INTEGER PRIMARY KEY, pos INTEGER NOT NULL, "
                " uid INTEGER NOT NULL);"
                "CREATE TABLE done(seq INTEGER PRIMARY KEY);"
                "CREATE TABLE tdone(uid INTEGER PRIMARY KEY);"
                # the server messages whose digests `_digest_there` asks for
                "CREATE TABLE want(uid INTEGER PRIMARY KEY);"
                "BEGIN"
            )
        return self.db

    def _flush(self) -> None:
        db = self._open()
        db.executemany("INSERT INTO here VALUES (?,?,?,?,?,?,?)", self._here)
        db.executemany("INSERT INTO tpos VALUES (?,?,?)", self._there)
        self._here.clear()
        self._there.clear()

    def finish(
        self,
        digests: Digests,
        uid_at: Callable[[int], int],
        on_pair: Callable[[LocalMessage, int], None],
        left_there: Callable[[int], None] | None = None,
    ) -> Iterator[LocalMessage]:
        """Pair what can be; yields the local messages left without a partner, then gives
        `left_there` the position of each server message left so, in ascending order
        (a UID given twice may come twice)."""
        try:
            listed = bool(self._seq and self._there_count)
            if listed:
                self._pair(digests, uid_at, on_pair)
            yield from self._left()
            if left_there is not None and self._there_count:
                for pos in self._left_there(listed):
                    left_there(pos)
        finally:
            if self.db is not None:
                self.db.close()
                self.db = None

    def _pair(
        self,
        digests: Digests,
        uid_at: Callable[[int], int],
        on_pair: Callable[[LocalMessage, int], None],
    ) -> None:
        self._flush()
        db = self._open()
        # (a UID the server gave twice, as another client's flag change in the middle of
        # the listing makes it: its first place counts, as for the others)
        came = db.execute("SELECT pos, size, named FROM tpos ORDER BY rowid")
        while batch := came.fetchmany(_BATCH):
            db.executemany(
                "INSERT OR IGNORE INTO there VALUES (?,?,?,?)",
                ((uid_at(pos), pos, size, named) for pos, size, named in batch),
            )
        db.execute("DELETE FROM tpos")
        if self._unnamed_here:
            # round 1: the messages without a Message-ID, by the sizes recorded
            self._digest_here(
                digests,
                "hh",
                "SELECT seq, key, flags FROM here WHERE named = 0 AND size IN "
                "(SELECT size FROM there WHERE named = 0)",
            )
            self._digest_there(
                digests,
                "th",
                "SELECT uid FROM there WHERE named = 0 AND size IN "
                "(SELECT size FROM here JOIN hh USING (seq))",
            )
            db.execute("INSERT INTO hk SELECT seq, size, d FROM here JOIN hh USING (seq)")
            db.execute(
                "INSERT INTO tk SELECT uid, size, d FROM there JOIN th USING (uid) WHERE named = 0"
            )
            self._round(digests, on_pair)
        # round 2: what is left on both sides, the files here as the server would count
        # and give them (bare LF line ends as CRLF): only those whose size that changes
        if not db.execute(
            "SELECT EXISTS (SELECT 1 FROM there WHERE uid NOT IN (SELECT uid FROM tdone)) "
            "AND EXISTS (SELECT 1 FROM here WHERE seq NOT IN (SELECT seq FROM done))"
        ).fetchone()[0]:
            return
        sets = self.flag_sets.sets
        rows = db.execute(
            "SELECT seq, key, flags, size FROM here WHERE seq NOT IN (SELECT seq FROM done) "
            "ORDER BY seq"
        )
        while batch := rows.fetchmany(_BATCH):
            found = digests.measure([(key, sets[flags]) for _, key, flags, _ in batch])
            db.executemany(
                "INSERT INTO hk VALUES (?,?,?)",
                (
                    (seq, got[0], got[1])
                    for (seq, _, _, size), got in zip(batch, found, strict=True)
                    if got is not None and got[0] != size
                ),
            )
        self._digest_there(
            digests,
            "th",
            "SELECT uid FROM there WHERE uid NOT IN (SELECT uid FROM tdone) "
            "AND uid NOT IN (SELECT uid FROM th) AND size IN (SELECT size FROM hk)",
        )
        db.execute(
            "INSERT INTO tk SELECT uid, size, d FROM there JOIN th USING (uid) "
            "WHERE uid NOT IN (SELECT uid FROM tdone)"
        )
        self._round(digests, on_pair)

    def _round(self, digests: Digests, on_pair: Callable[[LocalMessage, int], None]) -> None:
        """Pair the messages of `hk` (here) and `tk` (there) of equal (size, header
        digest), as the class says; empties both for the next round.

        Memory: each query walks an index in key order (no GROUP BY or window sorted or
        kept in a temporary b-tree: SQLite gives each of those its own cache of up to
        2 MB, ~12 MB for this round's former queries at 100,000 messages); the k-th
        here meets the k-th there in one merge of both sides in key order."""
        assert self.db is not None
        db = self.db
        db.execute("DELETE FROM g")
        db.execute(
            "INSERT INTO g SELECT size, d, count(*), "
            "(SELECT count(*) FROM tk WHERE tk.size = hk.size AND tk.d = hk.d) AS nt "
            "FROM hk GROUP BY size, d HAVING nt > 0"
        )
        # where a (size, header digest) is more than one message's on either side
        self._digest_here(
            digests,
            "hw",
            "SELECT s.seq, s.key, s.flags FROM here AS s JOIN hk AS x USING (seq) "
            "JOIN g ON g.size = x.size AND g.d = x.d WHERE (g.nh > 1 OR g.nt > 1) "
            "AND s.seq NOT IN (SELECT seq FROM hw)",
            whole=True,
        )
        self._digest_there(
            digests,
            "tw",
            "SELECT x.uid FROM tk AS x JOIN g ON g.size = x.size AND g.d = x.d "
            "WHERE (g.nh > 1 OR g.nt > 1) AND x.uid NOT IN (SELECT uid FROM tw)",
            whole=True,
        )
        # the k-th of a (size, header digest[, whole digest]) here with the k-th there;
        # of an ambiguous group only those with a whole digest. Both sides in the order
        # of that key (then the old UIDs' here, the new ones' there): one merge
        here = db.execute(
            "SELECT x.size, x.d, w.d, x.seq FROM hk AS x JOIN g ON g.size = x.size AND g.d = x.d "
            "LEFT JOIN hw AS w USING (seq) WHERE (g.nh = 1 AND g.nt = 1) OR w.d IS NOT NULL "
            "ORDER BY x.size, x.d, w.d, x.seq"
        )
        there = db.execute(
            "SELECT x.size, x.d, w.d, s.pos, s.uid FROM tk AS x JOIN there AS s USING (uid) "
            "JOIN g ON g.size = x.size AND g.d = x.d LEFT JOIN tw AS w USING (uid) "
            "WHERE (g.nh = 1 AND g.nt = 1) OR w.d IS NOT NULL ORDER BY x.size, x.d, w.d, s.pos"
        )
        db.execute("DELETE FROM pr")
        found: list[tuple[int, int, int]] = []
        h, t = next(here, None), next(there, None)
        while h is not None and t is not None:
            # (no whole digest: SQLite orders NULL first, as b"" is here; a digest is
            # never empty)
            kh, kt = (h[0], h[1], h[2] or b""), (t[0], t[1], t[2] or b"")
            if kh < kt:
                h = next(here, None)
            elif kt < kh:
                t = next(there, None)
            else:
                found.append((h[3], t[3], t[4]))
                if len(found) >= _BATCH:
                    db.executemany("INSERT INTO pr VALUES (?,?,?)", found)
                    found.clear()
                h, t = next(here, None), next(there, None)
        here.close()
        there.close()
        db.executemany("INSERT INTO pr VALUES (?,?,?)", found)
        # given in the order here (the old UIDs'): the index rows are written in the
        # order they were read, page after page
        sets = self.flag_sets.sets
        rows = db.execute(
            "SELECT s.row, s.key, s.flags, s.kuid, p.pos FROM pr AS p JOIN here AS s USING (seq) "
            "ORDER BY p.seq"
        )
        for row, key, flags, kuid, pos in rows:
            on_pair(_unnamed_row(row, key, sets[flags], kuid), pos)
        db.execute("INSERT INTO done SELECT seq FROM pr")
        db.execute("INSERT INTO tdone SELECT uid FROM pr")
        self.paired += db.execute("SELECT count(*) FROM pr").fetchone()[0]
        db.execute("DELETE FROM hk")
        db.execute("DELETE FROM tk")

    def _digest_here(self, digests: Digests, table: str, query: str, whole: bool = False) -> None:
        assert self.db is not None
        sets = self.flag_sets.sets
        rows = self.db.execute(query + " ORDER BY seq")
        while batch := rows.fetchmany(_BATCH):
            found = digests.here([(key, sets[flags]) for _, key, flags in batch], whole)
            self.db.executemany(
                f"INSERT INTO {table} VALUES (?,?)",  # noqa: S608 (one of this class's tables)
                ((seq, d) for (seq, _, _), d in zip(batch, found, strict=True) if d is not None),
            )

    def _digest_there(self, digests: Digests, table: str, query: str, whole: bool = False) -> None:
        """Digests of the server messages whose UIDs `query` gives, into `table`. The
        UIDs go to a table first (one run of the query: a query run per batch ran its
        subqueries again each time), then to the server _THERE_BATCH at a time, read
        while it answers (one stream of pipelined commands): neither the UIDs nor the
        digests are all held at once."""
        assert self.db is not None
        db = self.db
        db.execute("DELETE FROM want")
        # `query` is one of this class's own
        if not db.execute(f"INSERT OR IGNORE INTO want {query}").rowcount:
            return

        def uids() -> Iterator[int]:
            after = -1
            while True:
                batch = array(
                    _U32,
                    (
                        u
                        for (u,) in db.execute(
                            "SELECT uid FROM want WHERE uid > ? ORDER BY uid LIMIT ?",
                            (after, _THERE_BATCH),
                        )
                    ),
                )
                yield from batch
                if len(batch) < _THERE_BATCH:
                    return
                after = batch[-1]

        # (a UID answered twice: its first digest counts; one not asked for pairs nothing)
        insert = f"INSERT OR IGNORE INTO {table} VALUES (?,?)"  # noqa: S608 (as above)
        got: list[tuple[int, bytes]] = []
        for item in digests.there(uids(), whole):
            got.append(item)
            if len(got) >= _BATCH:
                db.executemany(insert, got)
                got.clear()
        db.executemany(insert, got)

    def _left_there(self, listed: bool) -> Iterator[int]:
        if self.db is None:
            yield from sorted(pos for pos, _, _ in self._there)
            return
        self._flush()
        if listed:  # (by `_pair`: in `there` once a UID, paired in `tdone`)
            # (positions go up with UIDs in both planners: ordered by the primary key)
            query = "SELECT pos FROM there WHERE uid NOT IN (SELECT uid FROM tdone) ORDER BY uid"
        else:
            query = "SELECT pos FROM tpos ORDER BY pos"
        for (pos,) in self.db.execute(query):
            yield pos

    def _left(self) -> Iterator[LocalMessage]:
        sets = self.flag_sets.sets
        if self.db is None:
            for _, _, row, key, flags, _, _ in self._here:
                yield LocalMessage(row, key, None, sets[flags], True)
            return
        self._flush()
        rows = self.db.execute(
            "SELECT row, key, flags FROM here WHERE seq NOT IN (SELECT seq FROM done) ORDER BY seq"
        )
        for row, key, flags in rows:
            yield LocalMessage(row, key, None, sets[flags], True)


# --- the planner -------------------------------------------------------------------------


def plan_repair(
    local: Iterable[LocalMessage],
    last_synced: SyncedState,
    uidvalidity: int,
    remote: Callable[[bool], Iterable[RemoteIdentity]],
    *,
    exclude_uids: Iterable[int] = (),
    limit: int = LIMIT,
    digests: Digests | None = None,
    kept: Kept | None = None,
) -> Plan:
    """The plan after the server's UIDVALIDITY changed (`last_synced.uidvalidity` is the
    old one), the same as `plan.plan`'s, with the pairings of index rows in `Plan.pairs`
    and the server messages to download in `Plan.fetch`.

    `local`: the folder's messages here, streamed (their UIDs are void). `remote(want)`:
    every server message with its flags and, when `want`, its Message-ID and size,
    streamed in UID order (a message whose identity is not given is downloaded);
    `want` is False when no message here is left to pair (then none is paired). The
    two streams are read in turns, so each side's message meets its partner soon.
    `exclude_uids`: server messages another step owns (neither paired nor fetched).
    `digests`: how messages without a usable Message-ID are paired (by size and a hash
    of their headers, see `_Unnamed`); None: they are not (copied to the other side).
    `kept`: index rows paired already with the message of their own UID (`keep`),
    neither among `local` nor among `remote`'s; counted in the plan's note."""
    result = Plan()
    result.uidvalidity_changed = True
    result.kept = kept
    excluded = set(exclude_uids)
    # A server message is known by one number, its UID and the number of its flag set
    # (`_at`), not by its place in a listing of all of them: nothing is kept per server
    # message but while it waits for its partner (`_Matcher`, `_Unnamed`) and, if it is
    # to be downloaded, its UID in `fetch` (a listing took 9 bytes a message and a
    # "paired" mark 1 more: 2 MB at 200,000)
    flag_sets = _FlagSets()
    pairs = result.pairs
    actions = result.actions

    def on_pair(m: LocalMessage, at: int) -> None:
        uid, flags = at >> _FLAG_BITS, flag_sets.sets[at & _FLAG_MASK]
        if m.row is not None:
            pairs.add(m.row, uid, m.flags, flags, m.uid == uid and m.synced_flags == m.flags)
        else:  # a file the index does not know yet: adopted when the plan is applied
            actions.append(Pair(m.key, None, uid))
            _merge_into(result, m, uid, flags, use_base=False)

    matcher = _Matcher(on_pair, limit)
    unnamed = _Unnamed() if digests is not None else None
    # the UIDs to download: those without an identity as they come (ascending from a
    # server that answers in order), those left without a partner at the end (each
    # source ascending), merged
    direct = array(_U32)
    left = array(_U32)
    late = array(_U32)

    def take_local(m: LocalMessage) -> None:
        if not m.present:
            if m.row is not None:
                actions.append(Forget(m.row))  # its file is gone (and its UID void)
            return
        ident = _identity(m.message_id, m.size)
        if ident is not None and (unnamed is None or "@" in ident[0]):  # (`_named`)
            matcher.local(m, ident)
        elif unnamed is None or not unnamed.take_local(m):
            actions.append(Upload(m.key, m.row, _clean(m.flags)))

    in_order = True
    last = -1

    def take_remote(item: RemoteIdentity) -> None:
        nonlocal in_order, last
        uid, flags, message_id, size = item
        if uid in excluded:
            return
        if uid <= last:
            in_order = False
        last = uid
        ident = _identity(message_id, size)
        if ident is not None and (unnamed is None or "@" in ident[0]):  # (`_named`)
            fs = flags if isinstance(flags, frozenset) else frozenset(flags)
            matcher.remote(uid << _FLAG_BITS | flag_sets.number(fs), ident)
        elif unnamed is not None and message_id is not None and size is not None:
            fs = flags if isinstance(flags, frozenset) else frozenset(flags)
            unnamed.take_remote(uid << _FLAG_BITS | flag_sets.number(fs), message_id, size)
        else:
            direct.append(uid)

    here = iter(local)
    first = None
    for m in here:
        if m.present:
            first = m
            break
        take_local(m)
    there = iter(remote(first is not None))
    if first is not None:
        take_local(first)
        # in turns: one from each side
        for m, r in itertools.zip_longest(here, there):
            if m is not None:
                take_local(m)
            if r is not None:
                take_remote(r)
        if unnamed is None:

            def left_there(at: int, ident: tuple[str, int]) -> None:
                left.append(at >> _FLAG_BITS)

        else:
            # (left without a partner by Message-ID and size: compared again as files
            # with bare LF line ends may be, see `_Unnamed`)
            def left_there(at: int, ident: tuple[str, int]) -> None:
                assert unnamed is not None
                unnamed.take_remote(at, ident[0], ident[1], named=True)

        for m in matcher.finish(left_there):
            if unnamed is None:
                actions.append(Upload(m.key, m.row, _clean(m.flags)))
            else:
                unnamed.take_leftover(m)
        if unnamed is not None and digests is not None:

            def left_late(at: int) -> None:
                late.append(at >> _FLAG_BITS)

            for m in unnamed.finish(digests, lambda at: at >> _FLAG_BITS, on_pair, left_late):
                actions.append(Upload(m.key, m.row, _clean(m.flags)))
            result.hashed = unnamed.paired
    else:  # (nothing here to pair: every server message is downloaded)
        for r in there:
            uid = r[0]
            if uid not in excluded:
                in_order = in_order and uid > last
                last = uid
                direct.append(uid)
    if not _ascending(left):  # (the matcher's own leftovers: at most `limit`)
        left = array(_U32, sorted(left))
    if in_order:
        fetch = array(_U32, _unique(heapq.merge(direct, left, late)))
    else:
        # (rare: a server answering out of order, or a UID twice, as when another
        # client's flag change comes in the middle) each UID once, none that is paired
        done = sorted(itertools.chain(pairs.uids, (a.uid for a in actions if isinstance(a, Pair))))
        fetch = array(_U32, (u for u in sorted({*direct, *left, *late}) if not _among(done, u)))
    result.fetch = fetch
    pairings = len(pairs) + sum(1 for a in actions if isinstance(a, Pair))
    if kept is not None:
        pairings += kept.count
    uploads = sum(1 for a in actions if isinstance(a, Upload))
    result.notes.append(
        repair_note(
            last_synced.uidvalidity, uidvalidity, pairings, len(fetch), uploads, result.hashed
        )
    )
    return result


#: a server message in the planner: its UID above this many bits, its flag set's number
#: below (UIDs are 32-bit: at most 63 bits in all, an SQLite integer)
_FLAG_BITS = 31
_FLAG_MASK = (1 << _FLAG_BITS) - 1


def _ascending(items: array[int]) -> bool:
    return all(map(operator.le, items, itertools.islice(items, 1, None)))


def _unique(ordered: Iterable[int]) -> Iterator[int]:
    last = -1
    for item in ordered:
        if item != last:
            yield item
            last = item


def _among(ordered: list[int], item: int) -> bool:
    i = bisect_left(ordered, item)
    return i < len(ordered) and ordered[i] == item


def listed_identities(
    listing: RemoteListing,
    identities: Callable[[Sequence[int]], Identities],
    excluded: set[int],
) -> Callable[[bool], Iterator[RemoteIdentity]]:
    """`plan_repair`'s server side from a folder's listing and a source of identities
    (as `plan.plan_stream` takes them): the identities of the listed messages, asked
    for only when wanted, then the listed messages they left out (without one)."""

    def messages(want: bool) -> Iterator[RemoteIdentity]:
        uids = array(_U32, (uid for uid, _ in listing if uid not in excluded))
        if not want or not uids:
            for uid, flags in listing:
                yield uid, flags, None, None
            return
        answered = bytearray(len(listing))
        for uid, message_id, size in identities(uids):
            i = listing.index(uid)
            if i < 0 or answered[i] or uid in excluded:
                continue  # not asked for
            answered[i] = 1
            yield uid, listing.flags_at(i), message_id, size
        for i in range(len(listing)):
            if not answered[i]:
                yield listing.uid_at(i), listing.flags_at(i), None, None

    return messages
