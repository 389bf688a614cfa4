"""`sync.digests.fetch_digests`, the server side of pairing messages without a
Message-ID: against a scripted server whose answers come as literals or quoted
strings, among other clients' flag changes, for UID sets sent several at once; and
against the real Dovecot, agreeing with the digests of the same messages as files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from protocol_fakes import FakeServer, Peer, preauth_imap_server

from mailbag.protocols.imap import ImapClient
from mailbag.protocols.transport import Endpoint, Security
from mailbag.sandbox import Sandbox
from mailbag.sync.digests import digest_file, fetch_digests
from synctools import HEADER_CASES

pytestmark = pytest.mark.sandbox


def _d(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _server(sent: list[bytes]) -> FakeServer:
    """A PREAUTH server answering `UID FETCH set (UID BODY.PEEK[HEADER])`: odd UIDs as
    a literal, even ones as a quoted string, UIDs over 1000 not at all (expunged), and
    another client's flag change before each answer."""

    def handle(peer: Peer, tag: bytes, rest: bytes) -> None:
        m = re.fullmatch(rb"UID FETCH ([0-9:,]+) \(UID BODY\.PEEK\[HEADER\]\)", rest)
        assert m is not None, rest
        sent.append(m.group(1))
        out = b"* 1 FETCH (FLAGS (\\Seen))\r\n"
        for piece in m.group(1).split(b","):
            a, _, b = piece.partition(b":")
            for uid in range(int(a), int(b or a) + 1):
                if uid > 1000:
                    continue
                head = b"Subject: %d\r\n\r\n" % uid
                # (a quoted string cannot hold CR LF)
                literal = b"{%d}\r\n%s" % (len(head), head)
                value = literal if uid % 2 else b'"Subject: %d  "' % uid
                out += b"* %d FETCH (UID %d BODY[HEADER] %s)\r\n" % (uid, uid, value)
        peer.send(out + tag + b" OK done\r\n")

    return preauth_imap_server(handle)


def test_answers_as_literals_or_strings_among_flag_changes_several_sets_at_once() -> None:
    sent: list[bytes] = []
    with _server(sent) as srv:
        client = ImapClient(Endpoint("127.0.0.1", srv.port, Security.NONE, None, timeout=10))
        client.connect()
        uids = [*range(1, 1201)]
        got = dict(fetch_digests(client, uids, whole=False))
        client.logout()
    assert len(sent) == 3  # 500 UIDs a command
    assert set(got) == set(range(1, 1001))
    assert got[7] == _d(b"Subject: 7\r\n\r\n")
    assert got[8] == _d(b"Subject: 8  ")  # (what the string said)


def test_the_servers_header_digest_is_the_files(sandbox: Sandbox, tmp_path: Path) -> None:
    # every shape of header block, from Dovecot and as
    # files: the same digests, of the header and of the whole message
    user, folder = "carol", "digests-same"
    messages = [m for m, _ in HEADER_CASES if m]
    with sandbox.control(user) as ctl:
        if folder in ctl.mailboxes():
            ctl.delete_mailbox(folder)
        ctl.create(folder)
        for data in messages:
            ctl.append(folder, data)
    ep = Endpoint("localhost", sandbox.ports.imaps, Security.SSL, sandbox.ca_file, timeout=20)
    c = ImapClient.open(ep, sandbox.address(user), sandbox.password(user))
    try:
        c.examine(folder)
        uids = [uid for uid, _ in c.uid_fetch_flags()]
        heads = dict(fetch_digests(c, uids, whole=False))
        wholes = dict(fetch_digests(c, uids, whole=True))
    finally:
        c.logout()
    assert len(uids) == len(messages)
    for n, (uid, data) in enumerate(zip(uids, messages, strict=True)):
        path = tmp_path / f"m{n}"
        path.write_bytes(data)
        assert heads[uid] == digest_file(path, whole=False), data
        assert wholes[uid] == digest_file(path, whole=True) == _d(data), data
