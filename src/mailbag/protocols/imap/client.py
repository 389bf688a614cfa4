"""Mailbag's own IMAP client: a thin owner of the socket around the pure parser.

Why not the stdlib `imaplib`: it keeps every literal in memory (a 300 MB message
becomes a 300 MB bytes object, and a server announcing `{4294967295}` is
believed), it cannot send a second command before the first one is answered,
and it knows no CONDSTORE/QRESYNC. Here message bodies go straight to a
caller-supplied sink in bounded chunks, commands can be pipelined
(`submit`/`finish`, `uid_fetch_many`), and every connection goes through
`transport.py` (verified TLS) with the STARTTLS rules of FIELD-NOTES: refuse
when STARTTLS is missing or refused, refuse bytes sent before the handshake,
re-read capabilities after TLS, treat PREAUTH as fatal when TLS was required.

Blocking and synchronous on purpose: the sync runs several connections in
threads. One client is not thread-safe. It never prints and never retries;
callers decide.
"""

from __future__ import annotations

import base64
import functools
import re
import socket
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType

from mailbag.errors import AuthError, NetworkError, ProtocolError, TLSError
from mailbag.protocols import sasl
from mailbag.protocols.imap import command as cmd
from mailbag.protocols.imap.command import Literal, Piece
from mailbag.protocols.imap.parser import (
    Continuation,
    FetchResult,
    FlagTexts,
    IdentityItem,
    MailboxInfo,
    MailboxStatus,
    SearchResult,
    StatusResponse,
    StreamedLiteral,
    UidFlags,
    UidIdentity,
    UidSet,
    Untagged,
    Value,
    flag_tuple,
    format_internaldate,
    literal_at_end,
    parse_appenduid,
    parse_capabilities,
    parse_copyuid,
    parse_esearch,
    parse_fetch,
    parse_list,
    parse_response,
    parse_search,
    parse_status,
    parse_vanished,
    scan_flag_lines,
    scan_header_answers,
    scan_identity_lines,
    scan_identity_runs,
)
from mailbag.protocols.stream import LineStream, StreamClient
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.protocols.transport import Endpoint, Security, open_stream
from mailbag.record import Generic, NamedTuple, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as dt
    from typing import IO, Self, TypeVar

    _Batch = TypeVar("_Batch")
else:
    _Batch = None  # (`Generic[_Batch]` below, at run time)

PROTO = "imap"

#: what a `_ScanStream` yields per buffer

#: called when a message body literal starts: (sequence number, item name, size) -> sink
BodySink = Callable[[int, str, int], "IO[bytes] | None"]  # (quoted: no typing at run time)


@functools.cache
def _literal_patterns() -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """(a FETCH answer's start, a body item just before its literal), compiled on first
    use: a sync that downloads nothing reads no literal."""
    return (
        re.compile(rb"^\* (\d+) FETCH ", re.IGNORECASE),
        re.compile(
            rb"(?:(?:BODY|BINARY)\[[^\]]*\](?:<\d+>)?|RFC822(?:\.TEXT|\.HEADER)?) $", re.IGNORECASE
        ),
    )


class Pending(Record):
    """A command that was sent; `status` is set when its tagged response arrives."""

    __slots__ = ("name", "status", "tag", "untagged")
    tag: str
    name: str
    untagged: list[Untagged]
    status: StatusResponse | None

    def __init__(
        self,
        tag: str,
        name: str,
        untagged: list[Untagged] | None = None,
        status: StatusResponse | None = None,
    ) -> None:
        self.tag = tag
        self.name = name
        self.untagged = [] if untagged is None else untagged
        self.status = status


class SelectResult(Record):
    """What SELECT (or EXAMINE) says about the mailbox it opened."""

    __slots__ = (
        "changed",
        "exists",
        "flags",
        "highestmodseq",
        "mailbox",
        "nomodseq",
        "permanentflags",
        "readonly",
        "recent",
        "uidnext",
        "uidvalidity",
        "unseen_seq",
        "vanished",
    )
    mailbox: str
    readonly: bool
    exists: int
    recent: int | None
    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None
    #: the server keeps no MODSEQs for this mailbox ([NOMODSEQ])
    nomodseq: bool
    flags: tuple[str, ...]
    permanentflags: tuple[str, ...]
    unseen_seq: int | None
    #: QRESYNC: UIDs expunged since the given MODSEQ (VANISHED (EARLIER))
    vanished: UidSet
    #: QRESYNC: messages whose flags changed since the given MODSEQ
    changed: list[FetchResult]

    def __init__(
        self,
        mailbox: str,
        readonly: bool = False,
        exists: int = 0,
        recent: int | None = None,
        uidvalidity: int | None = None,
        uidnext: int | None = None,
        highestmodseq: int | None = None,
        nomodseq: bool = False,
        flags: tuple[str, ...] = (),
        permanentflags: tuple[str, ...] = (),
        unseen_seq: int | None = None,
        vanished: UidSet | None = None,
        changed: list[FetchResult] | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.readonly = readonly
        self.exists = exists
        self.recent = recent
        self.uidvalidity = uidvalidity
        self.uidnext = uidnext
        self.highestmodseq = highestmodseq
        self.nomodseq = nomodseq
        self.flags = flags
        self.permanentflags = permanentflags
        self.unseen_seq = unseen_seq
        self.vanished = UidSet() if vanished is None else vanished
        self.changed = [] if changed is None else changed


class AppendResult(NamedTuple):
    """Where an APPEND put the message (UIDPLUS APPENDUID)."""

    uidvalidity: int
    uid: int


class CopyResult(NamedTuple):
    """Where a COPY or MOVE put the messages (UIDPLUS COPYUID)."""

    uidvalidity: int
    source: UidSet
    dest: UidSet

    def mapping(self) -> dict[int, int]:
        """source UID -> destination UID (RFC 4315 pairs the sets in order)."""
        return dict(zip(self.source, self.dest, strict=False))


class StoreResult(Record):
    """What a STORE answered: refused UIDs and the new flags."""

    __slots__ = ("fetched", "modified")
    #: UIDs not changed because they were modified since UNCHANGEDSINCE ([MODIFIED])
    modified: UidSet
    fetched: list[FetchResult]

    def __init__(
        self, modified: UidSet | None = None, fetched: list[FetchResult] | None = None
    ) -> None:
        self.modified = UidSet() if modified is None else modified
        self.fetched = [] if fetched is None else fetched


class ImapClient(StreamClient):
    """One IMAP connection. Step by step:

    >>> c = ImapClient(endpoint, transcript)
    >>> greeting = c.connect()
    >>> c.starttls()            # only for Security.STARTTLS; login() refuses without it
    >>> c.login(user, password)
    >>> box = c.select("INBOX")
    >>> for msg in c.uid_fetch("1:*", ["UID", "FLAGS"]): ...
    >>> c.logout()
    """

    def __init__(
        self,
        endpoint: Endpoint,
        transcript: Transcript = NO_TRACE,
        *,
        max_literal: int = 8 * 1024 * 1024,
        max_body_in_memory: int = 256 * 1024 * 1024,
    ) -> None:
        super().__init__(endpoint, transcript)
        #: non-body literals (names, envelope strings) larger than this are refused
        self.max_literal = max_literal
        #: bodies fetched without a sink larger than this are refused (use a sink)
        self.max_body_in_memory = max_body_in_memory
        self._caps: frozenset[str] | None = None
        self._tag_counter = 0
        self._inflight: dict[str, Pending] = {}
        self._order: deque[Pending] = deque()
        self.greeting: StatusResponse | None = None
        self.authenticated = False
        self.enabled: set[str] = set()
        self.selected: str | None = None
        #: the UIDVALIDITY the SELECT of `selected` reported
        self.selected_uidvalidity: int | None = None
        self.compressed = False
        self._bye: StatusResponse | None = None

    # --- connection ----------------------------------------------------------------

    def _start(self) -> None:
        self.connect()
        if self.endpoint.security is Security.STARTTLS:
            self.starttls()

    def connect(self, sock: socket.socket | None = None) -> StatusResponse:
        """Open the connection and read the greeting (OK or PREAUTH; BYE is refused).

        `sock` is a connection already opened through `transport` (TLS done for
        Security.SSL): the account test opens it itself to time each step."""
        if sock is None:
            sock = open_stream(self.endpoint)
        self._stream = LineStream(sock, self.endpoint, PROTO)
        resp = self._read_response(None)
        if not isinstance(resp, Untagged) or resp.status is None:
            raise self._fail(
                ProtocolError,
                f"{self._where()} did not greet like an IMAP server",
                hint="check the port: is this the IMAP port (993 SSL, 143 STARTTLS)?",
                cause="not-imap",
            )
        greeting = resp.status
        self.greeting = greeting
        if greeting.kind == "BYE":
            raise self._fail(
                NetworkError,
                f"{self._where()} refused the connection: {greeting.text}",
                hint="the server may be overloaded or blocking this address; try again later",
                cause="refused-by-server",
                server_text=greeting.text,
            )
        if greeting.kind == "PREAUTH":
            if self.endpoint.security is Security.STARTTLS:
                raise self._fail(
                    TLSError,
                    f"{self._where()} logged us in before TLS (PREAUTH), so STARTTLS "
                    "is impossible; refusing to continue in plain text",
                    hint="use implicit TLS (port 993) or contact the provider",
                    cause="preauth",
                )
            self.authenticated = True
        elif greeting.kind != "OK":
            raise self._fail(
                ProtocolError,
                f"{self._where()} sent an unexpected greeting: {greeting.describe()}",
                cause="greeting",
            )
        return greeting

    @property
    def capabilities(self) -> frozenset[str]:
        """The server's capabilities (asked with CAPABILITY when not known yet)."""
        if self._caps is None:
            self.capability()
        assert self._caps is not None
        return self._caps

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    def capability(self) -> frozenset[str]:
        self._caps = None
        self.simple(b"CAPABILITY")
        if self._caps is None:
            raise ProtocolError(f"{self._where()} sent no CAPABILITY list", cause="no-capability")
        return self._caps

    def starttls(self) -> None:
        """Upgrade to TLS. Missing or refused STARTTLS is a TLSError, never a downgrade."""
        if self.is_tls:
            raise TLSError("the connection is already encrypted", cause="already-tls")
        caps = self.capabilities
        if "STARTTLS" not in caps:
            raise self._fail(
                TLSError,
                f"{self._where()} does not offer STARTTLS; refusing to log in without encryption",
                hint="use implicit TLS (port 993) if the provider offers it; someone may "
                "also be stripping STARTTLS from the connection",
                cause="starttls-missing",
            )
        p = self.submit(b"STARTTLS")
        self._pump_all(p)
        assert p.status is not None
        if not p.status.ok:
            raise self._fail(
                TLSError,
                f"{self._where()} refused STARTTLS: {p.status.text}",
                hint="the server cannot encrypt this connection; use implicit TLS (port 993)",
                cause="starttls-refused",
                server_text=p.status.text,
            )
        self.stream.start_tls()  # refuses if anything arrived after the go-ahead
        # capabilities seen before TLS are not trustworthy: forget them and ask again
        self._caps = None
        self.capability()

    def login(self, username: str, password: str) -> None:
        self._require_tls()
        if "LOGINDISABLED" in self.capabilities:
            raise self._error(
                AuthError,
                f"{self._where()} does not allow LOGIN here (LOGINDISABLED)",
                hint="use an AUTHENTICATE mechanism the server offers, or TLS",
                cause="login-disabled",
            )
        p = self.submit(b"LOGIN", cmd.astring(username), cmd.secret_astring(password))
        self._pump_all(p)
        self._after_auth(p, "LOGIN")

    def authenticate(self, mechanism: str, responses: bytes | Sequence[bytes]) -> None:
        """SASL: `responses` are answered to the server's challenges in order (the first
        one goes as initial response when SASL-IR is offered). Payloads come from sasl.py."""
        self._require_tls()
        queue = [responses] if isinstance(responses, bytes) else list(responses)
        mech = str(mechanism).upper().encode("ascii")
        if queue and "SASL-IR" in self.capabilities and mech != b"LOGIN":
            first = base64.b64encode(queue.pop(0)) or b"="
            p = self.submit(b"AUTHENTICATE", mech, first)
        else:
            p = self.submit(b"AUTHENTICATE", mech)
        challenges: list[str] = []
        while True:
            cont = self._wait_continuation(p)
            if cont is None:
                break
            if queue:
                self._send_line(base64.b64encode(queue.pop(0)), secret=True)
            else:
                # an error challenge (XOAUTH2 sends JSON): answer empty to get the NO
                challenges.append(_b64_text(cont.text))
                self._send_line(b"")
        self._pump_all(p)
        self._after_auth(p, f"AUTHENTICATE {mech.decode()}", challenges)

    def login_sasl(self, username: str, password: str) -> None:
        """Password login, preferring SASL PLAIN when offered, else LOGIN."""
        offered = {c[5:] for c in self.capabilities if c.startswith("AUTH=")}
        if "PLAIN" in offered:  # (not `sasl.Mechanism`: its enum is not built for this)
            self.authenticate("PLAIN", sasl.plain(username, password))
        else:
            self.login(username, password)

    def _after_auth(self, p: Pending, what: str, challenges: Sequence[str] = ()) -> None:
        assert p.status is not None
        if not p.status.ok:
            raise self._error(
                AuthError,
                f"{self._where()} refused the login: {p.status.text}",
                hint="check the user name and password (an app password or OAuth2 may be "
                "required by the provider)",
                command=what,
                server_status=p.status.kind,
                server_code=p.status.code,
                server_text=p.status.text,
                challenges=list(challenges),
            )
        self.authenticated = True
        if p.status.code != "CAPABILITY":
            self._caps = None  # the server may offer more after login

    def enable(self, capabilities: Iterable[str]) -> set[str]:
        """ENABLE (RFC 5161), e.g. ["QRESYNC"]; returns what the server enabled."""
        caps = [c.upper() for c in capabilities]
        p = self.simple(b"ENABLE", *(c.encode("ascii") for c in caps))
        got: set[str] = set()
        for u in p.untagged:
            if u.name == "ENABLED":  # (`_observe` has recorded them in `enabled`)
                got |= {str(v).upper() for v in u.values if isinstance(v, str)}
        return got

    def compress(self) -> bool:
        """COMPRESS=DEFLATE (RFC 4978) when offered; returns whether it is now on."""
        if self.compressed or "COMPRESS=DEFLATE" not in self.capabilities:
            return self.compressed
        p = self.submit(b"COMPRESS", b"DEFLATE")
        self._pump_all(p)
        assert p.status is not None
        if p.status.ok:
            self.stream.start_deflate()
            self.compressed = True
        return self.compressed

    def idle(
        self,
        timeout: float,
        *,
        stop: Callable[[Untagged], bool] | None = None,
    ) -> list[Untagged]:
        """IDLE (RFC 2177) on the selected mailbox for up to `timeout` seconds, or until
        an untagged response arrives that `stop` accepts (default: EXISTS, EXPUNGE,
        FETCH, VANISHED). Returns the untagged responses seen. Servers drop idle
        connections after ~30 minutes: call it again with timeouts under that."""
        if "IDLE" not in self.capabilities:
            raise ProtocolError(f"{self._where()} does not support IDLE", cause="no-idle")
        wants = stop or (lambda u: u.name in ("EXISTS", "EXPUNGE", "FETCH", "VANISHED"))
        p = self.submit(b"IDLE")
        seen: list[Untagged] = []
        went_idle = self._wait_continuation(p) is not None
        before = len(p.untagged)
        if went_idle:
            deadline = time.monotonic() + timeout
            while p.status is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.stream.wait_readable(remaining):
                    break
                resp = self._read_response(None)
                if isinstance(resp, StatusResponse):
                    self._complete(resp)  # the server ended IDLE itself
                elif isinstance(resp, Untagged):
                    seen.append(resp)
                    if wants(resp):
                        break
            if p.status is None:
                self._send_line(b"DONE")
        self._pump_all(p)
        self._check(p, "IDLE")
        # in arrival order: before the go-ahead, while idling, after DONE
        return p.untagged[:before] + seen + p.untagged[before:]

    def noop(self) -> list[Untagged]:
        return self.simple(b"NOOP").untagged

    def logout(self) -> None:
        """LOGOUT and close; a connection that is already gone is not an error here."""
        if self._stream is None:
            return
        try:
            p = self.submit(b"LOGOUT")
            self._pump_all(p)
        except NetworkError:
            pass  # the server may close right after its BYE
        finally:
            self.close()

    def goodbye(self) -> None:
        self.logout()

    # --- mailboxes -----------------------------------------------------------------

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled

    def select(
        self,
        mailbox: str,
        *,
        readonly: bool = False,
        condstore: bool = False,
        qresync: tuple[int, int] | tuple[int, int, str] | None = None,
    ) -> SelectResult:
        """SELECT (or EXAMINE when `readonly`). `qresync=(uidvalidity, modseq[, known_uids])`
        asks for VANISHED and changed flags since `modseq` (ENABLE QRESYNC is sent first)."""
        p = self.submit_select(mailbox, readonly=readonly, condstore=condstore, qresync=qresync)
        return self.finish_select(p, mailbox)

    def examine(self, mailbox: str, **kw: object) -> SelectResult:
        return self.select(mailbox, readonly=True, **kw)  # type: ignore[arg-type]

    def submit_select(
        self,
        mailbox: str,
        *,
        readonly: bool = False,
        condstore: bool = False,
        qresync: tuple[int, int] | tuple[int, int, str] | None = None,
    ) -> Pending:
        """Send SELECT/EXAMINE without waiting (pipelining); finish with `finish_select`."""
        params: list[bytes] = []
        if qresync is not None:
            if "QRESYNC" not in self.enabled:
                if "QRESYNC" not in self.capabilities:
                    raise ProtocolError(
                        f"{self._where()} does not support QRESYNC", cause="no-qresync"
                    )
                self.enable(["QRESYNC"])
            inner = f"{qresync[0]} {qresync[1]}"
            if len(qresync) == 3 and qresync[2]:
                inner += f" {qresync[2]}"
            params.append(b"(QRESYNC (" + inner.encode("ascii") + b"))")
        elif condstore:
            params.append(b"(CONDSTORE)")
        verb = b"EXAMINE" if readonly else b"SELECT"
        self.selected = None
        return self.submit(verb, cmd.mailbox(mailbox, self.utf8), *params)

    def finish_select(self, p: Pending, mailbox: str) -> SelectResult:
        res = SelectResult(mailbox)
        for u in self._pump(p, None):
            if u.name == "FETCH":
                res.changed.append(parse_fetch(u))
            elif u.name == "VANISHED":
                _, uids = parse_vanished(u)
                res.vanished.ranges.extend(uids.ranges)
            else:
                p.untagged.append(u)
        self._check(p, f"SELECT {mailbox}")
        assert p.status is not None
        for u in p.untagged:
            if u.name == "EXISTS" and u.number is not None:
                res.exists = u.number
            elif u.name == "RECENT" and u.number is not None:
                res.recent = u.number
            elif u.name == "FLAGS" and u.values:
                res.flags = flag_tuple(u.values[0])
            elif u.status is not None:
                _apply_select_code(res, u.status)
        _apply_select_code(res, p.status)
        res.readonly = p.status.code == "READ-ONLY" or p.name == "EXAMINE"
        self.selected = mailbox
        self.selected_uidvalidity = res.uidvalidity
        return res

    def unselect(self) -> None:
        """UNSELECT (RFC 3691) when offered. CLOSE is never used for this: it expunges."""
        if "UNSELECT" in self.capabilities:
            self.simple(b"UNSELECT")
        self.selected = None

    def list_folders(
        self, reference: str = "", pattern: str = "*", *, subscribed: bool = False
    ) -> list[MailboxInfo]:
        """LIST (or LSUB) with flags, delimiter and special-use flags."""
        verb = b"LSUB" if subscribed else b"LIST"
        ref = cmd.astring(reference) if reference else b'""'
        pat = cmd.mailbox(pattern, self.utf8) if pattern not in ("*", "%") else pattern.encode()
        p = self.simple(verb, ref, pat)
        return [parse_list(u, self.utf8) for u in p.untagged if u.name == verb.decode()]

    def status(
        self,
        mailbox: str,
        items: Sequence[str] = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"),
    ) -> MailboxStatus:
        wanted = list(items)
        if "HIGHESTMODSEQ" not in wanted and "CONDSTORE" in self.capabilities:
            wanted.append("HIGHESTMODSEQ")
        p = self.simple(b"STATUS", cmd.mailbox(mailbox, self.utf8), cmd.item_list(wanted))
        for u in p.untagged:
            if u.name == "STATUS":
                return parse_status(u, self.utf8)
        raise ProtocolError(f"{self._where()} sent no STATUS for {mailbox}", cause="no-status")

    def list_status(
        self,
        items: Sequence[str] = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"),
        pattern: str = "*",
    ) -> list[tuple[MailboxInfo, MailboxStatus | None]]:
        """Every folder with its STATUS in one round trip: LIST-STATUS (RFC 5819) where
        offered, else LIST and then pipelined STATUS commands. HIGHESTMODSEQ is added
        when the server has CONDSTORE. Unselectable folders get None."""
        wanted = list(items)
        if "HIGHESTMODSEQ" not in wanted and "CONDSTORE" in self.capabilities:
            wanted.append("HIGHESTMODSEQ")
        pat = cmd.mailbox(pattern, self.utf8) if pattern not in ("*", "%") else pattern.encode()
        statuses: dict[str, MailboxStatus] = {}
        if "LIST-STATUS" in self.capabilities:
            ret = b"STATUS " + cmd.item_list(wanted)
            if "SPECIAL-USE" in self.capabilities:
                ret = b"SPECIAL-USE " + ret
            p = self.simple(b"LIST", b'""', pat, b"RETURN (" + ret + b")")
            infos = [parse_list(u, self.utf8) for u in p.untagged if u.name == "LIST"]
            for u in p.untagged:
                if u.name == "STATUS":
                    st = parse_status(u, self.utf8)
                    statuses[st.name] = st
        else:
            infos = self.list_folders(pattern=pattern)
            pending = [
                (
                    info,
                    self.submit(
                        b"STATUS", cmd.mailbox(info.name, self.utf8), cmd.item_list(wanted)
                    ),
                )
                for info in infos
                if info.selectable
            ]
            for info, p in pending:
                self._pump_all(p)
                assert p.status is not None
                if not p.status.ok:
                    continue  # vanished meanwhile, or not a real mailbox: no status
                for u in p.untagged:
                    if u.name == "STATUS":
                        statuses[info.name] = parse_status(u, self.utf8)
        return [(info, statuses.get(info.name)) for info in infos]

    def create(self, mailbox: str) -> None:
        self.simple(b"CREATE", cmd.mailbox(mailbox, self.utf8))

    def delete(self, mailbox: str) -> None:
        self.simple(b"DELETE", cmd.mailbox(mailbox, self.utf8))

    def rename(self, old: str, new: str) -> None:
        self.simple(b"RENAME", cmd.mailbox(old, self.utf8), cmd.mailbox(new, self.utf8))

    def subscribe(self, mailbox: str) -> None:
        self.simple(b"SUBSCRIBE", cmd.mailbox(mailbox, self.utf8))

    # --- messages -------------------------------------------------------------------

    def uid_fetch(
        self,
        uids: str | UidSet | Iterable[int],
        items: str | Sequence[str],
        *,
        changedsince: int | None = None,
        vanished: bool = False,
        body_sink: BodySink | None = None,
    ) -> FetchStream:
        """UID FETCH; iterate the result to get `FetchResult`s as they arrive.

        Message bodies (BODY[...], BINARY[...], RFC822) go to `body_sink(seq, item, size)`
        in bounded chunks when a sink is given, else into memory (up to
        `max_body_in_memory`). `vanished=True` (QRESYNC) also reports expunged UIDs in
        `.vanished`. Unsolicited FETCH responses (flag changes by others) may appear too.
        """
        p = self.submit(*_uid_fetch_args(uids, items, changedsince, vanished))
        return FetchStream(self, p, body_sink)

    def uid_fetch_flags(self, uids: str | UidSet | Iterable[int] = "1:*") -> FlagStream:
        """`UID FETCH uids (UID FLAGS)`; iterate the result to get (UID, flags) pairs as
        they arrive: what a folder read without CONDSTORE needs, read at a fraction of
        the cost of `uid_fetch` (see `FlagStream`). Flag changes other clients make
        meanwhile may appear too (as with `uid_fetch`); FETCH responses without a UID
        or flags are skipped, other untagged responses kept in `.pending.untagged`."""
        p = self.submit(*_uid_fetch_args(uids, ["UID", "FLAGS"], None, False))
        return FlagStream(self, p)

    def uid_fetch_identities(self, uids: str | UidSet | Iterable[int] = "1:*") -> IdentityStream:
        """`UID FETCH uids (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])`;
        iterate the result to get (UID, flags, size, header block) as they arrive: what
        pairing a folder's messages by Message-ID and size needs, read at a fraction of
        the cost of `uid_fetch` (see `IdentityStream`)."""
        items = ["UID", "FLAGS", "RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
        p = self.submit(*_uid_fetch_args(uids, items, None, False))
        return IdentityStream(self, p)

    def uid_fetch_identity_runs(
        self,
        uids: str | UidSet | Iterable[int] = "1:*",
        *,
        others: Callable[[FetchResult], None] | None = None,
    ) -> IdentityRunStream:
        """The same answers as `uid_fetch_identities`, the usual ones as `IdentityRun`s
        (see `parser.scan_identity_runs`), the others as `uid_fetch_identities` gives
        them; in batches, in the order they came. `others`: given each FETCH answer
        among them that is not an identity (the answers to a command sent while this
        one's are read may come among them: Dovecot runs such commands side by side)."""
        items = ["UID", "FLAGS", "RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
        p = self.submit(*_uid_fetch_args(uids, items, None, False))
        stream = IdentityRunStream(self, p)
        stream.others = others
        return stream

    def uid_fetch_many(
        self,
        uid_sets: Iterable[str | UidSet | Iterable[int]],
        items: str | Sequence[str],
        *,
        body_sink: BodySink | None = None,
        window: int = 4,
    ) -> Iterator[FetchResult]:
        """Pipelined UID FETCH over many chunks: keeps `window` commands in flight so the
        server never waits for us between chunks."""
        chunks = iter(uid_sets)
        inflight: deque[Pending] = deque()

        def refill() -> None:
            while len(inflight) < max(1, window):
                chunk = next(chunks, None)
                if chunk is None:
                    return
                inflight.append(self.submit(*_uid_fetch_args(chunk, items, None, False)))

        at_boundary = True  # between whole responses (so the rest can be read cleanly)
        try:
            refill()
            while inflight:
                p = inflight[0]
                at_boundary = False
                for u in self._pump(p, body_sink):
                    if u.name == "FETCH":
                        at_boundary = True
                        yield parse_fetch(u)
                        at_boundary = False
                    else:
                        p.untagged.append(u)
                inflight.popleft()
                at_boundary = True
                self._check(p, "UID FETCH")
                refill()
        finally:
            # stopped early or a chunk was refused: read what is still coming, so the
            # connection stays usable (bodies are discarded, not kept). After a failure
            # in the middle of a response (a sink that raised) the caller must close.
            if at_boundary:
                for p in inflight:
                    if self._stream is None:
                        break
                    self._drain(p)

    def submit_uid_fetch(
        self, uids: str | UidSet | Iterable[int], items: str | Sequence[str]
    ) -> Pending:
        """Send `UID FETCH uids items` now, its answers read later by `fetch_answers`
        (also while the answers to an earlier command are still being read: the server
        runs it after that one). The caller reads them before those of any command it
        sends later, or closes the connection."""
        return self.submit(*_uid_fetch_args(uids, items, None, False))

    def header_answers(self, p: Pending, *, body_sink: BodySink | None = None) -> HeaderStream:
        """The answers to `p`, a `submit_uid_fetch` of `(UID BODY.PEEK[HEADER])`, read
        lazily in batches of (UID, header block) (see `HeaderStream`)."""
        return HeaderStream(self, p, body_sink)

    def _drain(self, p: Pending) -> None:
        for _ in self._pump(p, _discard):
            pass

    def uid_search(self, criteria: str = "ALL", *, esearch: bool | None = None) -> SearchResult:
        """UID SEARCH with raw `criteria` (the caller quotes strings, e.g. with
        `command.astring`). ESEARCH (RFC 4731) is used when offered: UIDs come as ranges."""
        use_esearch = ("ESEARCH" in self.capabilities) if esearch is None else esearch
        args: list[Piece] = [b"UID", b"SEARCH"]
        if use_esearch:
            args.append(b"RETURN (ALL)")
        args.append(criteria.encode("utf-8"))
        p = self.simple(*args)
        merged = SearchResult(UidSet())
        found = False
        for u in p.untagged:
            if u.name == "ESEARCH":
                r = parse_esearch(u)
            elif u.name == "SEARCH":
                r = parse_search(u)
            else:
                continue
            found = True
            merged.uids.ranges.extend(r.uids.ranges)
            merged.modseq = r.modseq if r.modseq is not None else merged.modseq
            merged.min, merged.max = r.min, r.max
        if found:
            merged.count = len(merged.uids)
        else:
            merged.count = 0
        return merged

    def uid_store(
        self,
        uids: str | UidSet | Iterable[int],
        op: str,
        flags: Iterable[str],
        *,
        unchangedsince: int | None = None,
        silent: bool = True,
    ) -> StoreResult:
        """UID STORE; `op` is "+FLAGS", "-FLAGS" or "FLAGS". With `unchangedsince`
        (CONDSTORE) messages changed meanwhile are left alone and listed in `.modified`."""
        if op.upper() not in ("+FLAGS", "-FLAGS", "FLAGS"):
            raise ValueError(f"bad STORE operation {op!r}")
        args: list[Piece] = [b"UID", b"STORE", cmd.uid_set(uids)]
        if unchangedsince is not None:
            args.append(f"(UNCHANGEDSINCE {unchangedsince})".encode("ascii"))
        args.append((op.upper() + (".SILENT" if silent else "")).encode("ascii"))
        args.append(cmd.flag_list(flags))
        p = self.simple(*args)
        res = StoreResult()
        res.fetched = [parse_fetch(u) for u in p.untagged if u.name == "FETCH"]
        assert p.status is not None
        if p.status.code == "MODIFIED" and p.status.code_args:
            res.modified = UidSet.parse(str(p.status.code_args[0]))
        return res

    def append(
        self,
        mailbox: str,
        data: bytes | IO[bytes],
        flags: Iterable[str] = (),
        internal_date: dt.datetime | None = None,
    ) -> AppendResult | None:
        """APPEND a message (bytes, or a binary file streamed in chunks). Returns the new
        UID when the server offers UIDPLUS (APPENDUID), else None."""
        p = self.submit(*self._append_args(mailbox, data, flags, internal_date))
        return self._finish_append(p)

    def append_many(
        self,
        mailbox: str,
        messages: Iterable[tuple[bytes | IO[bytes], Iterable[str], dt.datetime | None]],
        *,
        window: int = 8,
    ) -> Iterator[AppendResult | None]:
        """Pipelined APPENDs of (data, flags, internal date), results in order. With
        LITERAL+ the uploads follow each other without waiting for answers; without it
        each literal still waits for the server's go-ahead. A refusal raises after the
        APPENDs already sent have been answered (their results are not lost: those
        before it were yielded)."""
        inflight: deque[Pending] = deque()
        todo = iter(messages)
        while True:
            while len(inflight) < max(1, window):
                item = next(todo, None)
                if item is None:
                    break
                data, flags, when = item
                inflight.append(self.submit(*self._append_args(mailbox, data, flags, when)))
            if not inflight:
                return
            p = inflight.popleft()
            try:
                result = self._finish_append(p)
            except ProtocolError:
                for rest in inflight:
                    if self._stream is not None:
                        self._pump_all(rest)
                raise
            yield result

    def _append_args(
        self,
        mailbox: str,
        data: bytes | IO[bytes],
        flags: Iterable[str],
        internal_date: dt.datetime | None,
    ) -> list[Piece]:
        args: list[Piece] = [b"APPEND", cmd.mailbox(mailbox, self.utf8)]
        flag_items = list(flags)
        if flag_items:
            args.append(cmd.flag_list(flag_items))
        if internal_date is not None:
            args.append(format_internaldate(internal_date).encode("ascii"))
        args.append(Literal.of(data))
        return args

    def _finish_append(self, p: Pending) -> AppendResult | None:
        self.finish(p)
        assert p.status is not None
        got = parse_appenduid(p.status)
        if got is None:
            return None
        validity, uids = got
        return AppendResult(validity, next(iter(uids)))

    def uid_copy(self, uids: str | UidSet | Iterable[int], mailbox: str) -> CopyResult | None:
        p = self.simple(b"UID", b"COPY", cmd.uid_set(uids), cmd.mailbox(mailbox, self.utf8))
        return _copy_result(p)

    def uid_move(self, uids: str | UidSet | Iterable[int], mailbox: str) -> CopyResult | None:
        """UID MOVE (RFC 6851). Dovecot sends COPYUID in an untagged OK before expunging."""
        if "MOVE" not in self.capabilities:
            raise ProtocolError(
                f"{self._where()} does not support MOVE",
                hint="copy, flag \\Deleted and expunge instead",
                cause="no-move",
            )
        p = self.simple(b"UID", b"MOVE", cmd.uid_set(uids), cmd.mailbox(mailbox, self.utf8))
        return _copy_result(p)

    def uid_expunge(self, uids: str | UidSet | Iterable[int]) -> list[Untagged]:
        """UID EXPUNGE (UIDPLUS): only these UIDs, never others flagged \\Deleted."""
        return self.simple(b"UID", b"EXPUNGE", cmd.uid_set(uids)).untagged

    def expunge(self) -> list[Untagged]:
        return self.simple(b"EXPUNGE").untagged

    # --- pipelining primitives ----------------------------------------------------------

    def submit(self, *args: Piece) -> Pending:
        """Send a command now and return without waiting for its answer."""
        self._tag_counter += 1
        tag = f"M{self._tag_counter}"
        name = args[0].decode("ascii").upper() if isinstance(args[0], bytes) else "?"
        if name == "UID" and len(args) > 1 and isinstance(args[1], bytes):
            name = "UID " + args[1].decode("ascii").upper()
        p = Pending(tag, name)
        self._inflight[tag] = p
        self._order.append(p)
        self._send_command(p, args)
        return p

    def finish(self, p: Pending) -> Pending:
        """Read until `p` is answered; untagged responses are kept in `p.untagged`.
        Raises ProtocolError on NO/BAD with the server's text."""
        self._pump_all(p)
        self._check(p, p.name)
        return p

    def simple(self, *args: Piece) -> Pending:
        return self.finish(self.submit(*args))

    # --- reading -------------------------------------------------------------------

    def _check(self, p: Pending, what: str) -> None:
        assert p.status is not None
        if p.status.kind == "OK":
            return
        kind = "refused" if p.status.kind == "NO" else "rejected as invalid (BAD)"
        raise self._error(
            ProtocolError,
            f"{self._where()} {kind} {what}: {p.status.text}",
            hint=_hint_for(p.status),
            command=what,
            server_status=p.status.kind,
            server_code=p.status.code,
            server_text=p.status.text,
        )

    def _pump_all(self, p: Pending) -> None:
        for u in self._pump(p, None):
            p.untagged.append(u)

    def _pump(self, p: Pending, body_sink: BodySink | None) -> Iterator[Untagged]:
        """Yield untagged responses until `p`'s tagged response has arrived. Tagged
        responses of earlier pipelined commands are recorded on their Pending."""
        while p.status is None:
            resp = self._read_response(body_sink)
            if isinstance(resp, Untagged):
                yield resp
            elif isinstance(resp, StatusResponse):
                self._complete(resp)
            else:
                raise ProtocolError(
                    f"{self._where()} sent an unexpected continuation: {resp.text}",
                    cause="unexpected-continuation",
                )

    def _complete(self, resp: StatusResponse) -> None:
        assert resp.tag is not None
        done = self._inflight.pop(resp.tag, None)
        if done is None:
            raise ProtocolError(
                f"{self._where()} answered a command we did not send ({resp.tag})",
                cause="unknown-tag",
            )
        done.status = resp
        self._order.remove(done)

    def _wait_continuation(self, p: Pending) -> Continuation | None:
        """Read until the server says `+` (returned) or `p` completes (None)."""
        while p.status is None:
            resp = self._read_response(None)
            if isinstance(resp, Continuation):
                return resp
            if isinstance(resp, StatusResponse):
                self._complete(resp)
            else:
                owner = self._order[0] if self._order else p
                owner.untagged.append(resp)
        return None

    def _read_response(
        self, body_sink: BodySink | None
    ) -> Continuation | Untagged | StatusResponse:
        stream = self.stream
        parts: list[bytes] = []
        literals: list[Value] = []
        try:
            while True:
                line = stream.readline()
                if not line.endswith(b"\n"):
                    raise ProtocolError("incomplete line", cause="parse")
                text = line[:-2] if line.endswith(b"\r\n") else line[:-1]
                self.transcript.received(PROTO, text)
                parts.append(text)
                m = literal_at_end(text)
                if m is None:
                    break
                size = int(m.group(1))
                literals.append(self._read_literal(parts, m.start(), size, body_sink))
        except NetworkError as exc:
            if self._bye is not None:
                exc.fields["server_text"] = self._bye.text
                exc.message = f"{exc.message} (server said: {self._bye.text})"
                exc.args = (exc.message,)
            self.close()
            raise
        except ProtocolError:
            # a refused literal or an endless line: the stream is out of step for good
            self.close()
            raise
        resp = parse_response(parts, literals)
        if isinstance(resp, Untagged):
            self._observe(resp)
        elif isinstance(resp, StatusResponse) and resp.code == "CAPABILITY":
            self._caps = parse_capabilities(resp.code_args)
        return resp

    def _read_literal(
        self, parts: list[bytes], marker: int, size: int, body_sink: BodySink | None
    ) -> Value:
        stream = self.stream
        first = parts[0]
        fetch_start, body_item_before_literal = _literal_patterns()
        fetch = fetch_start.match(first)
        before = parts[-1][:marker]
        body_item = body_item_before_literal.search(before) if fetch is not None else None
        if body_item is not None:
            if body_sink is not None:
                assert fetch is not None
                item = body_item.group(0).rstrip().decode("latin-1").upper()
                sink = body_sink(int(fetch.group(1)), item, size)
                stream.read_into(sink, size)
                return StreamedLiteral(size, sink)
            return stream.read_bytes(size, self.max_body_in_memory)
        return stream.read_bytes(size, self.max_literal)

    def _observe(self, u: Untagged) -> None:
        if u.name == "CAPABILITY":
            self._caps = parse_capabilities(u.values)
        elif u.status is not None:
            if u.status.code == "CAPABILITY":
                self._caps = parse_capabilities(u.status.code_args)
            if u.name == "BYE":
                self._bye = u.status
        elif u.name == "ENABLED":
            # recorded here, whichever command's answer carried it: an ENABLE may be
            # pipelined with the commands after it (the sync sends it with LIST)
            got = {str(v).upper() for v in u.values if isinstance(v, str)}
            self.enabled |= got
            if "QRESYNC" in got:
                self.enabled.add("CONDSTORE")  # RFC 7162: QRESYNC implies CONDSTORE

    # --- writing -------------------------------------------------------------------

    def _send_line(self, data: bytes, *, secret: bool = False) -> None:
        self.transcript.sent(PROTO, data, secret=secret)
        self.stream.send(data + b"\r\n")

    def _send_command(self, p: Pending, args: Sequence[Piece]) -> None:
        buf = p.tag.encode("ascii")
        for arg in args:
            if isinstance(arg, Literal):
                plus = "LITERAL+" in self.capabilities or (
                    "LITERAL-" in self.capabilities and arg.size <= 4096
                )
                buf += b" {" + str(arg.size).encode() + (b"+}" if plus else b"}")
                self.transcript.sent(PROTO, buf)
                self.stream.send(buf + b"\r\n")
                if not plus and self._wait_continuation(p) is None:
                    return  # refused before the data (e.g. NO [TOOBIG]); status is set
                self._send_literal(arg)
                buf = b""
            else:
                buf += b" " + arg
        self.transcript.sent(PROTO, buf)
        self.stream.send(buf + b"\r\n")

    def _send_literal(self, lit: Literal) -> None:
        self.transcript.sent(PROTO, b"<%d bytes>" % lit.size, secret=lit.secret)
        if isinstance(lit.data, bytes):
            self.stream.send(lit.data)
            return
        remaining = lit.size
        while remaining > 0:
            chunk = lit.data.read(min(remaining, 256 * 1024))
            if not chunk:
                raise ProtocolError("the message file ended early", cause="short-file")
            self.stream.send(chunk)
            remaining -= len(chunk)


class _LazyAnswer:
    """An answer read as it is used: `drain` (or leaving the `with` block) reads what
    is left, so the connection is in step before the next command."""

    client: ImapClient
    pending: Pending
    _started: bool

    def _read_all(self) -> None:
        raise NotImplementedError

    def drain(self) -> None:
        if not self._started:
            self._read_all()
        elif self.pending.status is None:
            self.client._drain(self.pending)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if t is None:
            self.drain()


class FetchStream(_LazyAnswer):
    """The answer to one UID FETCH, read lazily. Iterate it fully (or use it as a context
    manager, which drains what is left) before sending the next command."""

    def __init__(self, client: ImapClient, pending: Pending, body_sink: BodySink | None) -> None:
        self.client = client
        self.pending = pending
        self.body_sink = body_sink
        self.vanished = UidSet()
        self._started = False

    def __iter__(self) -> Iterator[FetchResult]:
        if self._started:
            raise RuntimeError("a FetchStream can be iterated once")
        self._started = True
        for u in self.client._pump(self.pending, self.body_sink):
            if u.name == "FETCH":
                yield parse_fetch(u)
            elif u.name == "VANISHED":
                self.vanished.ranges.extend(parse_vanished(u)[1].ranges)
            else:
                self.pending.untagged.append(u)
        self.client._check(self.pending, "UID FETCH")

    def all(self) -> list[FetchResult]:
        return list(self)

    def _read_all(self) -> None:
        for _ in self:
            pass


#: bytes of a line a scanned listing receives whole before the general reader takes it
#: (as `LineStream.buffered_lines`'s limit)
_SCAN_LINE_MAX = 64 * 1024


def _cut_in_literal(data: bytes, at: int, buffered: int) -> bool:
    """Whether the line of `data` at `at` announces a literal (of at most
    `_SCAN_LINE_MAX` bytes) that, with the ")" CRLF after it, is not all among the
    `buffered` bytes received (of which `data` is the start)."""
    end = data.find(b"\n", at)
    m = literal_at_end(data[at : end - 1]) if end > at and data[end - 1] == 0x0D else None
    if m is None:
        return False
    size = int(m.group(1))
    return size <= _SCAN_LINE_MAX and buffered < end + 1 + size + 3


class _ScanStream(_LazyAnswer, Generic[_Batch]):
    """An answer to a `UID FETCH` read lazily, a buffer's worth at a time: the answers
    of the one usual shape are cut straight out of the receive buffer by `_scan` (a
    scanner of `parser`; no object per answer but what it yields) into a batch; every
    other line (the tagged answer, EXISTS, EXPUNGE, another shape, a line split between
    two reads, garbage) goes through the general reader, `_read_response`, as in
    `uid_fetch`, and `_pick` makes a batch of it: nothing is dropped and garbage is a
    ProtocolError. Iterate it fully (or use it as a context manager, which drains what
    is left) before sending the next command."""

    #: distinct flag texts remembered (a hostile server could send endless new ones)
    KNOWN_MAX = 4096
    #: where the general reader puts a literal (None: in memory)
    body_sink: BodySink | None = None
    #: given the FETCH answers `_pick` leaves (None: they are dropped)
    others: Callable[[FetchResult], None] | None = None
    #: whether `print` is made (~5 ms of checksums for a 20,000 message identity listing)
    printed = True

    def __init__(self, client: ImapClient, pending: Pending) -> None:
        self.client = client
        self.pending = pending
        self._started = False
        # (see `print`): CRC-32 and Adler-32 of the scanned lines, their bytes; None once
        # a line came another way
        self._print: tuple[int, int, int] | None = (0, 1, 0) if self.printed else None

    @property
    def print(self) -> str | None:
        """Once the answer is read: a checksum of its bytes (CRC-32 and Adler-32, 64 bits,
        and the length), when every line was of the usual shape (no EXPUNGE, EXISTS or
        other answer among them) and the stream makes one (`printed`); else None. The
        same server state gives the same bytes (sequence numbers, UIDs, flags in the
        server's order), so an equal print says nothing changed there, but for a 2**-64
        chance."""
        status = self.pending.status
        if self._print is None or status is None or status.kind != "OK":
            return None
        crc, adler, size = self._print
        return f"{crc:08x}{adler:08x}.{size}"

    @staticmethod
    def _scan(data: bytes, known: FlagTexts) -> tuple[_Batch, int]:
        raise NotImplementedError

    @staticmethod
    def _pick(r: FetchResult) -> _Batch | None:
        raise NotImplementedError

    def batches(self) -> Iterator[_Batch]:
        if self._started:
            raise RuntimeError(f"a {type(self).__name__} can be iterated once")
        self._started = True
        client, p = self.client, self.pending
        stream = client.stream
        transcript = client.transcript
        scan, pick = self._scan, self._pick
        known = FlagTexts()
        while p.status is None:
            data = stream.buffered_lines()
            if data:
                found, used = scan(data, known)
                if used:
                    stream.skip(used)
                    if self._print is not None:
                        crc, adler, size = self._print
                        lines = memoryview(data)[:used]
                        self._print = (
                            zlib.crc32(lines, crc),
                            zlib.adler32(lines, adler),
                            size + used,
                        )
                    if transcript.enabled:
                        for line in data[:used].split(b"\r\n")[:-1]:
                            transcript.received(PROTO, line)
                    if len(known) > self.KNOWN_MAX:
                        known.clear()
                    yield found
                    if used == len(data):
                        continue
                if _cut_in_literal(data, used, used + stream.buffered()):
                    # the next answer ends in a literal not all received (~120 times in
                    # a 20,000 message identity listing): receive the rest and scan it,
                    # rather than hand that answer to the general reader
                    stream.receive()
                    continue
            elif stream.buffered() < _SCAN_LINE_MAX:
                # no whole line buffered (the last one cut by a read, ~250 times in a
                # 20,000 message listing): receive the rest and scan it, rather than
                # hand that line to the general reader
                stream.receive()
                continue
            # a line the scanner leaves to the general reader (or a longer one than
            # _SCAN_LINE_MAX, which that reader bounds)
            resp = client._read_response(self.body_sink)
            if isinstance(resp, Untagged):
                self._print = None
                if resp.name == "FETCH":
                    fetched = parse_fetch(resp)
                    batch = pick(fetched)
                    if batch is not None:
                        yield batch
                    elif self.others is not None:
                        self.others(fetched)
                else:
                    p.untagged.append(resp)
            elif isinstance(resp, StatusResponse):
                client._complete(resp)
            else:
                raise ProtocolError(
                    f"{client._where()} sent an unexpected continuation: {resp.text}",
                    cause="unexpected-continuation",
                )
        client._check(p, "UID FETCH")

    def _read_all(self) -> None:
        for _ in self.batches():
            pass

    def discard(self) -> None:
        """Read and drop the answer, whatever it is (a listing sent behind a SELECT that
        failed is refused too): the connection stays in step; a refusal is not raised.
        Read by the scanner when nothing was read yet (the general reader takes ~5x as
        long: ~100 ms for a 20,000 message listing)."""
        if not self._started and self.client._stream is not None:
            try:
                self._read_all()
            except ProtocolError:
                if self.pending.status is None:
                    raise  # (not a refusal: the connection is out of step)
            return
        self._started = True
        if self.pending.status is None and self.client._stream is not None:
            self.client._drain(self.pending)


#: a flag listing's batch: UIDs and flags side by side
FlagBatch = tuple[list[int], list[tuple[str, ...]]]


class FlagStream(_ScanStream[FlagBatch]):
    """The answer to `uid_fetch_flags`, read lazily as (UID, flags) pairs (or `batches`
    of UIDs and flags side by side), the plain flag lines cut by
    `parser.scan_flag_lines` (see `_ScanStream`). Measured on a 20,000 message folder:
    172 ms for the listing through `uid_fetch`, ~25 ms here (the server's pace)."""

    @staticmethod
    def _scan(data: bytes, known: FlagTexts) -> tuple[FlagBatch, int]:
        uids, flags, used = scan_flag_lines(data, known)
        return (uids, flags), used

    @staticmethod
    def _pick(r: FetchResult) -> FlagBatch | None:
        return None if r.uid is None or r.flags is None else ([r.uid], [r.flags])

    def __iter__(self) -> Iterator[UidFlags]:
        for uids, flags in self.batches():
            yield from zip(uids, flags, strict=True)


class IdentityStream(_ScanStream[list[UidIdentity]]):
    """The answer to `uid_fetch_identities`, read lazily as (UID, flags, size, header
    block), the usual answers cut by `parser.scan_identity_lines` (see `_ScanStream`).
    An answer without a size or the header (a flag change another client made
    meanwhile) is skipped."""

    @staticmethod
    def _scan(data: bytes, known: FlagTexts) -> tuple[list[UidIdentity], int]:
        return scan_identity_lines(data, known)

    @staticmethod
    def _pick(r: FetchResult) -> list[UidIdentity] | None:
        head = next((v for k, v in r.bodies.items() if k.startswith("BODY[HEADER")), None)
        if r.uid is None or r.flags is None or r.size is None or not isinstance(head, bytes):
            return None
        return [(r.uid, r.flags, r.size, head)]

    def __iter__(self) -> Iterator[UidIdentity]:
        for batch in self.batches():
            yield from batch


class IdentityRunStream(_ScanStream[list[IdentityItem]]):
    """The answer to `uid_fetch_identity_runs`, read lazily in batches (`batches`)."""

    printed = False

    @staticmethod
    def _scan(data: bytes, known: FlagTexts) -> tuple[list[IdentityItem], int]:
        return scan_identity_runs(data, known)

    @staticmethod
    def _pick(r: FetchResult) -> list[IdentityItem] | None:
        found = IdentityStream._pick(r)
        return None if found is None else list(found)


class HeaderStream(_ScanStream[list[tuple[int, "bytes | StreamedLiteral"]]]):
    """The answer to a `UID FETCH uids (UID BODY.PEEK[HEADER])`, read lazily in batches
    of (UID, header block): the usual answers cut from the receive buffer
    (`parser.scan_header_answers`), any other through the general reader, its literal
    given to `body_sink` (a header block may be long)."""

    def __init__(self, client: ImapClient, pending: Pending, body_sink: BodySink | None) -> None:
        super().__init__(client, pending)
        self.body_sink = body_sink

    @staticmethod
    def _scan(
        data: bytes, known: FlagTexts
    ) -> tuple[list[tuple[int, bytes | StreamedLiteral]], int]:
        found, used = scan_header_answers(data)
        return list(found), used

    @staticmethod
    def _pick(r: FetchResult) -> list[tuple[int, bytes | StreamedLiteral]] | None:
        head = r.bodies.get("BODY[HEADER]")
        if r.uid is None or not isinstance(head, bytes | StreamedLiteral):
            return None
        return [(r.uid, head)]


def _discard(seq: int, item: str, size: int) -> None:
    return None


def _uid_fetch_args(
    uids: str | UidSet | Iterable[int],
    items: str | Sequence[str],
    changedsince: int | None,
    vanished: bool,
) -> list[Piece]:
    args: list[Piece] = [b"UID", b"FETCH", cmd.uid_set(uids), cmd.item_list(items)]
    if changedsince is not None:
        mod = f"CHANGEDSINCE {changedsince}" + (" VANISHED" if vanished else "")
        args.append(f"({mod})".encode("ascii"))
    elif vanished:
        raise ValueError("VANISHED needs changedsince (RFC 7162)")
    return args


def _apply_select_code(res: SelectResult, status: StatusResponse) -> None:
    code = status.code
    if code == "UIDVALIDITY":
        res.uidvalidity = status.code_number()
    elif code == "UIDNEXT":
        res.uidnext = status.code_number()
    elif code == "HIGHESTMODSEQ":
        res.highestmodseq = status.code_number()
    elif code == "NOMODSEQ":
        res.nomodseq = True
    elif code == "UNSEEN":
        res.unseen_seq = status.code_number()
    elif code == "PERMANENTFLAGS" and status.code_args:
        res.permanentflags = flag_tuple(status.code_args[0])
    elif code == "READ-ONLY":
        res.readonly = True


def _copy_result(p: Pending) -> CopyResult | None:
    statuses = [u.status for u in p.untagged if u.status is not None]
    if p.status is not None:
        statuses.append(p.status)
    for status in statuses:
        got = parse_copyuid(status)
        if got is not None:
            return CopyResult(*got)
    return None


def _hint_for(status: StatusResponse) -> str | None:
    code = status.code or ""
    return {
        "TRYCREATE": "the target mailbox does not exist; create it first",
        "NONEXISTENT": "the mailbox does not exist on the server",
        "ALREADYEXISTS": "a mailbox with that name exists already",
        "OVERQUOTA": "the mailbox is full: delete mail or ask the provider for more space",
        "TOOBIG": "the message is larger than the server accepts",
        "LIMIT": "the server refuses requests this large; try smaller batches",
        "UNAVAILABLE": "the server is temporarily unavailable; try again later",
        "SERVERBUG": "the server hit an internal error; try again later",
        "INUSE": "another client holds the mailbox; try again later",
        "EXPUNGEISSUED": "messages were removed meanwhile; sync again",
    }.get(code)


def _b64_text(text: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", "replace")
    except ValueError:
        return text
