"""Pairing messages without a Message-ID again after a UIDVALIDITY change: by size and a
digest of their header block, by one of their whole content where headers and sizes
are shared (`repair._Unnamed`), with plain values for both sides; and the header
digest of a file agreeing with the server's BODY[HEADER] (Dovecot's answers, as
bytes) however the file is read."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from mailbag.sync import repair
from mailbag.sync.digests import digest_file, head_digest
from mailbag.sync.plan import LocalMessage, Plan, SyncedState, Upload
from mailbag.sync.repair import RemoteIdentity, plan_repair
from memtools import least_of_three, traced_peak
from synctools import HEADER_CASES

SEEN = frozenset({"\\Seen"})
NONE: frozenset[str] = frozenset()


def _whole(data: bytes) -> bytes:
    return digest_file_bytes(data, whole=True)


def digest_file_bytes(data: bytes, whole: bool) -> bytes:
    import hashlib

    if whole:
        return hashlib.blake2b(_crlf(data), digest_size=16).digest()
    return head_digest([data])


def _crlf(data: bytes) -> bytes:
    """`data` as an IMAP server gives it: every bare LF made CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.mark.parametrize(("message", "header"), HEADER_CASES)
def test_the_header_digest_is_that_of_the_servers_header_answer(
    message: bytes, header: bytes, tmp_path: Path
) -> None:
    import hashlib

    want = hashlib.blake2b(header, digest_size=16).digest()
    assert head_digest([message]) == want
    path = tmp_path / "m"
    path.write_bytes(message)
    assert digest_file(path, whole=False) == want
    assert digest_file(path, whole=True) == hashlib.blake2b(message, digest_size=16).digest()
    # cut anywhere, in pieces of any size: the same
    for size in (1, 2, 3, 5):
        pieces = [message[i : i + size] for i in range(0, len(message), size)]
        assert head_digest(pieces) == want, size


def test_a_file_is_read_no_further_than_its_header_block() -> None:
    read: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        for piece in (b"Subject: a\r\n", b"\r", b"\n\r\n", b"body " * 10, b"never"):
            read.append(piece)
            yield piece

    assert head_digest(chunks()) == head_digest([b"Subject: a\r\n\r\n"])
    assert read[-1] == b"\n\r\n"
    assert digest_file(Path("/nonexistent/mailbag-test"), whole=False) is None


def _long_header(length: int, bare_lf_at: int | None = None) -> bytes:
    """A message whose header block (its closing empty line included) is `length`
    bytes, a bare LF line end at `bare_lf_at` if given, then a body."""
    lines = b"Subject: long\r\n"
    n = 0
    while len(lines) + 2 < length:
        room = length - 2 - len(lines)
        line = b"X-Pad-%d: " % n
        line += b"p" * max(0, min(70, room - len(line) - 2)) + b"\r\n"
        if len(line) > room:
            line = b"Y:" + b"q" * max(0, room - 4) + b"\r\n"
        lines += line
        n += 1
    data = lines + b"\r\n" + b"body line\r\n" * 50
    assert data.index(b"\r\n\r\n") + 4 == length, (data.index(b"\r\n\r\n") + 4, length)
    if bare_lf_at is not None:
        # a CRLF at or after `bare_lf_at` inside the header made a bare LF
        at = data.index(b"\r\n", bare_lf_at)
        data = data[:at] + data[at + 1 :]
    return data


@pytest.mark.parametrize(
    ("length", "bare_lf_at"),
    [
        (4000, None),
        (4094, None),  # the empty line's CRLF is the first read's last two bytes
        (4095, None),  # cut between its CR and LF, then after its CR LF CR
        (4096, None),
        (4097, None),
        (4099, None),
        (4101, None),
        (9000, None),
        (70_000, None),  # longer than a chunk of the reads after the first
        (4000, 100),  # a bare LF in the first read
        (9000, 5000),  # a bare LF only after the first read
        (9000, 8990),
    ],
)
def test_a_header_block_longer_than_the_first_read_gives_the_servers_digest(
    length: int, bare_lf_at: int | None, tmp_path: Path
) -> None:
    import hashlib

    data = _long_header(length, bare_lf_at)
    header = _crlf(data)[: _crlf(data).index(b"\r\n\r\n") + 4]  # (what Dovecot gives)
    path = tmp_path / "m"
    path.write_bytes(data)
    assert digest_file(path, whole=False) == hashlib.blake2b(header, digest_size=16).digest()
    assert digest_file(str(path), whole=False) == head_digest([data])


def test_a_file_whose_header_block_ends_early_is_read_4_kb_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from mailbag.sync import digests

    reads: list[int] = []
    real = os.read

    def reading(fd: int, n: int) -> bytes:
        reads.append(n)
        return real(fd, n)

    path = tmp_path / "m"
    path.write_bytes(b"Subject: short\r\n\r\n" + b"body line\r\n" * 5000)
    monkeypatch.setattr(digests.os, "read", reading)
    assert digest_file(path, whole=False) == head_digest([b"Subject: short\r\n\r\n"])
    assert reads == [4096]


def test_random_cuts_give_the_same_digest() -> None:
    rng = random.Random(5)
    for _ in range(300):
        parts = [rng.choice([b"\r\n", b"\r", b"\n", b"A: b", b"x", b" "]) for _ in range(12)]
        data = b"".join(parts)
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 4))))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert head_digest(pieces) == head_digest([data]), data


# --- the planner, with both sides as plain values ----------------------------------------


class Mail:
    """Both sides of a folder as bytes: `here` Maildir key -> message, `there` UID ->
    message; records what each side was asked for."""

    def __init__(self, here: dict[str, bytes], there: dict[int, bytes]) -> None:
        self.here, self.there = here, there
        self.asked_here: list[tuple[str, bool]] = []
        self.asked_there: list[tuple[int, bool]] = []
        self.measured: list[str] = []

    def digests_here(
        self, files: Sequence[tuple[str, frozenset[str]]], whole: bool
    ) -> Iterator[bytes | None]:
        for key, _flags in files:
            self.asked_here.append((key, whole))
            data = self.here.get(key)
            yield None if data is None else digest_file_bytes(data, whole)

    def measure_here(
        self, files: Sequence[tuple[str, frozenset[str]]]
    ) -> Iterator[tuple[int, bytes] | None]:
        for key, _flags in files:
            self.measured.append(key)
            data = self.here.get(key)
            yield None if data is None else (len(_crlf(data)), head_digest([data]))

    def digests_there(self, uids: Iterable[int], whole: bool) -> Iterator[tuple[int, bytes]]:
        uids = list(uids)  # (taken as needed: here all at once)
        assert uids == sorted(uids)
        for uid in reversed(uids):  # (in any order)
            self.asked_there.append((uid, whole))
            if uid in self.there:
                yield uid, digest_file_bytes(self.there[uid], whole)


class Digests:
    def __init__(self, mail: Mail) -> None:
        self.mail = mail

    def here(
        self, files: Sequence[tuple[str, frozenset[str]]], whole: bool
    ) -> Iterable[bytes | None]:
        return self.mail.digests_here(files, whole)

    def there(self, uids: Iterable[int], whole: bool) -> Iterable[tuple[int, bytes]]:
        return self.mail.digests_there(uids, whole)

    def measure(
        self, files: Sequence[tuple[str, frozenset[str]]]
    ) -> Iterable[tuple[int, bytes] | None]:
        return self.mail.measure_here(files)


def _message_id(data: bytes) -> str:
    from mailbag.store.envelope import message_id_of

    return message_id_of(data)


def _plan(
    mail: Mail,
    flags_here: dict[str, frozenset[str]] | None = None,
    flags_there: dict[int, frozenset[str]] | None = None,
    *,
    limit: int = repair.LIMIT,
    listed: Iterable[int] | None = None,
) -> Plan:
    """The plan for `mail` (index rows numbered from 1 in the order of `mail.here`)."""
    flags_here = flags_here or {}
    flags_there = flags_there or {}
    local = [
        LocalMessage(
            n + 1,
            key,
            100 + n,  # (old UIDs: void)
            flags_here.get(key, NONE),
            True,
            _message_id(data),
            len(data),
            NONE,
        )
        for n, (key, data) in enumerate(mail.here.items())
    ]

    def remote(want: bool) -> Iterator[RemoteIdentity]:
        for uid in sorted(mail.there) if listed is None else listed:
            data = mail.there[uid]
            yield uid, flags_there.get(uid, NONE), _message_id(data), len(data)

    return plan_repair(local, SyncedState(1), 2, remote, digests=Digests(mail), limit=limit)


def _pairs(p: Plan, mail: Mail) -> dict[str, int]:
    """Maildir key -> UID of the plan's pairings (rows are numbered as `_plan` does)."""
    keys = {n + 1: key for n, key in enumerate(mail.here)}
    return {keys[row]: uid for row, uid in zip(p.pairs.rows, p.pairs.uids, strict=True)}


def _uploads(p: Plan) -> list[str]:
    return sorted(a.key for a in p.actions if isinstance(a, Upload))


def _msg(subject: str, body: str, extra: str = "") -> bytes:
    return (
        f"From: cron@host\r\nSubject: {subject}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n"
        f"{extra}\r\n{body}\r\n"
    ).encode()


def test_messages_without_a_message_id_are_paired_by_size_and_header_digest() -> None:
    a, b, c = _msg("a", "one"), _msg("b", "two"), _msg("c", "three")
    named = b"Message-ID: <n@x>\r\nSubject: n\r\n\r\nhi\r\n"
    mail = Mail({"ka": a, "kb": b, "kc": c, "kn": named}, {20: c, 21: named, 22: b, 23: a})
    got = _plan(mail, {"ka": SEEN}, {22: frozenset({"\\Answered"})})
    assert _pairs(got, mail) == {"ka": 23, "kb": 22, "kc": 20, "kn": 21}
    assert not got.fetch and not _uploads(got) and got.hashed == 3
    assert got.notes == [
        "the server's UIDVALIDITY changed (1 -> 2): 4 messages paired again (1 by Message-ID "
        "and size, 3 without one by size and header hash), 0 new there to download, 0 only "
        "here to upload; nothing was deleted"
    ]
    # flags united: each side's change kept
    merges = {
        uid: got.pairs.table[n][0] for uid, n in zip(got.pairs.uids, got.pairs.merges, strict=True)
    }
    assert merges[23] == SEEN and merges[22] == {"\\Answered"}
    # only headers asked for (no whole message), only of the messages without an ID
    assert sorted(mail.asked_there) == [(20, False), (22, False), (23, False)]
    assert sorted(mail.asked_here) == [("ka", False), ("kb", False), ("kc", False)]


def test_without_digests_they_are_copied_as_before() -> None:
    a = _msg("a", "one")
    mail = Mail({"ka": a}, {20: a})
    local = [LocalMessage(1, "ka", 5, NONE, True, "", len(a), NONE)]
    got = plan_repair(local, SyncedState(1), 2, lambda want: [(20, NONE, "", len(a))])
    assert list(got.fetch) == [20] and _uploads(got) == ["ka"] and got.hashed == 0
    assert not mail.asked_there


def test_only_the_sizes_both_sides_have_are_asked_for() -> None:
    a, b = _msg("a", "one"), _msg("b", "a longer body")
    new_there, only_here = _msg("new", "x" * 50), _msg("here", "y" * 70)
    mail = Mail({"ka": a, "kh": only_here}, {5: new_there, 6: a, 7: b})
    got = _plan(mail)
    assert _pairs(got, mail) == {"ka": 6}
    assert list(got.fetch) == [5, 7] and _uploads(got) == ["kh"]
    assert mail.asked_there == [(6, False)]
    assert mail.asked_here == [("ka", False)]


def test_same_size_other_headers_are_not_paired() -> None:
    a, b = _msg("a", "one"), _msg("b", "one")  # one size
    mail = Mail({"ka": a}, {9: b})
    got = _plan(mail)
    assert not got.pairs and list(got.fetch) == [9] and _uploads(got) == ["ka"]


def test_same_headers_other_bodies_are_told_apart_by_their_content() -> None:
    # a program sending the same header block twice: pairing the k-th here with the
    # k-th there would cross them (the server's order is reversed); a later deletion
    # here would then expunge the other one there
    one, two, three = (
        _msg("alert", "disk 1 full"),
        _msg("alert", "disk 2 full"),
        _msg("alert", "disk 3 full"),
    )
    mail = Mail({"k1": one, "k2": two, "k3": three}, {30: three, 31: two, 32: one})
    got = _plan(mail, {"k1": SEEN})
    assert _pairs(got, mail) == {"k1": 32, "k2": 31, "k3": 30}
    assert not got.fetch and not _uploads(got) and got.hashed == 3
    assert sorted(mail.asked_there) == [(u, w) for u in (30, 31, 32) for w in (False, True)]


def test_one_here_one_there_same_header_is_paired_by_its_header() -> None:
    # (only where a header block and size are shared on a side is the content read)
    one = _msg("alert", "disk 1 full")
    mail = Mail({"k1": one}, {30: one})
    got = _plan(mail)
    assert _pairs(got, mail) == {"k1": 30} and (30, True) not in mail.asked_there


def test_identical_copies_pair_one_to_one_and_the_rest_is_copied() -> None:
    copy = _msg("twice", "the same")
    other = _msg("twice", "the emas")  # same headers and size, other body
    mail = Mail({"k1": copy, "k2": copy, "k3": other}, {40: copy, 41: other, 42: copy, 43: copy})
    got = _plan(mail)
    # the k-th copy here with the k-th there, in order; the third copy there is new here
    assert _pairs(got, mail) == {"k1": 40, "k2": 42, "k3": 41}
    assert list(got.fetch) == [43] and not _uploads(got)
    mail = Mail({"k1": copy, "k2": copy, "k3": copy}, {40: copy, 41: other})
    got = _plan(mail)
    assert _pairs(got, mail) == {"k1": 40} and list(got.fetch) == [41]
    assert _uploads(got) == ["k2", "k3"]


def test_garbage_message_ids_are_paired_by_digest_not_by_the_id() -> None:
    # one broken program gives all its mail "<>": same ID, same size, other messages
    a, b = _msg("a", "one", "Message-ID: <>\r\n"), _msg("b", "two", "Message-ID: <>\r\n")
    c = _msg("c", "six", "Message-ID: unknown\r\n")
    assert _message_id(a) == "<>" and len(a) == len(b)
    mail = Mail({"ka": a, "kb": b, "kc": c}, {50: b, 51: c, 52: a})
    got = _plan(mail)
    assert _pairs(got, mail) == {"ka": 52, "kb": 50, "kc": 51} and got.hashed == 3


def test_a_file_gone_or_a_message_expunged_meanwhile_is_copied_not_paired() -> None:
    a, b = _msg("a", "one"), _msg("b", "two")
    mail = Mail({"ka": a}, {60: a})  # kb's file is gone, 61 expunged since the listing
    local = [
        LocalMessage(1, "ka", 1, NONE, True, "", len(a), NONE),
        LocalMessage(2, "kb", 2, NONE, True, "", len(b), NONE),
    ]
    got = plan_repair(
        local,
        SyncedState(1),
        2,
        lambda want: [(60, NONE, "", len(a)), (61, NONE, "", len(b))],
        digests=Digests(mail),
    )
    assert list(zip(got.pairs.rows, got.pairs.uids, strict=True)) == [(1, 60)]
    assert list(got.fetch) == [61] and _uploads(got) == ["kb"]
    assert sorted(mail.asked_there) == [(60, False), (61, False)]


def test_a_file_the_index_does_not_know_is_adopted_when_paired() -> None:
    a = _msg("a", "one")
    local = [LocalMessage(None, "kx", None, SEEN, True, "", len(a))]
    mail = Mail({"kx": a}, {70: a})
    got = plan_repair(
        local, SyncedState(1), 2, lambda want: [(70, NONE, "", len(a))], digests=Digests(mail)
    )
    assert [type(x).__name__ for x in got.actions] == ["Pair", "SetFlags"]
    assert got.hashed == 1 and not got.fetch


def test_a_uid_listed_twice_pairs_once() -> None:
    a = _msg("a", "one")
    mail = Mail({"ka": a, "kb": a}, {80: a})
    got = _plan(mail, listed=[80, 80])
    assert _pairs(got, mail) == {"ka": 80} and _uploads(got) == ["kb"] and not got.fetch


def _random_mail(rng: random.Random) -> tuple[Mail, dict[str, frozenset[str]]]:
    """Messages without a Message-ID from a few headers and bodies (so sizes, headers
    and whole messages are often shared), some with one, spread over both sides."""
    heads = [f"Subject: s{i}\r\nFrom: f@x\r\n" for i in range(rng.randint(1, 4))]
    bodies = [f"{c * rng.choice([3, 4])}\r\n" for c in "abcdef"[: rng.randint(1, 6)]]
    pool: list[bytes] = []
    for _ in range(rng.randint(1, 12)):
        head = rng.choice(heads)
        if rng.random() < 0.2:
            head += f"Message-ID: <{rng.randrange(5)}@x>\r\n"
        elif rng.random() < 0.1:
            head += "Message-ID: <>\r\n"
        pool.append(f"{head}\r\n{rng.choice(bodies)}".encode())
    here = {f"k{i}": rng.choice(pool) for i in range(rng.randint(0, 10))}
    there = {uid: rng.choice(pool) for uid in rng.sample(range(1, 60), rng.randint(0, 10))}
    flags = {k: SEEN for k in here if rng.random() < 0.3}
    return Mail(here, there), flags


@pytest.mark.parametrize("seed", range(300))
def test_pairings_are_one_to_one_of_like_messages_and_leave_nothing_out(seed: int) -> None:
    rng = random.Random(seed)
    mail, flags = _random_mail(rng)
    got = _plan(mail, flags, limit=rng.choice([0, 2, repair.LIMIT]))
    pairs = _pairs(got, mail)
    # each side's message once: paired, or copied to the other side
    assert len(set(pairs.values())) == len(pairs)
    assert set(pairs) | set(_uploads(got)) == set(mail.here)
    assert not set(pairs) & set(_uploads(got))
    assert set(pairs.values()) | set(got.fetch) == set(mail.there)
    assert not set(pairs.values()) & set(got.fetch)

    # paired: the same message where a header block and size is shared by more than
    # one message on a side; the same header block and size otherwise
    def shared(data: bytes) -> bool:
        key = (len(data), head_digest([data]))
        return (
            sum(1 for d in mail.here.values() if (len(d), head_digest([d])) == key) > 1
            or sum(1 for d in mail.there.values() if (len(d), head_digest([d])) == key) > 1
        )

    for key, uid in pairs.items():
        here, there = mail.here[key], mail.there[uid]
        if _message_id(here).endswith("@x>"):
            assert (_message_id(here), len(here)) == (_message_id(there), len(there))
        elif shared(here):
            assert here == there
        else:
            assert head_digest([here]) == head_digest([there]) and len(here) == len(there)
    # as many pairings of byte-identical copies as the fewer side has (none lost to
    # an ambiguity), for messages without a usable Message-ID
    for data in set(mail.here.values()):
        if _message_id(data).endswith("@x>"):
            continue
        want = min(
            sum(1 for d in mail.here.values() if d == data),
            sum(1 for d in mail.there.values() if d == data),
        )
        if shared(data):
            assert sum(1 for k in pairs if mail.here[k] == data) == want, data
    assert got.hashed == sum(1 for k in pairs if not _message_id(mail.here[k]).endswith("@x>"))


def test_memory_stays_a_few_bytes_a_message_when_none_has_a_message_id() -> None:
    def peak(n: int) -> int:
        def rows() -> Iterator[LocalMessage]:
            for i in range(n):
                yield LocalMessage(
                    i + 1, f"1700000000.M{i}P1.host", i + 1, SEEN, True, "", 3000 + i % 977, SEEN
                )

        def server(want: bool) -> Iterator[RemoteIdentity]:
            for i in range(n):
                yield 10 + i, SEEN, "", 3000 + i % 977

        class Counted:
            # the digest of message i on both sides: its number
            def here(
                self, files: Sequence[tuple[str, frozenset[str]]], whole: bool
            ) -> Iterator[bytes | None]:
                for key, _ in files:
                    yield key.split(".M")[1].split("P")[0].encode()

            def there(self, uids: Sequence[int], whole: bool) -> Iterator[tuple[int, bytes]]:
                for uid in uids:
                    yield uid, str(uid - 10).encode()

            def measure(
                self, files: Sequence[tuple[str, frozenset[str]]]
            ) -> Iterator[tuple[int, bytes] | None]:
                raise AssertionError("all paired in the first round")

        top, result = traced_peak(
            lambda: plan_repair(rows(), SyncedState(1), 2, server, digests=Counted())
        )
        assert len(result.pairs) == n and result.hashed == n and not result.fetch
        return top

    peak(20_000)  # (what is built on first use is not counted)
    # nothing a message: the pairings go to a file a chunk at a time (`Pairs`), the
    # server's messages are known by UID and flags, not kept in a listing (before: the
    # pairing's 16 bytes, the server's UID and flags (9), and its place and size (12))
    per_message = least_of_three(lambda: (peak(60_000) - peak(20_000)) / 40_000, 2)
    assert per_message < 2, per_message


def test_the_streaming_planner_pairs_unpaired_ones_without_a_message_id_too() -> None:
    # UIDVALIDITY holds: a draft appended by a sync killed before it recorded the UID
    # (or by a server without UIDPLUS), the same size as one new there
    from mailbag.sync.plan import RemoteListing, plan_stream

    old, draft, new = _msg("old", "kept"), _msg("draft", "mine"), _msg("newer", "mine")
    garbage = _msg("g", "xx", "Message-ID: <>\r\n")
    mail = Mail({"ko": old, "kd": draft, "kg": garbage}, {1: old, 7: new, 8: draft, 9: garbage})
    local = [
        LocalMessage(1, "ko", 1, SEEN, True, "", len(old), SEEN),
        LocalMessage(2, "kd", None, NONE, True, "", len(draft)),
        LocalMessage(3, "kg", None, NONE, True, "<>", len(garbage)),
    ]
    listing = RemoteListing.of({1: SEEN, 7: NONE, 8: frozenset({"\\Flagged"}), 9: NONE})

    def identities(uids: Sequence[int]) -> Iterator[tuple[int, str | None, int | None]]:
        for uid in uids:
            yield uid, _message_id(mail.there[uid]), len(mail.there[uid])

    got = plan_stream(
        local, SyncedState(1), 1, listing, identities=identities, digests=Digests(mail)
    )
    pairs = sorted((a.key, a.uid) for a in got.actions if type(a).__name__ == "Pair")
    assert pairs == [("kd", 8), ("kg", 9)] and got.hashed == 2
    assert list(got.fetch) == [7] and not _uploads(got)
    assert sorted(mail.asked_there) == [(7, False), (8, False), (9, False)]
    # without digests: uploaded again (a second copy there), as before (and "<>" paired
    # by that ID and size)
    got = plan_stream(local, SyncedState(1), 1, listing, identities=identities)
    assert list(got.fetch) == [7, 8] and _uploads(got) == ["kd"]


# --- files with bare LF line ends ---------------------------------------------------------


def test_bare_lfs_are_hashed_and_counted_as_crlf_however_the_file_is_cut(tmp_path: Path) -> None:
    from mailbag.sync.digests import _Crlf, measure_file

    rng = random.Random(9)
    for n in range(400):
        parts = [
            rng.choice([b"\r\n", b"\r", b"\n", b"\n\n", b"A: b", b"x", b" "]) for _ in range(14)
        ]
        data = b"".join(parts)
        want = _crlf(data)
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 5))))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        crlf = _Crlf()
        assert b"".join(map(crlf, pieces)) == want, (data, pieces)
        assert head_digest(pieces) == head_digest([want]), data
        path = tmp_path / f"m{n}"
        path.write_bytes(data)
        assert measure_file(path) == (len(want), head_digest([want]))
        assert digest_file(path, whole=False) == head_digest([want]), data
        assert digest_file(path, whole=True) == _whole(want)
    assert measure_file(tmp_path / "gone") is None
    # header blocks longer than the first read, with and without a bare LF in them
    for lf in (b"\r\n", b"\n"):
        data = b"".join(
            b"X-Long-%d: %s%s" % (i, b"v" * 90, lf if i == 300 else b"\r\n") for i in range(600)
        )
        data += b"\r\nbody\r\n"
        path = tmp_path / "long"
        path.write_bytes(data)
        assert digest_file(path, whole=False) == head_digest([_crlf(data)])
        assert digest_file(path, whole=False) != head_digest([_crlf(data)[:20000]])
    # a file with CRLF line ends is given as it is (not copied)
    crlf_file = b"A: b\r\n\r\nbody\r\n"
    assert _Crlf()(crlf_file) is crlf_file


LF_NAMED = b"From: cron@host\nSubject: lf\nMessage-ID: <lf@x>\n\nline one\nline two\n"
LF_UNNAMED = _msg("lf unnamed", "one\r\ntwo").replace(b"\r\n", b"\n")


def test_files_here_with_bare_lf_line_ends_pair_with_the_servers_crlf_copies() -> None:
    # their sizes here (recorded from the file) are not the server's: paired in the
    # second round, as the server gives them; a message of the same Message-ID and
    # other content is not taken for one
    other = _crlf(LF_NAMED.replace(b"line two", b"line 2"))
    plain = _msg("plain", "crlf")
    mail = Mail(
        {"kn": LF_NAMED, "ku": LF_UNNAMED, "kp": plain},
        {30: other, 31: _crlf(LF_UNNAMED), 32: plain, 33: _crlf(LF_NAMED)},
    )
    got = _plan(mail)
    assert _pairs(got, mail) == {"kn": 33, "ku": 31, "kp": 32}
    assert list(got.fetch) == [30] and not _uploads(got)
    assert sorted(mail.measured) == ["kn", "ku"]  # (read whole: only the ones left over)
    # the same with the local side spilled to SQLite
    mail.measured.clear()
    got = _plan(mail, limit=0)
    assert _pairs(got, mail) == {"kn": 33, "ku": 31, "kp": 32}
    assert list(got.fetch) == [30] and not _uploads(got)


def test_no_file_is_read_whole_when_one_side_has_nothing_left() -> None:
    new_here = _msg("draft", "mine").replace(b"\r\n", b"\n")
    mail = Mail({"kn": new_here, "kp": _msg("p", "q")}, {40: _msg("p", "q")})
    got = _plan(mail)
    assert _pairs(got, mail) == {"kp": 40} and _uploads(got) == ["kn"]
    assert mail.measured == []


def test_an_unpaired_file_with_bare_lfs_is_not_uploaded_again_by_a_plain_sync() -> None:
    # UIDVALIDITY holds: a file with bare LFs uploaded to a server without UIDPLUS (no
    # UID given back) or by a sync killed before it recorded the UID; the server's copy
    # has CRLFs and another size: paired, not uploaded once more at every sync
    from mailbag.sync.plan import RemoteListing, plan_stream

    mail = Mail({"kn": LF_NAMED, "ku": LF_UNNAMED}, {5: _crlf(LF_NAMED), 6: _crlf(LF_UNNAMED)})
    local = [
        LocalMessage(1, "kn", None, NONE, True, "<lf@x>", len(LF_NAMED)),
        LocalMessage(2, "ku", None, NONE, True, "", len(LF_UNNAMED)),
    ]
    listing = RemoteListing.of({5: NONE, 6: NONE})

    def identities(uids: Sequence[int]) -> Iterator[tuple[int, str | None, int | None]]:
        for uid in uids:
            yield uid, _message_id(mail.there[uid]), len(mail.there[uid])

    got = plan_stream(
        local, SyncedState(1), 1, listing, identities=identities, digests=Digests(mail)
    )
    pairs = sorted((a.key, a.uid) for a in got.actions if type(a).__name__ == "Pair")
    assert pairs == [("kn", 5), ("ku", 6)]
    assert not got.fetch and not _uploads(got)
