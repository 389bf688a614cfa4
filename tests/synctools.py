"""Helpers for the sync tests: accounts for sandbox users, running a sync (in this process
or a child that can be killed), and comparing both sides exactly.

Run as a script it syncs once: `python tests/synctools.py SPEC_JSON` (used by the crash
tests, which SIGKILL that child at chosen points through MAILBAG_TEST_CRASH).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mailbag.config.model import Account, Protocol, Server, SmtpServer, SyncOptions
from mailbag.errors import SandboxError
from mailbag.paths import Paths
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.protocols.transport import Security
from mailbag.store.index import Store
from mailbag.store.maildir import FLAG_LETTERS
from mailbag.sync.events import AccountReport, ProgressCallback, no_progress
from mailbag.sync.imap import SyncOptions as EngineOptions
from mailbag.sync.imap import sync_account

#: how big the crash matrices are: small in CI, larger by hand (MAILBAG_SYNC_TEST_SIZE=400)
SIZE = int(os.environ.get("MAILBAG_SYNC_TEST_SIZE", "40"))
MAILDIR_FLAGS = frozenset(FLAG_LETTERS)


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    ca_file: str
    user: str  # full address
    password: str
    threshold: int = 50

    def account(self) -> Account:
        server = Server(self.host, self.port, Security.SSL, self.user)
        smtp = SmtpServer(self.host, 465, Security.SSL, self.user)
        return Account(
            name=self.user.split("@")[0],
            email=self.user,
            protocol=Protocol.IMAP,
            incoming=server,
            smtp=smtp,
            ca_file=Path(self.ca_file),
            sync=SyncOptions(mass_delete_threshold=self.threshold),
        )


def target(sb: object, user: str, threshold: int = 50) -> Target:
    return Target(
        sb.host,  # type: ignore[attr-defined]
        sb.ports.imaps,  # type: ignore[attr-defined]
        str(sb.ca_file),  # type: ignore[attr-defined]
        sb.address(user),  # type: ignore[attr-defined]
        sb.password(user),  # type: ignore[attr-defined]
        threshold,
    )


def home_paths(home: Path) -> Paths:
    return Paths(config_dir=home, data_dir=home / "data", state_dir=home / "state")


def sync(
    t: Target,
    home: Path,
    *,
    force: bool = False,
    folders: tuple[str, ...] = (),
    connections: int = 3,
    on_progress: ProgressCallback = no_progress,
    retries: int = 3,
    share_chunk: int = 500,
    transcript: Transcript = NO_TRACE,
) -> AccountReport:
    options = EngineOptions(
        folders=folders,
        force=force,
        connections=connections,
        retries=retries,
        backoff=0.2,
        share_chunk=share_chunk,
        chunk_messages=max(10, min(250, share_chunk // 2)),
    )
    return sync_account(
        t.account(),
        t.password,
        home_paths(home),
        options=options,
        on_progress=on_progress,
        transcript=transcript,
    )


def sync_in_child(
    t: Target, home: Path, crash: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("MAILBAG_TEST_CRASH", None)
    if crash:
        env["MAILBAG_TEST_CRASH"] = crash
    spec = json.dumps({"target": t.__dict__, "home": str(home)})
    return subprocess.run(
        [sys.executable, __file__, spec],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def killed_at(t: Target, home: Path, point: str) -> None:
    """A sync in a child process, killed (SIGKILL) at crash point `point`."""
    crashed = sync_in_child(t, home, crash=point)
    assert crashed.returncode == -9, (crashed.returncode, crashed.stdout, crashed.stderr)


def rerun_in_child(t: Target, home: Path) -> None:
    """A whole sync in a child process (as after a crash), which must succeed."""
    again = sync_in_child(t, home)
    assert again.returncode == 0, again.stdout + again.stderr


def assert_nothing_left(t: Target, home: Path, connections: int = 3) -> None:
    """One more sync succeeds and changes nothing on either side: the ones before it
    converged."""
    final = sync(t, home, connections=connections)
    assert_ok(final)
    assert sum(totals(final).values()) == 0, totals(final)


def append_many(sb: object, user: str, messages: Iterable[bytes], batch: int = 500) -> int:
    """APPEND `messages` to `user`'s INBOX, `batch` in each command (MULTIAPPEND, RFC 3502,
    with LITERAL+): imaplib's one at a time takes ~3 ms each here. Returns how many."""
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(sb.ca_file))  # type: ignore[attr-defined]
    host, port = sb.host, sb.ports.imaps  # type: ignore[attr-defined]
    count = 0
    with (
        socket.create_connection((host, port)) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as conn,
        conn.makefile("rb") as answers,
    ):

        def finish(tag: bytes) -> None:
            while not (line := answers.readline()).startswith(tag + b" "):
                assert line, "connection closed"
            assert line.startswith(tag + b" OK"), line

        answers.readline()  # (the greeting)
        address, password = sb.address(user), sb.password(user)  # type: ignore[attr-defined]
        conn.sendall(b'L LOGIN "%s" "%s"\r\n' % (address.encode(), password.encode()))
        finish(b"L")
        it = iter(messages)
        while chunk := list(itertools.islice(it, batch)):
            parts = [b"A APPEND INBOX"]
            parts.extend(b" {%d+}\r\n%s" % (len(data), data) for data in chunk)
            conn.sendall(b"".join(parts) + b"\r\n")
            finish(b"A")
            count += len(chunk)
    return count


def totals(report: AccountReport) -> dict[str, int]:
    out = {"new": 0, "updated": 0, "deleted": 0, "uploaded": 0, "paired": 0, "restored": 0}
    for f in report.folders:
        for k in out:
            out[k] += getattr(f, k)
    return out


def assert_ok(report: AccountReport) -> None:
    errors = [report.error] + [f"{f.name}: {f.error}" for f in report.folders if f.error]
    errors = [e for e in errors if e]
    assert not errors, errors


#: messages, and what Dovecot answers to BODY.PEEK[HEADER] for each (probed): the
#: header block as `sync.digests` takes it from a file
HEADER_CASES = [
    (b"Subject: a\r\nFrom: b@c\r\n\r\nbody\r\n", b"Subject: a\r\nFrom: b@c\r\n\r\n"),
    (b"Subject: only header\r\nFrom: a@b\r\n", b"Subject: only header\r\nFrom: a@b\r\n"),
    (b"Subject: no end\r\nFrom: a@b", b"Subject: no end\r\nFrom: a@b"),
    (b"\r\nbody only\r\n", b"\r\n"),
    (b"Subject: x\r\n\r\n", b"Subject: x\r\n\r\n"),
    (b"Subject: x\r\n\r\n\r\n\r\nmore\r\n", b"Subject: x\r\n\r\n"),
    (b"", b""),
]


# --- comparing both sides -----------------------------------------------------------------


def server_state(sb: object, user: str) -> dict[str, dict[int, tuple[bytes, frozenset[str]]]]:
    """folder -> uid -> (exact bytes, flags) as an independent client sees them."""
    out: dict[str, dict[int, tuple[bytes, frozenset[str]]]] = {}
    with sb.control(user) as c:  # type: ignore[attr-defined]
        for box in c.mailboxes():
            try:
                bodies = c.fetch_bodies(box)
            except SandboxError:  # a \\Noselect parent such as "Work" of "Work/Projects"
                continue
            flags = c.flags(box) if bodies else {}
            out[box] = {
                uid: (data, frozenset(flags.get(uid, set())) - {"\\Recent"})
                for uid, data in bodies.items()
            }
    return out


def local_state(home: Path, account: str) -> dict[str, dict[int, tuple[bytes, frozenset[str]]]]:
    """folder -> uid -> (file bytes, flags from the file name + keywords in the index)."""
    out: dict[str, dict[int, tuple[bytes, frozenset[str]]]] = {}
    with Store.open(home_paths(home), hooks=False) as store:
        for folder in store.folders(account):
            entries = folder.maildir.scan()
            box: dict[int, tuple[bytes, frozenset[str]]] = {}
            known = set()
            for m in store.folder_messages(folder):
                entry = entries.get(m.key)
                assert not m.gone, f"tombstone left after sync: {m}"
                assert entry is not None, f"indexed file missing: {folder.name}/{m.key}"
                assert m.uid is not None, f"unpaired after sync: {folder.name}/{m.key}"
                assert m.uid not in box, f"UID {m.uid} twice in {folder.name}"
                known.add(m.key)
                flags = entry.flags | (m.flags - MAILDIR_FLAGS)
                box[m.uid] = (entry.path.read_bytes(), flags)
            unknown = set(entries) - known
            assert not unknown, f"files the index does not know in {folder.name}: {unknown}"
            assert folder.maildir.tmp_names() == [], f"leftovers in {folder.name}/tmp"
            out[folder.name] = box
    return out


def assert_same(sb: object, user: str, home: Path) -> int:
    """Both sides hold exactly the same messages (bytes and flags); returns how many."""
    server = server_state(sb, user)
    local = local_state(home, user)
    for box, msgs in server.items():
        if not msgs and box not in local:
            continue
        assert box in local, f"folder {box} not synced"
        assert set(local[box]) == set(msgs), (
            f"{box}: only on server {sorted(set(msgs) - set(local[box]))}, "
            f"only here {sorted(set(local[box]) - set(msgs))}"
        )
        for uid, (data, flags) in msgs.items():
            ldata, lflags = local[box][uid]
            assert ldata == data, f"{box} UID {uid}: bytes differ"
            assert lflags == flags, f"{box} UID {uid}: flags here {lflags}, server {flags}"
        # no message twice (by content) on either side
        assert len({d for d, _ in msgs.values()}) == len(msgs), f"duplicates in {box}"
    for box in local:
        assert box in server, f"folder {box} exists only here"
    return sum(len(m) for m in server.values())


def assert_same_but_line_ends(sb: object, user: str, home: Path) -> int:
    """`assert_same` with the files here taken as the server gives them (bare LFs as
    CRLF: files written here by another program, or uploaded so); returns how many."""
    server, local = server_state(sb, user), local_state(home, user)
    for box, msgs in server.items():
        mine = local.get(box, {})
        assert set(mine) == set(msgs), (box, sorted(mine), sorted(msgs))
        for uid, (data, flags) in msgs.items():
            here, here_flags = mine[uid]
            assert here.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") == data, (box, uid)
            assert here_flags == flags, (box, uid, here_flags, flags)
        assert len({d for d, _ in msgs.values()}) == len(msgs), f"duplicates in {box}"
    for box in local:
        assert box in server, f"folder {box} exists only here"
    return sum(len(m) for m in server.values())


def _peak_rss_kb() -> int:
    """This process's peak RSS (kB): Linux's VmHWM, which starts anew at exec (getrusage's
    ru_maxrss keeps the forking parent's: a test runner's hundreds of MB)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _main() -> int:
    spec = json.loads(sys.argv[1])
    t = Target(**spec["target"])
    report = sync(t, Path(spec["home"]))
    folders = {
        f.name: {"paired_again": f.paired_again, "paired_by_hash": f.paired_by_hash}
        for f in report.folders
    }
    peak_kb = _peak_rss_kb()
    print(
        json.dumps(
            {
                "ok": report.ok,
                "totals": totals(report),
                "error": report.error,
                "folders": folders,
                "peak_rss_kb": peak_kb,
            }
        )
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(_main())
