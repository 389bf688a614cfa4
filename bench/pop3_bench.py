"""POP3 download benchmark: mailbag vs getmail6 (and fetchmail) on the same sandbox INBOX.

    .venv/bin/python bench/pop3_bench.py [--messages 12000] [--no-fetchmail]

Starts a private Dovecot, fills one INBOX with generated mail (IMAP APPEND), then
downloads the whole INBOX over POP3S (verified TLS, leave on server) with each
tool into an empty local Maildir, one after the other in the same run. Prints
wall time, CPU time (user+system of the tool's process tree) and peak RSS, and
mailbag's speed-up over each. Every tool's result is counted: a tool that did
not store every message fails the run. Not a test: nothing here runs in CI.

getmail6 refuses to deliver as root, so as root the reference tools run as the
sandbox's unprivileged mail user.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mailbag.sandbox import Sandbox
from mailbag.sandbox.dovecot import MAIL_USER_AS_ROOT

USER = "bench"
#: every tool runs pinned to the same single CPU (see bench_getmail for why)
PIN = ["taskset", "-c", "0"]
PASSWORD = "bench-secret"


@dataclass
class Result:
    tool: str
    wall: float
    cpu: float
    max_rss_mb: float
    messages: int


def run_measured(cmd: list[str], **kw: object) -> tuple[float, float, float]:
    """Run `cmd` in a fresh child of a helper so its rusage is its own (RUSAGE_CHILDREN
    of a process that has run nothing else)."""
    helper = [
        sys.executable,
        "-c",
        "import json,os,resource,subprocess,sys,time\n"
        "t=time.perf_counter()\n"
        "p=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE)\n"
        "w=time.perf_counter()-t\n"
        "u=resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "sys.stderr.write(p.stderr.decode()[-3000:])\n"
        "print(json.dumps([p.returncode,w,u.ru_utime+u.ru_stime,u.ru_maxrss/1024]))\n",
        *cmd,
    ]
    proc = subprocess.run(helper, capture_output=True, check=False, **kw)  # type: ignore[call-overload]
    try:
        code, wall, cpu, rss = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        sys.exit(f"{cmd[0]}: could not measure: {proc.stderr.decode()[-2000:]}")
    if code != 0:
        sys.exit(f"{cmd[0]} failed ({code}):\n{proc.stderr.decode()[-3000:]}")
    return float(wall), float(cpu), float(rss)


def count_maildir(path: Path) -> int:
    return sum(len(os.listdir(path / sub)) for sub in ("new", "cur") if (path / sub).is_dir())


def as_mail_user() -> list[str]:
    """A command prefix that drops root for tools that refuse it (getmail6)."""
    if os.geteuid() != 0:
        return []
    entry = pwd.getpwnam(MAIL_USER_AS_ROOT)
    return [
        "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--clear-groups",
        "--",
    ]


def give_to_mail_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(MAIL_USER_AS_ROOT)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def bench_mailbag(sb: Sandbox, work: Path, n: int) -> Result:
    home = work / "mailbag-home"
    home.mkdir()
    spec = {
        "home": str(home),
        "email": sb.address(USER),
        "port": sb.ports.pop3s,
        "ca_file": str(sb.ca_file),
        "password": PASSWORD,
    }
    wall, cpu, rss = run_measured(
        [*PIN, sys.executable, __file__, "--mailbag-child", json.dumps(spec)]
    )
    from mailbag.paths import Paths
    from mailbag.store.index import Store

    paths = Paths(config_dir=home, data_dir=home / "data", state_dir=home / "state")
    with Store.open(paths) as store:
        got = len(store.messages(account="bench"))
    return Result("mailbag", wall, cpu, rss, got)


def mailbag_child(spec_json: str) -> None:
    from mailbag.config.model import Account, Protocol, SecretRef, SecretSource, Server, SmtpServer
    from mailbag.paths import Paths
    from mailbag.protocols.transport import Security
    from mailbag.sync.pop3 import sync_pop3_account

    spec = json.loads(spec_json)
    secret = SecretRef(SecretSource.NONE)
    account = Account(
        name="bench",
        email=spec["email"],
        protocol=Protocol.POP3,
        incoming=Server("localhost", spec["port"], Security.SSL, spec["email"], secret=secret),
        smtp=SmtpServer("localhost", 1, Security.SSL, spec["email"], secret=secret),
        ca_file=Path(spec["ca_file"]),
    )
    home = Path(spec["home"])
    paths = Paths(config_dir=home, data_dir=home / "data", state_dir=home / "state")
    report = sync_pop3_account(account, paths, password=spec["password"])
    print(json.dumps({"new": report.new}), file=sys.stderr)


def bench_getmail(sb: Sandbox, work: Path, n: int) -> Result:
    getmail = shutil.which("getmail")
    if getmail is None:
        sys.exit("getmail6 is not installed: run scripts/setup --bench")
    gdir = work / "getmail"
    maildir = gdir / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (gdir / "getmailrc").write_text(
        f"""[retriever]
type = SimplePOP3SSLRetriever
server = localhost
port = {sb.ports.pop3s}
username = {sb.address(USER)}
password = {PASSWORD}
ca_certs = {sb.ca_file}

[destination]
type = Maildir
path = {maildir}/

[options]
read_all = true
delete = false
verbose = 0
message_log_syslog = false
"""
    )
    give_to_mail_user(gdir)
    # getmail6 forks a child per message and installs its SIGCHLD handler only after
    # fork(): on several CPUs a fast child can exit first and getmail then waits until
    # its timeout and aborts. On one CPU the parent runs on after fork(), so the run
    # completes; mailbag gets the same single CPU (see PIN).
    wall, cpu, rss = run_measured(
        [*PIN, *as_mail_user(), getmail, "--getmaildir", str(gdir), "--rcfile", "getmailrc"]
    )
    return Result("getmail6", wall, cpu, rss, count_maildir(maildir))


def bench_fetchmail(sb: Sandbox, work: Path, n: int) -> Result | None:
    fetchmail = shutil.which("fetchmail")
    if fetchmail is None:
        print("fetchmail not installed; skipped", file=sys.stderr)
        return None
    fdir = work / "fetchmail"
    fdir.mkdir()
    out = fdir / "mail.bsmtp"
    rc = fdir / "fetchmailrc"
    # BSMTP output: fetchmail appends every message to one file (its cheapest local
    # delivery; its MDA mode forks a process per message)
    rc.write_text(
        f'set no syslog\nset logfile "{fdir}/log"\n'
        f"poll localhost service {sb.ports.pop3s} protocol pop3 uidl\n"
        f'  user "{sb.address(USER)}" password "{PASSWORD}"\n'
        f'  ssl sslcertck sslcertfile "{sb.ca_file}" keep fetchall\n'
        f'  bsmtp "{out}"\n'
    )
    rc.chmod(0o600)
    give_to_mail_user(fdir)
    env = {**os.environ, "HOME": str(fdir), "FETCHMAILHOME": str(fdir)}
    wall, cpu, rss = run_measured(
        [*PIN, *as_mail_user(), fetchmail, "-f", str(rc), "--nodetach", "-s"], env=env
    )
    got = out.read_bytes().count(b"\nMAIL FROM:") + out.read_bytes().startswith(b"MAIL FROM:")
    return Result("fetchmail (bsmtp)", wall, cpu, rss, got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=12_000)
    ap.add_argument("--no-fetchmail", action="store_true")
    ap.add_argument("--mailbag-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mailbag_child:
        mailbag_child(args.mailbag_child)
        return
    n = args.messages
    work = Path(tempfile.mkdtemp(prefix="mailbag-pop3-bench-"))
    work.chmod(0o755)
    try:
        with Sandbox(users={USER: PASSWORD}, services={"imap", "pop3", "lmtp"}) as sb:
            t = time.perf_counter()
            sb.fill(USER, n, seed=7)
            size = sum(
                f.stat().st_size
                for sub in ("cur", "new")
                for f in (sb.maildir(USER) / sub).iterdir()
            )
            took = time.perf_counter() - t
            print(
                f"INBOX: {n} messages, {size / 1e6:.1f} MB, filled in {took:.0f}s", file=sys.stderr
            )
            results = [bench_mailbag(sb, work, n), bench_getmail(sb, work, n)]
            if not args.no_fetchmail:
                fm = bench_fetchmail(sb, work, n)
                if fm is not None:
                    results.append(fm)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nPOP3S download of {n} messages (leave on server), same run:")
    print(f"{'tool':<20} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'stored':>8}")
    for r in results:
        print(f"{r.tool:<20} {r.wall:>8.2f} {r.cpu:>8.2f} {r.max_rss_mb:>12.1f} {r.messages:>8}")
    mb = results[0]
    for r in results[1:]:
        print(
            f"mailbag is {r.wall / mb.wall:.1f}x faster than {r.tool} (wall), "
            f"{r.cpu / mb.cpu:.1f}x less CPU"
        )
    bad = [r.tool for r in results if r.messages != n]
    if bad:
        sys.exit(f"incomplete download by: {', '.join(bad)}")


if __name__ == "__main__":
    main()
