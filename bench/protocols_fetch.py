#!/usr/bin/env python3
"""Measure the IMAP and POP3 clients. IMAP: fetching every body of N messages over IMAPS
(pipelined, streamed to a sink) against a rawfetch-style loop (one UID FETCH 1:*,
lines and literals read off a buffered socket file, nothing parsed) and against
one-command-per-message fetching. POP3: pipelined RETR (window 16) against one RETR at
a time and against stdlib poplib. Then the peak RSS of a process that streams one
50 MB message to a file over IMAPS. Not a test: prints figures.

usage: python bench/protocols_fetch.py [--messages 2000] [--pad-kb 30] [--big-mb 50]
"""

from __future__ import annotations

import argparse
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, cast

from mailbag.protocols.imap import ImapClient
from mailbag.protocols.pop3 import Pop3Client
from mailbag.protocols.transport import Endpoint, Security
from mailbag.sandbox import Sandbox

USER = "alice"
ITEMS = ["UID", "FLAGS", "BODY.PEEK[]"]


class CountingSink:
    """A write-only sink that counts (what a Maildir file costs is the store's business)."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes | memoryview) -> int:
        self.n += len(data)
        return len(data)

    def factory(self, seq: int, item: str, size: int) -> IO[bytes]:
        return cast(IO[bytes], self)


def mailbag_pipelined(
    ep: Endpoint, user: str, pw: str, chunk: int, window: int
) -> tuple[float, int]:
    c = ImapClient.open(ep, user, pw)
    t = time.perf_counter()
    box = c.examine("INBOX")
    uids = list(c.uid_search("ALL").uids)
    sink = CountingSink()
    chunks = [uids[i : i + chunk] for i in range(0, len(uids), chunk)]
    n = sum(1 for _ in c.uid_fetch_many(chunks, ITEMS, body_sink=sink.factory, window=window))
    dt = time.perf_counter() - t
    c.logout()
    assert n == box.exists == len(uids), (n, box.exists)
    return dt, sink.n


def mailbag_single_command(ep: Endpoint, user: str, pw: str) -> tuple[float, int]:
    c = ImapClient.open(ep, user, pw)
    t = time.perf_counter()
    c.examine("INBOX")
    sink = CountingSink()
    for _ in c.uid_fetch("1:*", ITEMS, body_sink=sink.factory):
        pass
    dt = time.perf_counter() - t
    c.logout()
    return dt, sink.n


def mailbag_one_per_message(ep: Endpoint, user: str, pw: str) -> tuple[float, int]:
    c = ImapClient.open(ep, user, pw)
    t = time.perf_counter()
    c.examine("INBOX")
    uids = list(c.uid_search("ALL").uids)
    sink = CountingSink()
    for uid in uids:
        for _ in c.uid_fetch([uid], ITEMS, body_sink=sink.factory):
            pass
    dt = time.perf_counter() - t
    c.logout()
    return dt, sink.n


def rawfetch_style(host: str, port: int, ca: Path, user: str, pw: str) -> tuple[float, int]:
    import socket

    ctx = ssl.create_default_context(cafile=str(ca))
    s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
    f = s.makefile("rb", buffering=1 << 20)

    def cmd(tag: str, line: str) -> int:
        s.sendall(f"{tag} {line}\r\n".encode())
        n = 0
        while True:
            ln = f.readline()
            n += len(ln)
            if ln.endswith(b"}\r\n"):
                size = int(ln[ln.rindex(b"{") + 1 : -3])
                f.read(size)
                n += size
            elif ln.startswith(tag.encode() + b" "):
                return n

    f.readline()
    cmd("a", f'LOGIN "{user}" "{pw}"')
    t = time.perf_counter()
    cmd("s", "EXAMINE INBOX")
    total = cmd("f", "UID FETCH 1:* (FLAGS BODY.PEEK[])")
    dt = time.perf_counter() - t
    s.close()
    return dt, total


def pop3_pipelined(ep: Endpoint, user: str, pw: str, window: int) -> tuple[float, int]:
    p = Pop3Client.open(ep, user, pw)
    t = time.perf_counter()
    nums = sorted(p.list_all())
    sink = CountingSink()
    for r in p.retr_many(nums, lambda n: cast(IO[bytes], sink), window=window):
        assert r.error is None
    dt = time.perf_counter() - t
    p.quit()
    return dt, sink.n


def poplib_naive(host: str, port: int, ca: Path, user: str, pw: str) -> tuple[float, int]:
    import poplib

    ctx = ssl.create_default_context(cafile=str(ca))
    p = poplib.POP3_SSL(host, port, context=ctx)
    p.user(user)
    p.pass_(pw)
    t = time.perf_counter()
    count, _ = p.stat()
    total = 0
    for n in range(1, count + 1):
        _, lines, _ = p.retr(n)
        total += sum(len(x) + 2 for x in lines)
    dt = time.perf_counter() - t
    p.quit()
    return dt, total


STREAM_CHILD = r"""
import sys, time
from pathlib import Path
from mailbag.protocols.imap import ImapClient
from mailbag.protocols.transport import Endpoint, Security
host, port, ca, user, pw, out = sys.argv[1:7]
ep = Endpoint(host, int(port), Security.SSL, Path(ca))
c = ImapClient.open(ep, user, pw)
c.examine("big")
t = time.perf_counter()
with open(out, "wb") as fh:
    res = c.uid_fetch("1:*", ["UID", "BODY.PEEK[]"], body_sink=lambda *_: fh).all()
dt = time.perf_counter() - t
c.logout()
hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")][0]
print(f"{dt:.2f} {hwm.split()[1]}")
"""

BASELINE_CHILD = r"""
from pathlib import Path
from mailbag.protocols.imap import ImapClient
hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")][0]
print(hwm.split()[1])
"""


def pad(sb: Sandbox, count: int, kb: int) -> None:
    """Replace INBOX with `count` messages of about `kb` KB (text lines after the sample)."""
    from mailbag.sandbox.sample import generate

    ep = Endpoint("localhost", sb.ports.imaps, Security.SSL, sb.ca_file, timeout=60)
    c = ImapClient.open(ep, sb.address(USER), sb.password(USER))
    c.select("INBOX")
    c.uid_store("1:*", "+FLAGS", ["\\Deleted"])
    c.expunge()
    filler = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod t\r\n") * (
        kb * 1024 // 76
    )
    for data in generate(count, to=sb.address(USER), seed=8):
        c.append("INBOX", data + b"\r\n" + filler)
    c.logout()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--big-mb", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--pad-kb", type=int, default=0, help="use messages of about this size instead (KB)"
    )
    args = ap.parse_args()
    with Sandbox(services={"imap", "pop3", "lmtp"}) as sb:
        user, pw = sb.address(USER), sb.password(USER)
        t = time.perf_counter()
        sb.fill(USER, args.messages, seed=7)
        if args.pad_kb:
            pad(sb, args.messages, args.pad_kb)
        print(f"filled {args.messages} messages in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        ep = Endpoint("localhost", sb.ports.imaps, Security.SSL, sb.ca_file, timeout=60)
        rows: dict[str, list[float]] = {}
        size = 0
        for _ in range(args.runs):
            for name, fn in (
                (
                    "rawfetch-style (1 command, no parsing)",
                    lambda: rawfetch_style("localhost", sb.ports.imaps, sb.ca_file, user, pw),
                ),
                ("mailbag, UID FETCH 1:* streamed", lambda: mailbag_single_command(ep, user, pw)),
                (
                    "mailbag, 100-UID chunks, window 4",
                    lambda: mailbag_pipelined(ep, user, pw, 100, 4),
                ),
                ("mailbag, one command per message", lambda: mailbag_one_per_message(ep, user, pw)),
            ):
                dt, n = fn()
                rows.setdefault(name, []).append(dt)
                if "mailbag" in name:
                    size = n
        print(
            f"\n{args.messages} messages, {size / 1e6:.1f} MB of bodies, IMAPS on loopback, "
            f"best of {args.runs}:"
        )
        for name, times in rows.items():
            best = min(times)
            print(f"  {name:45s} {best:6.2f} s  {size / 1e6 / best:7.1f} MB/s")

        pop_ep = Endpoint("localhost", sb.ports.pop3s, Security.SSL, sb.ca_file, timeout=60)
        pop_rows: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for name, fn in (
                ("mailbag POP3, RETR window 16", lambda: pop3_pipelined(pop_ep, user, pw, 16)),
                ("mailbag POP3, one RETR at a time", lambda: pop3_pipelined(pop_ep, user, pw, 1)),
                (
                    "stdlib poplib, RETR into memory",
                    lambda: poplib_naive("localhost", sb.ports.pop3s, sb.ca_file, user, pw),
                ),
            ):
                dt, _ = fn()
                pop_rows.setdefault(name, []).append(dt)
        print("POP3S, same messages:")
        for name, times in pop_rows.items():
            best = min(times)
            print(f"  {name:45s} {best:6.2f} s  {size / 1e6 / best:7.1f} MB/s")

        # one big message, streamed to a file in a child process (clean RSS figure)
        with sb.control(USER) as ctl:
            ctl.create("big")
            line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-=+*\r\n"
            body = line * (args.big_mb * 1024 * 1024 // len(line))
            ctl.append("big", b"Subject: big\r\n\r\n" + body)
            del body
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "big.eml")
            res = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    STREAM_CHILD,
                    "localhost",
                    str(sb.ports.imaps),
                    str(sb.ca_file),
                    user,
                    pw,
                    out,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            dt, hwm = res.stdout.split()
            base = subprocess.run(
                [sys.executable, "-c", BASELINE_CHILD], capture_output=True, text=True, check=True
            ).stdout.strip()
            print(
                f"\nstreaming one {args.big_mb} MB message to a file: {float(dt):.2f} s, "
                f"peak RSS {int(hwm) / 1024:.1f} MB (the interpreter with mailbag "
                f"imported: {int(base) / 1024:.1f} MB); "
                f"file {os.path.getsize(out) / 1e6:.1f} MB"
            )


if __name__ == "__main__":
    main()
