"""`ImapClient.uid_fetch_flags`, the fast read of a whole folder's flags: against scripted
servers that interleave other responses, split lines between reads, send literals or
garbage; against the real Dovecot (the same answer as `uid_fetch`); and a sync with a
server without CONDSTORE/QRESYNC, where every re-sync reads the folder that way."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from protocol_fakes import FakeServer, Peer, preauth_imap_server

import mailbag.protocols.imap.client as client_module
from mailbag.errors import ProtocolError
from mailbag.protocols.imap import ImapClient
from mailbag.protocols.imap.parser import FlagTexts, scan_flag_lines
from mailbag.protocols.trace import Transcript
from mailbag.protocols.transport import Endpoint, Security
from mailbag.sandbox import Sandbox
from synctools import assert_ok, assert_same, server_state, sync, target, totals

pytestmark = pytest.mark.sandbox
USER = "plainflags"


def _server(answer: Callable[[Peer, bytes], None]) -> FakeServer:
    """A PREAUTH server answering `UID FETCH` with `answer(peer, tag)`."""

    def handle(peer: Peer, tag: bytes, rest: bytes) -> None:
        if rest.upper().startswith(b"UID FETCH"):
            assert rest == b"UID FETCH 1:* (UID FLAGS)"
            answer(peer, tag)
        else:
            peer.send(tag + b" OK done\r\n")

    return preauth_imap_server(handle)


def _client(srv: FakeServer, transcript: Transcript | None = None) -> ImapClient:
    ep = Endpoint("127.0.0.1", srv.port, Security.NONE, None, timeout=10)
    c = ImapClient(ep) if transcript is None else ImapClient(ep, transcript)
    c.connect()
    return c


def test_interleaved_responses_split_lines_and_literals(tmp_path: Path) -> None:
    def answer(peer: Peer, tag: bytes) -> None:
        peer.send(
            b"* 1 FETCH (UID 10 FLAGS (\\Seen))\r\n"
            b"* 2 FETCH (FLAGS (\\Recent $Label1) UID 11)\r\n"
            b"* 3 EXPUNGE\r\n"  # another client expunged meanwhile
            b"* 2 FETCH (UID 11 FLAGS ())\r\n"
            b"* 3 FETCH (UID 13 FLAGS (\\Seen \\Fla"
        )
        time.sleep(0.3)  # the client has read half a line by now
        peer.send(
            b"gged))\r\n"
            b"* 4 FETCH (UID 14 MODSEQ (7) FLAGS (\\Draft))\r\n"
            b"* 5 FETCH (UID 15 FLAGS (\\Seen) X-NOTE {5}\r\nhello)\r\n"  # an unasked literal
            b"* 6 FETCH (FLAGS (\\Seen))\r\n"  # no UID: not for the listing
            b"* 31 EXISTS\r\n"
            b"* 7 FETCH (UID  16 FLAGS ( \\Seen ))\r\n"  # odd spacing
            b"* 8 FETCH (UID 17 FLAGS ())\r\n" + tag + b" OK done\r\n"
        )

    trace = tmp_path / "trace"
    transcript = Transcript(trace)
    with _server(answer) as srv:
        c = _client(srv, transcript)
        with c.uid_fetch_flags() as stream:
            got = list(stream)
        others = [(u.name, u.number) for u in stream.pending.untagged]
        assert c.noop() == []  # the connection is in step
        c.logout()
    transcript.close()
    assert got == [
        (10, ("\\Seen",)),
        (11, ("\\Recent", "$Label1")),
        (11, ()),
        (13, ("\\Seen", "\\Flagged")),
        (14, ("\\Draft",)),
        (15, ("\\Seen",)),
        (16, ("\\Seen",)),
        (17, ()),
    ]
    assert others == [("EXPUNGE", 3), ("EXISTS", 31)]
    # every line read the fast way is in the transcript too, once, in order
    received = [
        line.split(b" S: ", 1)[1] for line in trace.read_bytes().splitlines() if b" S: " in line
    ]
    fetches = [line for line in received if b"FETCH" in line]
    assert fetches[0] == b"* 1 FETCH (UID 10 FLAGS (\\Seen))"
    assert fetches[3] == b"* 3 FETCH (UID 13 FLAGS (\\Seen \\Flagged))"
    assert len(fetches) == 9 and fetches[-1] == b"* 8 FETCH (UID 17 FLAGS ())"


@pytest.mark.parametrize(
    "bad",
    [
        b"* 3 FETCH (UID 9 FLAGS (\\Seen)\r\n",  # unclosed
        b"* 3 FETCH (UID 9 FLAGS (\\Seen)))\r\n",
        b"garbage\r\n",
    ],
)
def test_garbage_in_a_listing_is_a_protocol_error(bad: bytes) -> None:
    def answer(peer: Peer, tag: bytes) -> None:
        peer.send(b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n" + bad + tag + b" OK done\r\n")

    with _server(answer) as srv:
        c = _client(srv)
        got = []
        with pytest.raises(ProtocolError) as err:
            for pair in c.uid_fetch_flags():
                got.append(pair)
        assert err.value.hint
        assert got == [(1, ("\\Seen",))]  # what came before the garbage was read
        c.close()


def test_refused_listing_is_a_protocol_error() -> None:
    def answer(peer: Peer, tag: bytes) -> None:
        peer.send(b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n" + tag + b" NO [SERVERBUG] oops\r\n")

    with _server(answer) as srv:
        c = _client(srv)
        with pytest.raises(ProtocolError) as err:
            list(c.uid_fetch_flags())
        assert err.value.fields["server_code"] == "SERVERBUG"
        c.logout()


def test_a_listing_left_early_is_drained() -> None:
    def answer(peer: Peer, tag: bytes) -> None:
        lines = b"".join(b"* %d FETCH (UID %d FLAGS ())\r\n" % (i, i) for i in range(1, 5001))
        peer.send(lines + tag + b" OK done\r\n")

    with _server(answer) as srv:
        c = _client(srv)
        with c.uid_fetch_flags() as stream:
            first = next(iter(stream))
        assert first == (1, ())
        assert c.noop() == []  # the rest was read and dropped
        c.logout()


def test_same_answer_as_the_general_fetch_on_dovecot(sandbox: Sandbox) -> None:
    user, folder = "carol", "flaglist-same"
    with sandbox.control(user) as ctl:
        if folder in ctl.mailboxes():
            ctl.delete_mailbox(folder)
        ctl.create(folder)
    uids = sandbox.fill(user, 60, folder, seed=5, seen_ratio=0.5)
    with sandbox.control(user) as ctl:
        ctl.store(folder, uids[:10], "+FLAGS", ["$Label1", "\\Flagged"])
        ctl.store(folder, uids[10:15], "+FLAGS", ["\\Answered", "Junk"])
        ctl.expunge(folder, uids[20:25])
    ep = Endpoint("localhost", sandbox.ports.imaps, Security.SSL, sandbox.ca_file, timeout=20)
    c = ImapClient.open(ep, sandbox.address(user), sandbox.password(user))
    try:
        c.examine(folder)
        fast = list(c.uid_fetch_flags())
        with c.uid_fetch("1:*", ["UID", "FLAGS"]) as stream:
            slow = [(r.uid, r.flags) for r in stream]
    finally:
        c.logout()
    assert fast == slow
    assert len(fast) == 55 and {"$Label1", "\\Flagged"} <= set(fast[0][1])


@pytest.fixture(scope="module")
def plain_server() -> Iterator[Sandbox]:
    with Sandbox(
        users={USER: "plain-secret"}, services={"imap"}, imap_without={"CONDSTORE", "QRESYNC"}
    ) as sb:
        yield sb


def test_sync_without_condstore_converges(
    plain_server: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every re-sync reads the whole folder with `UID FETCH 1:* (UID FLAGS)`, through
    the scanner: flag changes (keywords too) and expunges made on the server reach the
    Maildir, local changes reach the server, and one more sync finds nothing to do."""
    sb = plain_server
    scanned: list[int] = []

    def counting(data: bytes, known: FlagTexts) -> tuple[list[int], list[tuple[str, ...]], int]:
        uids, flags, used = scan_flag_lines(data, known)
        scanned.append(len(uids))
        return uids, flags, used

    monkeypatch.setattr(client_module, "scan_flag_lines", counting)
    uids = sb.fill(USER, 300, "INBOX", seed=31, seen_ratio=0.5)
    t = target(sb, USER, threshold=1000)
    home = tmp_path / "home"
    first = sync(t, home, connections=1)
    assert_ok(first)
    assert totals(first)["new"] == 300
    with sb.control(USER) as ctl:
        ctl.store("INBOX", uids[:30], "+FLAGS", ["\\Flagged", "$Work"])
        ctl.store("INBOX", uids[30:40], "-FLAGS", ["\\Seen"])
        ctl.store("INBOX", uids[40:50], "+FLAGS", ["\\Seen", "\\Answered"])
        ctl.expunge("INBOX", uids[100:120])
    scanned.clear()
    changed = sync(t, home, connections=1)
    assert_ok(changed)
    assert sum(scanned) >= 250  # the listing went through the scanner (lines cut by a read: not)
    assert totals(changed)["deleted"] == 20 and totals(changed)["updated"] >= 30
    assert assert_same(sb, USER, home) == 280
    state = server_state(sb, USER)["INBOX"]
    assert {"\\Flagged", "$Work"} <= state[uids[0]][1]
    settled = sync(t, home, connections=1)
    assert_ok(settled)
    assert sum(totals(settled).values()) == 0, totals(settled)
    assert assert_same(sb, USER, home) == 280


def test_a_listing_sent_behind_a_refused_select_is_dropped() -> None:
    """A sync sends SELECT and the flag listing together; when the SELECT is refused
    the listing is refused too and is read and dropped: the connection stays usable."""

    def script(peer: Peer) -> None:
        peer.send(b"* PREAUTH [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n")
        select, fetch = peer.readline(), peer.readline()
        assert b" SELECT gone" in select and fetch.endswith(b" UID FETCH 1:* (UID FLAGS)\r\n")
        peer.send(
            select.split(b" ")[0]
            + b" NO [NONEXISTENT] Mailbox doesn't exist\r\n"
            + fetch.split(b" ")[0]
            + b" BAD No mailbox selected\r\n"
        )
        noop = peer.readline()
        peer.send(noop.split(b" ")[0] + b" OK done\r\n")
        peer.readline()
        peer.send(b"* BYE bye\r\n")

    with FakeServer(script) as srv:
        c = _client(srv)
        p = c.submit_select("gone")
        listing = c.uid_fetch_flags()
        with pytest.raises(ProtocolError) as err:
            c.finish_select(p, "gone")
        assert err.value.fields["server_code"] == "NONEXISTENT"
        listing.discard()
        assert listing.pending.status is not None and listing.pending.status.kind == "BAD"
        assert listing.print is None  # (a refused listing says nothing of the folder)
        assert c.noop() == []
        c.logout()


def test_a_listing_left_unread_is_dropped_by_the_scanner(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing nobody reads (sent ahead for a folder that then went another way) is
    dropped by the scanner, not line by line through the general reader (~5x slower),
    and a refusal after it is not raised; the connection stays in step."""
    lines = b"".join(b"* %d FETCH (UID %d FLAGS (\\Seen))\r\n" % (i, i) for i in range(1, 3001))

    def answer(peer: Peer, tag: bytes) -> None:
        peer.send(lines + b"* 3000 EXISTS\r\n" + tag + b" OK done\r\n")

    general: list[int] = []
    real_read = client_module.ImapClient._read_response

    def read_response(self: ImapClient, body_sink: object) -> object:
        general.append(1)
        return real_read(self, body_sink)  # type: ignore[arg-type]

    monkeypatch.setattr(client_module.ImapClient, "_read_response", read_response)
    with _server(answer) as srv:
        c = _client(srv)
        listing = c.uid_fetch_flags()
        listing.discard()
        assert listing.pending.status is not None and listing.pending.status.kind == "OK"
        assert len(general) < 10, len(general)  # (EXISTS, the tagged OK, split lines)
        assert c.noop() == []
        c.logout()


def test_a_listing_print_depends_on_its_bytes_only() -> None:
    """The print of a listing (`FlagStream.print`): the same lines give the same print
    however the reads cut them; another flag, UID or order another one; a line of
    another kind among them (EXISTS, EXPUNGE, an odd FETCH) none at all."""
    plain = b"".join(
        b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (i, 3 * i, b"\\Seen" if i % 3 else b"")
        for i in range(1, 2001)
    )
    cut = plain.index(b"\r\n", 1000) + 2  # (a line boundary)
    cases = {
        "whole": [plain],
        "cut": [plain[:777], plain[777:5000], plain[5000:]],
        "flag": [plain.replace(b"UID 30 FLAGS (\\Seen)", b"UID 30 FLAGS (\\Seen \\Flagged)")],
        "exists": [plain[:cut] + b"* 2001 EXISTS\r\n" + plain[cut:]],
        "odd": [plain + b"* 2001 FETCH (UID 9999 FLAGS (\\Seen) X-NOTE {5}\r\nhello)\r\n"],
    }
    prints: dict[str, str | None] = {}
    for name, parts in cases.items():

        def answer(peer: Peer, tag: bytes, parts: list[bytes] = parts) -> None:
            for part in parts:
                peer.send(part)
                time.sleep(0.05)
            peer.send(tag + b" OK done\r\n")

        with _server(answer) as srv:
            c = _client(srv)
            with c.uid_fetch_flags() as stream:
                n = sum(len(uids) for uids, _ in stream.batches())
            prints[name] = stream.print
            c.logout()
        assert n >= 2000
    assert prints["whole"] is not None
    assert prints["cut"] == prints["whole"]
    assert prints["flag"] not in (None, prints["whole"])
    assert prints["exists"] is None and prints["odd"] is None
