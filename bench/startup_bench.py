#!/usr/bin/env python3
"""Start-up cost of mailbag commands, and what the keyring adds to it.

    python bench/startup_bench.py                      # this checkout, 21 rounds
    python bench/startup_bench.py --src /tmp/old --src .   # two checkouts side by side

Against the sandbox Dovecot (IMAPS, a small INBOX), each case is one process, timed
from start to exit (wall, and CPU user+sys of the child):

- `version`: `mailbag --version` (interpreter + CLI start-up);
- `sync/command`: a `mailbag sync` where nothing changed, password from password_command;
- `sync/plugin`: the same with the password in a keyring backend found by keyring's
  search (a plugin installed like one from PyPI: mailbag.sandbox.keyring_plugin);
- `sync/plugin-search`: the same, with mailbag's remembered backend removed before
  each run (every run pays keyring's full search: the cost before it was remembered);
- `sync/secret-service`: the password in a real Secret Service (gnome-keyring-daemon
  on a private D-Bus session bus), when gnome-keyring-daemon and dbus-daemon are
  installed (`--no-secret-service` leaves it out);
- `sync/alt-file`: the password in keyrings.alt's file backend, found by keyring's
  search with no D-Bus session: what a Debian user without a desktop has who follows
  mailbag's hint (`pip install keyrings.alt`, or Debian's python3-keyrings.alt), when
  keyrings.alt is installed in this interpreter or in `--alt-path DIR` (`pip install
  --target DIR keyrings.alt`: kept out of the dev venv, where it would join every
  test's keyring search; `scripts/setup --bench` puts it in .venv/bench-keyrings-alt,
  the default); `--no-alt` leaves it out;
- `mbsync` (PassCmd): mbsync's no-op sync of the same INBOX, its password from a
  command, the reference (once per round, not per checkout; `--no-mbsync`).

Each `--src` checkout (its `src/` put first on PYTHONPATH; default: the installed
mailbag) gets its own homes; in each round every case runs once per checkout, the
order of the checkouts flipping each round, so a noisy shared machine slows them
alike. Prints medians over the rounds and the machine load. Not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sync_bench  # (beside this script)

from mailbag.config import save_account
from mailbag.config.keyring_backend import CACHE_FILE
from mailbag.config.schema import keyring_key
from mailbag.config.secrets import SERVICE
from mailbag.paths import Paths
from mailbag.sandbox import Sandbox, keyring_plugin

USER = "startup"
PASSWORD = "startup-secret"
KEYRING_UNLOCK = "bench-keyring-password"


@dataclass
class Case:
    name: str
    argv: list[str]
    env: dict[str, str]
    before: list[Path] = field(default_factory=list)  # files removed before each run
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def run_once(case: Case) -> None:
    for f in case.before:
        f.unlink(missing_ok=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(case.argv, env=case.env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{case.name} failed ({res.returncode}): {res.stderr.strip()}")
    case.wall.append(wall)
    case.cpu.append(after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime)


@contextmanager
def secret_service(root: Path) -> Iterator[dict[str, str] | None]:
    """A private D-Bus session bus with an unlocked gnome-keyring Secret Service."""
    dbus, gnome = shutil.which("dbus-daemon"), shutil.which("gnome-keyring-daemon")
    if not dbus or not gnome:
        yield None
        return
    home = root / "ss-home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    bus = subprocess.Popen(
        [dbus, "--session", "--nofork", "--print-address=1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert bus.stdout is not None
    env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
    daemon = subprocess.Popen(
        [gnome, "--foreground", "--unlock", "--components=secrets"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert daemon.stdin is not None
    daemon.stdin.write(KEYRING_UNLOCK)
    daemon.stdin.close()
    try:
        yield env
    finally:
        for proc in (daemon, bus):
            proc.terminate()
            proc.wait(10)


def store_in_secret_service(env: dict[str, str], key: str) -> None:
    code = f"import keyring; keyring.set_password({SERVICE!r}, {key!r}, {PASSWORD!r})"
    for _ in range(50):  # the daemon takes a moment to claim its bus name
        res = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        if res.returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"cannot store into the Secret Service: {res.stderr.strip()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--messages", type=int, default=50, help="messages in the INBOX")
    ap.add_argument("--src", action="append", default=[], help="a mailbag checkout to time")
    ap.add_argument("--no-secret-service", action="store_true")
    ap.add_argument("--no-alt", action="store_true", help="leave out sync/alt-file")
    ap.add_argument(
        "--alt-path",
        type=Path,
        metavar="DIR",
        help="where keyrings.alt is installed (pip install --target DIR keyrings.alt)",
    )
    ap.add_argument("--no-mbsync", action="store_true", help="leave out the mbsync reference")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="CASE",
        help="time only this mailbag case (repeatable; e.g. sync/command, sync/alt-file)",
    )
    args = ap.parse_args()
    sources = [Path(s).resolve() for s in args.src] or [None]
    mailbag = str(Path(sys.executable).parent / "mailbag")
    root = Path(tempfile.mkdtemp(prefix="mailbag-startup-"))
    plugin_dir = keyring_plugin.install(root / "plugin")
    plugin_file = root / "plugin-keyring.json"
    try:
        with Sandbox(users={USER: PASSWORD}, services={"imap", "lmtp", "smtp"}) as sb:
            sb.fill(USER, args.messages, "INBOX")
            ss_cm = secret_service(root) if not args.no_secret_service else None
            ss_env = ss_cm.__enter__() if ss_cm else None
            try:
                cases = build_cases(
                    sb,
                    root,
                    sources,
                    mailbag,
                    plugin_dir,
                    plugin_file,
                    ss_env,
                    None if args.no_alt else alt_path(args.alt_path),
                )
                if args.only:
                    cases = [[c for c in group if c.name in args.only] for group in cases]
                mbsync = None if args.no_mbsync else shutil.which("mbsync")
                if mbsync:
                    conf = mbsync_reference(sb, root)
                    cases.append(
                        [Case("mbsync", [mbsync, "-q", "-c", str(conf), "-a"], {"HOME": str(root)})]
                    )
                    run_once(cases[-1][0])  # the initial sync
                    cases[-1][0].wall.clear()
                    cases[-1][0].cpu.clear()
                print(f"load before: {os.getloadavg()}", flush=True)
                for r in range(args.rounds):
                    order = list(cases) if r % 2 == 0 else list(reversed(cases))
                    for group in order:
                        for case in group:
                            run_once(case)
                print(f"load after:  {os.getloadavg()}")
                report(cases, sources)
            finally:
                if ss_cm:
                    ss_cm.__exit__(None, None, None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def build_cases(
    sb: Sandbox,
    root: Path,
    sources: list[Path | None],
    mailbag: str,
    plugin_dir: Path,
    plugin_file: Path,
    ss_env: dict[str, str] | None,
    alt: Path | None,
) -> list[list[Case]]:
    """One list of cases per checkout; each case's home is synced once first."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root / "home")}
    if ss_env is not None:
        store_in_secret_service(ss_env, keyring_key("kr", "incoming"))
    keyring_plugin.store(plugin_file, SERVICE, keyring_key("kr", "incoming"), PASSWORD)
    groups = []
    for src in sources:
        env = dict(base)
        if src is not None:
            env["PYTHONPATH"] = str(src / "src")

        def home(label: str, extra: dict[str, str], *, keyring: bool) -> dict[str, str]:
            return make_home(sb, mailbag, root / f"{len(groups)}-{label}", extra, keyring)

        plugin_env = keyring_plugin.environment(
            plugin_dir, base=env, MAILBAG_TEST_KEYRING=str(plugin_file)
        )
        cases = [
            Case("version", [mailbag, "--version"], dict(env)),
            Case("sync/command", [mailbag, "sync", "-q"], home("cmd", env, keyring=False)),
            Case("sync/plugin", [mailbag, "sync", "-q"], home("plugin", plugin_env, keyring=True)),
        ]
        search_env = home("search", plugin_env, keyring=True)
        cases.append(
            Case(
                "sync/plugin-search",
                [mailbag, "sync", "-q"],
                search_env,
                before=[Path(search_env["MAILBAG_HOME"]) / "state" / CACHE_FILE],
            )
        )
        if ss_env is not None:
            ss_case_env = {**ss_env, **({"PYTHONPATH": env["PYTHONPATH"]} if src else {})}
            cases.append(
                Case(
                    "sync/secret-service",
                    [mailbag, "sync", "-q"],
                    home("ss", ss_case_env, keyring=True),
                )
            )
        if alt is not None:
            alt_env = alt_environment(env, root / f"{len(groups)}-alt-home", alt)
            cases.append(
                Case("sync/alt-file", [mailbag, "sync", "-q"], home("alt", alt_env, keyring=True))
            )
        groups.append(cases)
    return groups


def alt_path(given: Path | None) -> Path | None:
    """The directory to put on PYTHONPATH for keyrings.alt ("" : it is installed here);
    None when it is nowhere."""
    if given is not None:
        return given.resolve() if (given / "keyrings" / "alt").is_dir() else None
    try:
        if importlib.util.find_spec("keyrings.alt") is not None:
            return Path("")
    except ModuleNotFoundError:  # (no keyrings package at all)
        pass
    beside = Path(sys.prefix) / "bench-keyrings-alt"  # (scripts/setup --bench)
    return beside if (beside / "keyrings" / "alt").is_dir() else None


def alt_environment(env: dict[str, str], home: Path, alt: Path) -> dict[str, str]:
    """`env` with its own HOME (keyrings.alt's file lives in its XDG data dir), no D-Bus
    session (as without a desktop), keyrings.alt on PYTHONPATH (when `alt` is a
    directory), and the password stored there by keyring's choice."""
    home.mkdir()
    alt_env = {
        **env,
        "HOME": str(home),
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/mailbag-bench-bus",
    }
    if str(alt) not in ("", "."):
        alt_env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(alt)) if p)
    code = (
        "import keyring; b = keyring.get_keyring(); "
        "assert type(b).__module__ == 'keyrings.alt.file', b; "
        f"keyring.set_password({SERVICE!r}, {keyring_key('kr', 'incoming')!r}, {PASSWORD!r})"
    )
    subprocess.run([sys.executable, "-c", code], env=alt_env, check=True)
    return alt_env


def mbsync_reference(sb: Sandbox, root: Path) -> Path:
    """mbsync's configuration for the sandbox INBOX, its password from a command."""
    pw = root / "mbsync-pw.sh"
    pw.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
    pw.chmod(0o700)
    return sync_bench.mbsync_config(sb, root, USER, password_command=pw)


def make_home(
    sb: Sandbox, mailbag: str, home: Path, env: dict[str, str], keyring: bool
) -> dict[str, str]:
    """A mailbag home with the sandbox account (password in the keyring or from a
    command), synced once; returns the environment that uses it."""
    case_env = {**env, "MAILBAG_HOME": str(home)}
    account = sb.account(USER, name="kr", password_command=not keyring)
    save_account(Paths.from_env(case_env), account)
    subprocess.run([mailbag, "sync", "-q"], env=case_env, check=True)  # the initial sync
    return case_env


def report(groups: list[list[Case]], sources: list[Path | None]) -> None:
    reference = [g[0] for g in groups if g and g[0].name == "mbsync"]
    groups = [g for g in groups if g and g[0].name != "mbsync"]
    rounds = len(groups[0][0].wall)
    print(f"\nmedians of {rounds} rounds, ms (wall / CPU)")
    names = [c.name for c in groups[0]]
    header = "case".ljust(22) + "".join(
        (str(s) if s else "installed")[-28:].rjust(30) for s in sources
    )
    print(header)
    for k, name in enumerate(names):
        row = name.ljust(22)
        for cases in groups:
            wall, cpu = (1000 * statistics.median(v) for v in (cases[k].wall, cases[k].cpu))
            row += f"{wall:14.1f} /{cpu:7.1f} ms"
        print(row)
    for case in reference:
        wall, cpu = (1000 * statistics.median(v) for v in (case.wall, case.cpu))
        print("mbsync (PassCmd)".ljust(22) + f"{wall:14.1f} /{cpu:7.1f} ms")


if __name__ == "__main__":
    main()
