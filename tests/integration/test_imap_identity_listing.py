"""The identity listing read after a UIDVALIDITY change (`ImapClient.uid_fetch_identity_runs`)
against scripted servers: an answer cut inside its literal by a read is waited for and
scanned like the others, not handed to the general reader; and the header blocks asked
for ahead (`sync.digests.Ahead`) that a server answers among the listing's answers, as
Dovecot may (it runs the two FETCH commands side by side), are kept, not lost and asked
for again."""

from __future__ import annotations

import threading

import pytest
from protocol_fakes import FakeServer, Peer, preauth_imap_server

from mailbag.protocols.imap import ImapClient
from mailbag.protocols.imap import client as client_module
from mailbag.protocols.imap.parser import IdentityRun
from mailbag.protocols.transport import Endpoint, Security
from mailbag.sync.digests import Ahead, head_digest

LISTING = b"UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
HEAD = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"


def _answer(uid: int, block: bytes) -> bytes:
    return b"* %d FETCH (UID %d FLAGS (\\Seen) RFC822.SIZE %d %s {%d}\r\n%s)\r\n" % (
        uid,
        uid,
        100 + uid,
        HEAD,
        len(block),
        block,
    )


def _named(uid: int) -> bytes:
    return _answer(uid, b"Message-ID: <%d@example.org>\r\n\r\n" % uid)


def _client(srv: FakeServer) -> ImapClient:
    c = ImapClient(Endpoint("127.0.0.1", srv.port, Security.NONE, None, timeout=10))
    c.connect()
    return c


def _uids(batches: list[list[object]]) -> list[int]:
    out: list[int] = []
    for batch in batches:
        for item in batch:
            if isinstance(item, IdentityRun):
                out.extend(map(int, item.uids))
            else:
                out.append(item[0])  # type: ignore[index]
    return out


def test_an_answer_cut_inside_its_literal_is_scanned_when_the_rest_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = threading.Event()
    general: list[object] = []
    real_read = client_module.ImapClient._read_response

    def read_response(self: ImapClient, body_sink: object) -> object:
        got = real_read(self, body_sink)  # type: ignore[arg-type]
        general.append(got)
        return got

    monkeypatch.setattr(client_module.ImapClient, "_read_response", read_response)

    def handle(peer: Peer, tag: bytes, rest: bytes) -> None:
        if rest == LISTING:
            whole = _named(1) + _named(2)
            cut = len(_named(1)) + len(_named(2).split(b"\r\n")[0]) + 2 + 9
            peer.send(whole[:cut])  # the second answer's literal half sent
            sent.wait(5)
            peer.send(whole[cut:] + _named(3) + tag + b" OK done\r\n")
        else:
            peer.send(tag + b" OK done\r\n")

    with preauth_imap_server(handle) as srv:
        c = _client(srv)
        general.clear()  # (the greeting)
        batches = []
        with c.uid_fetch_identity_runs() as stream:
            for batch in stream.batches():
                batches.append(batch)
                sent.set()
        assert _uids(batches) == [1, 2, 3]
        # every answer was cut from the buffer by the scanner: only the tagged one went
        # to the general reader
        assert [type(g).__name__ for g in general] == ["StatusResponse"], general
        assert c.noop() == []
        c.logout()


def test_header_answers_among_the_listing_are_kept_not_asked_for_again() -> None:
    block = b"From: robot@example.org\r\nSubject: no id\r\n\r\n"
    header_fetches: list[bytes] = []
    listing_tag: list[bytes] = []

    def handle(peer: Peer, tag: bytes, rest: bytes) -> None:
        if rest == LISTING:
            # UID 2 has no Message-ID; the listing is not finished before the header
            # command sent meanwhile is answered
            peer.send(_named(1) + _answer(2, b"\r\n"))
            listing_tag.append(tag)
        elif rest.startswith(b"UID FETCH") and b"BODY.PEEK[HEADER]" in rest:
            header_fetches.append(rest)
            # Dovecot runs this FETCH beside the listing: its answer before the rest of
            # the listing's and the listing's end
            header = b"* 2 FETCH (UID 2 BODY[HEADER] {%d}\r\n%s)\r\n" % (len(block), block)
            peer.send(header + _named(3) + listing_tag[0] + b" OK listed\r\n")
            peer.send(tag + b" OK headers\r\n")
        else:
            peer.send(tag + b" OK done\r\n")

    with preauth_imap_server(handle) as srv:
        c = _client(srv)
        ahead = Ahead(c)
        batches = []
        with c.uid_fetch_identity_runs(others=ahead.found) as stream:
            for batch in stream.batches():
                batches.append(batch)
                for item in batch:
                    if not isinstance(item, IdentityRun) and item[3] == b"\r\n":
                        ahead.add(item[0])
                    elif isinstance(item, IdentityRun):
                        for uid, mid in zip(item.uids, item.message_ids, strict=True):
                            if not mid:
                                ahead.add(int(uid))
                ahead.send()
        assert _uids(batches) == [1, 2, 3]
        got = ahead.take()
        assert got == {2: head_digest([block + b"body\r\n"])}
        assert header_fetches == [b"UID FETCH 2 (UID BODY.PEEK[HEADER])"]
        assert c.noop() == []  # the connection is in step
        c.logout()
