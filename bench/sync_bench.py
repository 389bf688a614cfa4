#!/usr/bin/env python3
"""mailbag sync vs mbsync (and offlineimap3), side by side, on one generated corpus in the
sandbox (IMAPS).

    python bench/sync_bench.py --messages 20000          # ~650 MB, 6 folders
    python bench/sync_bench.py --messages 200000 --small --initial-only   # memory at scale
    python bench/sync_bench.py --big-mb 300               # one 300 MB message (memory)
    python bench/sync_bench.py --messages 100000 --small --one-folder \
        --imap-without QRESYNC,CONDSTORE                  # full folder reads (memory)
    python bench/sync_bench.py --messages 200000 --small --one-folder --uidvalidity
                                                          # a UIDVALIDITY change (memory)

Builds the corpus straight into the sandbox Dovecot's Maildir (APPENDing 20,000
messages would take minutes), lets Dovecot index it, then runs for each tool:
initial sync, a first no-op re-sync, then `--repeat` rounds (default 6) of the steady no-op
re-sync and `--repeat` rounds of a re-sync after flags changed on 1% and 1% expunged
(a new change each round; the same server change is seen by both tools). In every
round the tools take turns, the order flipping each round, so a noisy shared
machine slows both alike; the summary gives medians and the ratio of medians, and
compares each position apart (the tool that runs first after a change pays the work the
server put off, e.g. Dovecot syncing its Maildir after the expunges: at 200,000 messages
~1 s).
mbsync runs with its default `FSync yes`; mailbag makes every message durable before
recording it (in batches). mailbag is byte-compiled first, as an installed copy is.
offlineimap3 (fsync on by default, 3 connections), when installed, runs the initial
sync only; it is an order of magnitude slower (--no-offlineimap leaves it out).
`--initial-rounds N` repeats the initial sync into emptied stores. `--latency-ms 20`
connects both tools through a relay that delays each direction by 20 ms, as a
real network would: there the number of round trips shows.
`--uidvalidity`: after the initial sync, only rounds where every folder gets a new
UIDVALIDITY (as after a server migration) before the tools run: each must pair its
messages again (mailbag by Message-ID and size; no body is downloaded again);
`--without-message-id 5` leaves the Message-ID out of 5% of the corpus (mailbag pairs
those by size and a digest of their header block).
`--imap-without QRESYNC,CONDSTORE` hides those from the server's capabilities: every
re-sync of a changed folder is then a full folder read (`UID FETCH 1:* (FLAGS)` against
the whole index), as mbsync always does; with `--one-folder` all of it in INBOX.
Prints wall time, CPU time (user+sys), peak RSS and mailbag/mbsync ratios.
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import imaplib
import os
import queue
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mailbag.sandbox import Sandbox

USER = "bench"
FOLDERS = ["INBOX", "Work", "Lists", "Receipts", "Family", "Archive"]
SHARES = [0.45, 0.2, 0.15, 0.08, 0.07, 0.05]
WORDS = [
    *(
        [
            "meeting",
            "report",
            "invoice",
            "budget",
            "quarterly",
            "release",
            "deploy",
            "review",
            "schedule",
            "lunch",
        ]
    ),
    *(
        [
            "server",
            "client",
            "folder",
            "message",
            "sync",
            "draft",
            "thanks",
            "please",
            "attached",
            "update",
            "notes",
        ]
    ),
    *(["Grüße", "café", "naïve", "Zürich", "Ελλάδα", "привет", "日本語", "straße"]),
]
NAMES = ["Ada Lovelace", "Björn Åström", "Chloé Dupré", "Dmitri Иванов", "Eun-ji 김", "Femi Okafor"]


# --- corpus ---------------------------------------------------------------------------------


def _paragraphs(rng: random.Random, nbytes: int) -> str:
    out: list[str] = []
    n = 0
    while n < nbytes:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 13)))
        out.append(line)
        n += len(line.encode()) + 2
    return "\r\n".join(out)


def _b64(rng: random.Random, nbytes: int) -> str:
    raw = rng.randbytes(nbytes)
    text = base64.b64encode(raw).decode()
    return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))


_LINES: list[str] = []


def _paragraphs_fast(rng: random.Random, nbytes: int) -> str:
    """`_paragraphs` from a pool of pre-made lines (a 200,000 message corpus would
    otherwise take minutes to generate)."""
    if not _LINES:
        pool = random.Random(99)
        _LINES.extend(
            " ".join(pool.choice(WORDS) for _ in range(pool.randint(5, 13))) for _ in range(4000)
        )
    out: list[str] = []
    n = 0
    while n < nbytes:
        line = _LINES[rng.randrange(len(_LINES))]
        out.append(line)
        n += len(line.encode()) + 2
    return "\r\n".join(out)


def make_message(
    rng: random.Random, i: int, small: bool, fast: bool = False, message_id: bool = True
) -> bytes:
    who = rng.choice(NAMES)
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1_700_000_000 + i * 300))
    head = (
        f"From: =?utf-8?b?{base64.b64encode(who.encode()).decode()}?= <p{i % 97}@example.org>\r\n"
        f"To: Bench <bench@sandbox.test>\r\n"
        f"Subject: =?utf-8?b?{base64.b64encode(f'[{i}] {subject}'.encode()).decode()}?=\r\n"
        f"Date: {date}\r\n"
        + (f"Message-ID: <bench-{i}@example.org>\r\n" if message_id else "")
        + "MIME-Version: 1.0\r\n"
    )
    if i and rng.random() < 0.3:
        head += f"In-Reply-To: <bench-{rng.randint(max(0, i - 40), i - 1)}@example.org>\r\n"
    kind = "text" if small else rng.choices(["text", "html", "attach"], [70, 20, 10])[0]
    if kind == "text":
        para = _paragraphs_fast if fast else _paragraphs
        body = para(rng, rng.randint(1000, 8000) if small else rng.randint(2000, 14000))
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode()
    text = _paragraphs(rng, rng.randint(2000, 9000))
    if kind == "html":
        html = "<html><body><p>" + text.replace("\r\n", "</p><p>") + "</p></body></html>"
        return (
            head + 'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
            "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--b1--\r\n"
        ).encode()
    attach = _b64(rng, rng.randint(60_000, 280_000))
    return (
        head + 'Content-Type: multipart/mixed; boundary="b2"\r\n\r\n'
        "--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
        "--b2\r\nContent-Type: application/pdf; name=report.pdf\r\n"
        "Content-Disposition: attachment; filename=report.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + attach + "\r\n--b2--\r\n"
    ).encode()


def build_corpus(
    sb: Sandbox, n: int, small: bool, big_mb: int, without_id: float = 0.0
) -> tuple[int, int]:
    """Write the corpus into Dovecot's Maildir (Maildir++ layout); returns (messages, bytes).
    `without_id`: the share of messages without a Message-ID (every k-th)."""
    root = sb.maildir(USER)
    rng = random.Random(42)
    total = 0
    counts = [int(n * s) for s in SHARES]
    counts[0] += n - sum(counts)
    i = 0
    now = int(time.time())
    uid = gid = -1
    if os.geteuid() == 0:
        st = sb.dovecot.mail_home(USER).stat()
        uid, gid = st.st_uid, st.st_gid
    for folder, count in zip(FOLDERS, counts, strict=True):
        d = root if folder == "INBOX" else root / f".{folder}"
        for sub in ("cur", "new", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            named = not without_id or i % max(1, round(1 / without_id)) != 0
            data = make_message(rng, i, small, fast=n > 50_000, message_id=named)
            flags = "S" if rng.random() < 0.6 else ""
            if rng.random() < 0.05:
                flags = "F" + flags
            (d / "cur" / f"{now}.bench{i}.host:2,{flags}").write_bytes(data)
            total += len(data)
            i += 1
    if big_mb:
        data = b"Subject: big\r\nMessage-ID: <big@example.org>\r\n\r\n" + (b"x" * 998 + b"\r\n") * (
            big_mb * 1024 * 1024 // 1000
        )
        (root / "cur" / f"{now}.big.host:2,S").write_bytes(data)
        total += len(data)
        i += 1
    if uid >= 0:
        for dirpath, _, files in os.walk(sb.dovecot.mail_home(USER)):
            os.chown(dirpath, uid, gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), uid, gid)
    # let Dovecot assign UIDs and build its indexes before anything is timed
    with sb.control(USER) as c:
        for folder in FOLDERS:
            c.imap.subscribe(f'"{folder}"')
            c.select(folder)
    return i, total


# --- network latency ------------------------------------------------------------------------


class DelayProxy:
    """A TCP relay on loopback that holds every chunk `delay` seconds in each direction
    (a round trip costs 2 x delay, as on a network), bandwidth unlimited, order kept.
    Both tools connect through it with `--latency-ms`: there, round trips count."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, upstream)
            self._pipe(upstream, client)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        line: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

        def read() -> None:
            while True:
                try:
                    data = src.recv(1 << 16)
                except OSError:
                    data = b""
                line.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        def write() -> None:
            while True:
                due, data = line.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if not data:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    with contextlib.suppress(OSError):
                        src.shutdown(socket.SHUT_RD)
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def close(self) -> None:
        self.listener.close()


#: the port the tools connect to: the sandbox's IMAPS port, or the delaying relay's
_PROXY: DelayProxy | None = None


def imaps_port(sb: Sandbox) -> int:
    return _PROXY.port if _PROXY is not None else sb.ports.imaps


# --- running the tools ------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    ok: bool
    note: str = ""
    first: bool = False  # ran first in its round (pays what the server left from the change)


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run `cmd`; wall time here, CPU and peak RSS from the child's own rusage.

    Peak RSS comes from GNU time when installed (a forked Python child would
    otherwise report the parent's pages), else from wait4.

    Each run starts with nothing waiting to be written back (os.sync, untimed): the
    previous run's writes (the other tool's, an initial sync's 650 MB, the server's
    change) would otherwise be flushed during this one and be charged to whichever tool
    runs next (a journal commit waits for them).
    """
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = [gnu_time, "-f", "%M", "-o", tf.name, *cmd] if gnu_time else cmd
        os.sync()
        start = time.perf_counter()
        proc = subprocess.Popen(full, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate()
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime - measure.cpu_so_far  # type: ignore[attr-defined]
        measure.cpu_so_far = usage.ru_utime + usage.ru_stime  # type: ignore[attr-defined]
        rss_kb = float(tf.read().strip().splitlines()[-1]) if gnu_time else usage.ru_maxrss
    ok = proc.returncode == 0
    note = "" if ok else (out + err).decode(errors="replace").strip()[-600:]
    return Run(wall, cpu, rss_kb / 1024, ok, note)


measure.cpu_so_far = 0.0  # type: ignore[attr-defined]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def precompile() -> None:
    """Byte-compile mailbag as an installed copy is (pip compiles wheels on install).

    An editable checkout run with PYTHONDONTWRITEBYTECODE=1 (as some CI and sandboxed
    shells set) would otherwise compile every module from source on every run: about
    0.15 s per `mailbag sync` here, which no user pays."""
    import compileall

    import mailbag

    compileall.compile_dir(Path(mailbag.__file__).parent, quiet=1)


def mbsync_config(
    sb: Sandbox, work: Path, user: str = USER, password_command: Path | None = None
) -> Path:
    """mbsync's configuration for `user`'s mail in the sandbox: the password written in
    it, or from `password_command` (PassCmd, as mailbag's password_command)."""
    store = work / "mbsync-mail"
    store.mkdir()
    conf = work / "mbsyncrc"
    password = f'PassCmd "{password_command}"' if password_command else f"Pass {sb.password(user)}"
    conf.write_text(
        f"""IMAPAccount bench
Host localhost
Port {imaps_port(sb)}
User {sb.address(user)}
{password}
SSLType IMAPS
CertificateFile {sb.ca_file}

IMAPStore remote
Account bench

MaildirStore local
Path {store}/
Inbox {store}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns *
Create Near
Expunge Both
SyncState *
"""
    )
    return conf


def offlineimap_config(sb: Sandbox, work: Path) -> Path:
    store = work / "offlineimap-mail"
    store.mkdir()
    conf = work / "offlineimaprc"
    conf.write_text(
        f"""[general]
accounts = bench
metadata = {work}/offlineimap-meta
ui = quiet
# fsync = true is the default: a message is on disk before it is recorded

[Account bench]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {store}

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {imaps_port(sb)}
ssl = yes
sslcacertfile = {sb.ca_file}
remoteuser = {sb.address(USER)}
remotepass = {sb.password(USER)}
maxconnections = 3
"""
    )
    return conf


def mailbag_home(sb: Sandbox, work: Path) -> tuple[dict[str, str], list[str]]:
    home = work / "mailbag-home"
    home.mkdir()
    pw = work / "pw.sh"
    pw.write_text(f"#!/bin/sh\necho '{sb.password(USER)}'\n")
    pw.chmod(0o700)
    (home / "config.toml").write_text(
        f"""[accounts.bench]
email = "{sb.address(USER)}"
protocol = "imap"
ca_file = "{sb.ca_file}"

[accounts.bench.incoming]
host = "localhost"
port = {imaps_port(sb)}
security = "ssl"
username = "{sb.address(USER)}"
password_command = "{pw}"

[accounts.bench.smtp]
host = "localhost"
port = 465
security = "ssl"
username = "{sb.address(USER)}"

[accounts.bench.sync]
mass_delete_threshold = 1000000
"""
    )
    env = dict(os.environ, MAILBAG_HOME=str(home))
    # the `mailbag` program as installed (the console script beside the interpreter, as
    # search_bench runs it), not `python -m mailbag`: runpy and what it imports (~2.3M
    # instructions, ~1% of a no-op sync) are no part of what a user runs
    exe = shutil.which("mailbag", path=str(Path(sys.executable).parent))
    return env, [exe or sys.executable, *([] if exe else ["-m", "mailbag"]), "sync", "--quiet"]


def reset_local(work: Path) -> None:
    """Every tool's local copy and sync state moved aside, for another initial sync. Moved,
    not deleted: deleting 20,000 files makes the next file creations on the file system
    slower for a while (ext4 skips recently freed inodes), which would tax the next tool."""
    trash = work / "trash" / str(time.monotonic_ns())
    trash.mkdir(parents=True)
    for p in (
        work / "mailbag-home" / "data",
        work / "mbsync-mail",
        work / "offlineimap-mail",
        work / "offlineimap-meta",
    ):
        if p.exists():
            os.rename(p, trash / p.name)
    (work / "mbsync-mail").mkdir()
    (work / "offlineimap-mail").mkdir()


def change_one_percent(sb: Sandbox, seed: int = 7) -> int:
    # the control session is stdlib imaplib: its guard against long lines (1 MB) stops
    # a `UID SEARCH ALL` answer of 200,000 UIDs in one folder
    imaplib._MAXLINE = max(imaplib._MAXLINE, 64 << 20)
    rng = random.Random(seed)
    changed = 0
    with sb.control(USER) as c:
        for folder in FOLDERS:
            uids = c.uids(folder)
            if not uids:
                continue
            k = max(1, len(uids) // 100)
            flag = rng.sample(uids, k)
            c.store(folder, flag, "+FLAGS", ["\\Flagged"])
            flagged = set(flag)
            rest = [u for u in uids if u not in flagged]
            gone = rng.sample(rest, min(k, len(rest)))
            if gone:  # (a folder of one message has none left to expunge)
                c.expunge(folder, gone)
            changed += k + len(gone)
    return changed


def main() -> int:
    global _PROXY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--small", action="store_true", help="small text messages only")
    ap.add_argument("--big-mb", type=int, default=0, help="add one message of this many MB")
    ap.add_argument("--no-mbsync", action="store_true")
    ap.add_argument("--no-offlineimap", action="store_true")
    ap.add_argument(
        "--initial-only", action="store_true", help="only the initial sync (e.g. for 200,000)"
    )
    ap.add_argument(
        "--initial-rounds",
        type=int,
        default=1,
        help="initial syncs per tool, each into an empty local store (medians reported)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--one-folder", action="store_true", help="the whole corpus in INBOX (one big folder)"
    )
    ap.add_argument(
        "--imap-without",
        default="",
        help="capabilities the server hides, comma-separated; QRESYNC,CONDSTORE makes "
        "every changed folder's re-sync a full folder read",
    )
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="connect through a relay adding this much delay each way (a round trip "
        "costs twice it), as on a real network; e.g. 20",
    )
    ap.add_argument(
        "--uidvalidity",
        action="store_true",
        help="after the initial sync, only re-syncs after every folder got a new UIDVALIDITY",
    )
    ap.add_argument(
        "--without-message-id",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="this share of the corpus has no Message-ID (with --uidvalidity: those are "
        "paired again by size and header digest)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=6,
        help="rounds of each re-sync case (medians reported); an even number lets each tool "
        "go first equally often",
    )
    args = ap.parse_args()
    mbsync = shutil.which("mbsync")
    if not mbsync and not args.no_mbsync:
        print("mbsync not found: run scripts/setup --bench (or pass --no-mbsync)", file=sys.stderr)
        return 2
    if args.one_folder:
        FOLDERS[:] = ["INBOX"]
        SHARES[:] = [1.0]
    without = {c.strip().upper() for c in args.imap_without.split(",") if c.strip()}
    precompile()
    work = Path(tempfile.mkdtemp(prefix="mailbag-bench-"))
    results: dict[str, dict[str, list[Run]]] = {}
    try:
        with Sandbox(users={USER: "bench-secret"}, services={"imap"}, imap_without=without) as sb:
            t0 = time.perf_counter()
            n, size = build_corpus(
                sb, args.messages, args.small, args.big_mb, args.without_message_id / 100
            )
            print(
                f"corpus: {n} messages, {size / 1e6:.0f} MB, {len(FOLDERS)} folders "
                f"(built and indexed in {time.perf_counter() - t0:.1f} s)"
                + (f"; server without {','.join(sorted(without))}" if without else ""),
                file=sys.stderr,
            )
            if args.latency_ms > 0:
                _PROXY = DelayProxy(sb.ports.imaps, args.latency_ms / 1000)
                print(
                    f"latency: {args.latency_ms:g} ms each way (round trip "
                    f"{2 * args.latency_ms:g} ms) through 127.0.0.1:{_PROXY.port}",
                    file=sys.stderr,
                )
            env, mailbag_cmd = mailbag_home(sb, work)
            tools: dict[str, tuple[list[str], dict[str, str] | None]] = {
                "mailbag": (mailbag_cmd, env)
            }
            if not args.no_mbsync:
                conf = mbsync_config(sb, work)
                tools["mbsync"] = ([mbsync or "mbsync", "-q", "-c", str(conf), "-a"], None)
            offlineimap = None if args.no_offlineimap else shutil.which("offlineimap")
            if offlineimap:
                oconf = offlineimap_config(sb, work)
                tools["offlineimap3"] = ([offlineimap, "-c", str(oconf), "-o", "-u", "quiet"], None)
            elif not args.no_offlineimap:
                print("offlineimap not found: run scripts/setup --bench", file=sys.stderr)
            # the first no-op after the initial sync scans every folder once (and records
            # what it saw); later no-op runs are the steady state. Re-syncs are short and
            # the machine may be shared: they run `--repeat` times, the tools taking turns
            # (the order flips every round), and the summary gives medians.
            phases = [("initial", max(1, args.initial_rounds))]
            if args.uidvalidity:
                phases += [("uidvalidity", args.repeat)]
            elif not args.initial_only:
                phases += [("no-op first", 1), ("no-op", args.repeat), ("1% change", args.repeat)]
            for phase, rounds in phases:
                for r in range(rounds):
                    if phase == "initial" and r:
                        reset_local(work)
                    if phase != "initial":
                        # mbsync sleeps until the clock's second has moved on since its
                        # last Maildir change (~1 s when two of its runs come back to
                        # back, as when the order flips); real syncs are further apart
                        time.sleep(1.1)
                    if phase == "1% change":
                        k = change_one_percent(sb, seed=7 + r)
                        print(
                            f"changed {k} messages on the server (flags 1%, expunge 1%)",
                            file=sys.stderr,
                        )
                    if phase == "uidvalidity":
                        for folder in FOLDERS:
                            sb.reset_uidvalidity(USER, folder)
                        print(f"new UIDVALIDITY for {len(FOLDERS)} folders", file=sys.stderr)
                    order = list(tools.items())
                    if r % 2:
                        order.reverse()
                    for position, (tool, (cmd, tool_env)) in enumerate(order):
                        if tool == "offlineimap3" and phase != "initial":
                            continue  # the initial sync shows where it stands
                        # (what ran since the last measure, such as the doveadm of
                        # a UIDVALIDITY reset, is not this tool's CPU)
                        measure.cpu_so_far = _children_cpu()  # type: ignore[attr-defined]
                        run = measure(cmd, tool_env)
                        run.first = position == 0
                        results.setdefault(phase, {}).setdefault(tool, []).append(run)
                        status = "" if run.ok else f"  FAILED: {run.note}"
                        print(
                            f"{phase:>11} {tool:>12}: {run.wall:7.2f} s wall "
                            f"{run.cpu:7.2f} s CPU {run.rss_mb:7.1f} MB RSS{status}",
                            file=sys.stderr,
                        )
    finally:
        if _PROXY is not None:
            _PROXY.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)

    print()
    print(
        f"{'phase':<11} {'tool':<12} {'runs':>4} {'wall s':>8} {'cpu s':>8} {'RSS MB':>8}"
        "   ratio (median wall)"
    )
    for phase, runs in results.items():
        base = runs.get("mbsync")
        for tool, rs in runs.items():
            wall = statistics.median(r.wall for r in rs)
            cpu = statistics.median(r.cpu for r in rs)
            rss = max(r.rss_mb for r in rs)
            ratio = ""
            if base and tool != "mbsync":
                ratio = f"{wall / statistics.median(r.wall for r in base):.2f}x"
            print(
                f"{phase:<11} {tool:<12} {len(rs):>4} {wall:8.3f} {cpu:8.3f} {rss:8.1f}   {ratio}"
            )
    # The first tool after a server change pays the server's deferred work (Dovecot syncing
    # its Maildir and indexes after the expunges, or after a UIDVALIDITY reset); the tools
    # take turns, so the same position compared is the fairest figure.
    for phase, runs in results.items():
        base = runs.get("mbsync")
        if not base or phase in ("initial", "no-op first"):
            continue
        for tool, rs in runs.items():
            if tool == "mbsync":
                continue
            parts = []
            for first, label in ((True, "first"), (False, "second")):
                mine = [r.wall for r in rs if r.first == first]
                theirs = [r.wall for r in base if r.first == first]
                if mine and theirs:
                    m, t = statistics.median(mine), statistics.median(theirs)
                    parts.append(
                        f"{label} {m:.3f} vs {t:.3f} s = {m / t:.2f}x ({len(mine)}/{len(theirs)})"
                    )
            if parts:
                print(f"{phase:<11} {tool:<12} by position: " + "; ".join(parts))
    if any(
        len(rs) % 2
        for phase, runs in results.items()
        for rs in runs.values()
        if phase not in ("initial", "no-op first")
    ):
        print("(an odd --repeat: one tool went first once more often than the other)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
