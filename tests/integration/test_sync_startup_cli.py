"""`mailbag sync` opens its first connection while it loads: the connection opened early
is the one the sync uses, its errors surface where the connection is needed, a stale
one is replaced, and one nobody takes is closed. Against the real sandbox Dovecot."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailbag.cli.main import main
from mailbag.config import save_account
from mailbag.errors import NetworkError
from mailbag.paths import Paths
from mailbag.protocols import transport
from mailbag.protocols.imap.client import ImapClient
from mailbag.protocols.transport import Endpoint, Security, discard_early, open_early
from mailbag.sandbox import Sandbox
from mailbag.sync.imap import sync_lock

USER = "early"
RESYNC = "resync"  # the re-sync test's own user: its changes do not disturb the others
LEAVE = "leave"  # the left-running removals test's own user
AHEAD = "ahead"  # the server-only changes test's own user


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    users = {
        USER: "early-secret",
        RESYNC: "resync-secret",
        LEAVE: "leave-secret",
        AHEAD: "ahead-secret",
    }
    with Sandbox(users=users, services={"imap", "smtp"}) as box:
        box.fill(USER, 3, "INBOX")
        yield box


@pytest.fixture
def endpoint(sb: Sandbox) -> Endpoint:
    return Endpoint(sb.host, sb.ports.imaps, Security.SSL, sb.ca_file)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """Every connection transport opens, in order (early ones included)."""
    seen: list[socket.socket] = []
    real = transport._open_now

    def counting(endpoint: Endpoint) -> socket.socket:
        sock = real(endpoint)
        seen.append(sock)
        return sock

    monkeypatch.setattr(transport, "_open_now", counting)
    yield seen
    discard_early()
    assert not transport._early


def _wait_opened(seen: list[socket.socket], n: int = 1) -> None:
    deadline = time.monotonic() + 10
    while len(seen) < n:
        assert time.monotonic() < deadline, "the early connection never opened"
        time.sleep(0.01)


def test_the_early_connection_is_the_one_the_client_uses(
    endpoint: Endpoint, opened: list[socket.socket]
) -> None:
    open_early(endpoint)
    open_early(endpoint)  # asked twice: still one connection
    _wait_opened(opened)
    client = ImapClient(endpoint)
    greeting = client.connect()
    try:
        assert greeting.kind == "OK"
        assert len(opened) == 1
        assert client.capabilities  # a working IMAP session on it
    finally:
        client.logout()
    assert not transport._early  # taken once; the next connection is a new one
    again = ImapClient(endpoint)
    again.connect()
    again.close()
    assert len(opened) == 2


def test_an_early_connection_error_is_raised_where_the_connection_is_needed(
    sb: Sandbox, opened: list[socket.socket]
) -> None:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Endpoint(sb.host, port, Security.SSL, sb.ca_file, timeout=5)
    open_early(dead)
    with pytest.raises(NetworkError) as err:
        ImapClient(dead).connect()
    assert err.value.fields["cause"] == "refused"
    assert err.value.fields["port"] == port


def test_an_early_certificate_error_keeps_its_explanation(
    sb: Sandbox, opened: list[socket.socket]
) -> None:
    # the certificate is for "localhost": 127.0.0.1 is a mismatch, found in the thread
    wrong = Endpoint("127.0.0.1", sb.ports.imaps, Security.SSL, sb.ca_file)
    open_early(wrong)
    with pytest.raises(NetworkError) as err:
        ImapClient(wrong).connect()
    assert err.value.fields["cause"] == "hostname-mismatch"


def test_a_stale_early_connection_is_replaced(
    endpoint: Endpoint, opened: list[socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "EARLY_MAX_AGE", 0.0)
    open_early(endpoint)
    _wait_opened(opened)
    client = ImapClient(endpoint)
    client.connect()
    try:
        assert len(opened) == 2
        assert opened[0].fileno() == -1  # the old one was closed, not leaked
        assert client.capabilities
    finally:
        client.logout()


def test_an_early_connection_nobody_takes_is_closed(
    endpoint: Endpoint, opened: list[socket.socket]
) -> None:
    open_early(endpoint)
    _wait_opened(opened)
    discard_early()
    assert opened[0].fileno() == -1
    # one still connecting when discarded closes itself once open
    open_early(endpoint)
    discard_early()
    _wait_opened(opened, 2)
    deadline = time.monotonic() + 10
    while opened[1].fileno() != -1:
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture
def cli_home(sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    monkeypatch.setenv("MAILBAG_HOME", str(tmp_path / "home"))
    paths = Paths.from_env()
    save_account(paths, sb.account(USER, name="early", password_command=True))
    yield paths


def test_cli_sync_uses_the_early_connection(
    cli_home: Paths,
    opened: list[socket.socket],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trace = tmp_path / "trace.txt"
    assert main(["sync", "--trace", str(trace)]) == 0, capsys.readouterr().err
    assert len(opened) == 1  # the early one, used by the sync
    assert opened[0].fileno() == -1  # logged out and closed
    sent = [x.split(" C: ", 1)[1] for x in trace.read_text().splitlines() if " C: " in x]
    assert sum(1 for x in sent if " LOGIN " in x or " AUTHENTICATE " in x) == 1
    assert not transport._early


def test_cli_sync_that_cannot_start_closes_the_early_connection(
    cli_home: Paths, opened: list[socket.socket], capsys: pytest.CaptureFixture[str]
) -> None:
    with sync_lock(cli_home, "early"):  # another sync of the account is running
        assert main(["sync"]) == 1
    assert "another `mailbag sync`" in capsys.readouterr().err
    _wait_opened(opened)
    deadline = time.monotonic() + 10
    while opened[0].fileno() != -1:  # closed (by the discard, or when it finished opening)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not transport._early


def _command_account(sb: Sandbox, paths: Paths, script: Path, body: str) -> None:
    """The test account, its password from the shell script `script` running `body`."""
    from mailbag.config.model import SecretRef, SecretSource
    from mailbag.record import replace

    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o700)
    account = sb.account(USER, name="early", password_command=True)
    ref = SecretRef(SecretSource.COMMAND, str(script))
    account = replace(account, incoming=replace(account.incoming, secret=ref), smtp=account.smtp)
    save_account(paths, account)


def test_cli_sync_runs_the_password_command_once_while_the_engine_loads(
    cli_home: Paths,
    sb: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import threading

    from mailbag.config import secrets

    runs = tmp_path / "runs"
    body = f"echo run >> '{runs}'\necho '{sb.password(USER)}'\n"
    _command_account(sb, cli_home, tmp_path / "pw.sh", body)
    threads: list[str] = []
    real = secrets.get_secret

    def get_secret(account: object, which: secrets.Which) -> str:
        threads.append(threading.current_thread().name)
        return real(account, which)  # type: ignore[arg-type]

    monkeypatch.setattr(secrets, "get_secret", get_secret)
    assert main(["sync", "-q"]) == 0, capsys.readouterr().err
    assert runs.read_text().splitlines() == ["run"]  # once, and its password logged in
    assert threads == ["mailbag-secret"]  # in the background, while the engine loaded


def test_cli_sync_reports_a_failing_password_command_run_while_the_engine_loads(
    cli_home: Paths, sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "pw.sh"
    _command_account(sb, cli_home, script, "echo 'pass: no such entry' >&2\nexit 3\n")
    assert main(["sync"]) == 2  # a configuration error, raised in the caller's thread
    err = capsys.readouterr().err
    assert f"password command {str(script)!r} failed with exit status 3" in err
    assert "no such entry" in err


def test_cli_sync_logs_in_on_the_early_connection_while_the_engine_loads(
    cli_home: Paths,
    sb: Sandbox,
    opened: list[socket.socket],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the password command's answer is sent on the early connection by a thread of its
    # own (`sync.early`): the server checks it while the engine loads; the pool takes
    # that logged-in connection, logs in nowhere else, and closes it at the end
    import threading

    from mailbag.auth import login
    from mailbag.sync import early

    threads: list[str] = []
    real = login.login_imap

    def login_imap(*args: object, **kw: object) -> str:
        threads.append(threading.current_thread().name)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(login, "login_imap", login_imap)
    trace = tmp_path / "trace.txt"
    assert main(["sync", "--trace", str(trace)]) == 0, capsys.readouterr().err
    assert threads == ["mailbag-login"]
    assert len(opened) == 1 and opened[0].fileno() == -1  # the early one, used, closed
    sent = [x.split(" C: ", 1)[1] for x in trace.read_text().splitlines() if " C: " in x]
    assert sum(1 for x in sent if " LOGIN " in x or " AUTHENTICATE " in x) == 1
    assert sb.password(USER) not in trace.read_text()  # (redacted)
    assert not early._early


def test_cli_sync_loads_what_the_early_login_needs_before_the_engine(
    cli_home: Paths, sb: Sandbox, tmp_path: Path
) -> None:
    # the main thread loads the login's modules first (the login thread waits for them
    # instead of loading them at the same time), so the login is done while the rest of
    # the engine loads: when the engine starts loading, the IMAP client is complete,
    # even though the login thread is still waiting for a slow password command
    import os
    import sys

    _command_account(sb, cli_home, tmp_path / "pw.sh", f"sleep 0.3\necho '{sb.password(USER)}'\n")

    code = """\
import sys, threading
seen = {}
class Watch:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "mailbag.sync.imap" and threading.current_thread().name == "MainThread":
            client = sys.modules.get("mailbag.protocols.imap.client")
            seen["client"] = getattr(client, "ImapClient", None) is not None
            seen["login"] = "mailbag.auth.login" in sys.modules
        return None
sys.meta_path.insert(0, Watch)
from mailbag.cli.main import main
assert main(["sync", "-q"]) == 0
print(seen)
"""
    env = {"MAILBAG_HOME": os.environ["MAILBAG_HOME"], "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[0] == "{'client': True, 'login': True}"


def _errors_both_ways(
    paths: Paths, account: object, secret: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str], list[str]]:
    """`mailbag sync` of the account (logging in early): its exit code and what it said;
    and what it says of the error the sync engine gives when it connects and logs in
    itself (no early login)."""
    from mailbag.config.model import Account
    from mailbag.sync.imap import sync_account

    assert isinstance(account, Account)
    save_account(paths, account)
    code = main(["sync"])
    lines = capsys.readouterr().err.splitlines()
    report = sync_account(account, secret, paths)
    assert report.error is not None and report.hint is not None
    said = [f"mailbag: warning: early: {report.error}", f"mailbag: warning:   hint: {report.hint}"]
    return code, lines, said


def test_an_early_login_that_fails_reports_what_a_login_then_would(
    cli_home: Paths, sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a wrong password, and a server whose certificate is not trusted: the same message,
    # hint and exit code as when the sync connects and logs in itself
    from mailbag.config.model import SecretRef, SecretSource
    from mailbag.record import replace
    from mailbag.sandbox.certs import make_certs
    from mailbag.sync import early

    account = sb.account(USER, name="early", password_command=True)
    wrong = SecretRef(SecretSource.COMMAND, "echo not-the-password")
    refused = replace(account, incoming=replace(account.incoming, secret=wrong))
    code, lines, said = _errors_both_ways(cli_home, refused, "not-the-password", capsys)
    assert code == 1
    assert lines[:2] == said and "refused the login" in said[0]
    other = make_certs(tmp_path / "other-ca")  # (a CA that did not sign the server's)
    untrusted = replace(account, ca_file=other.ca_file)
    code, lines, said = _errors_both_ways(cli_home, untrusted, sb.password(USER), capsys)
    assert code == 1
    assert lines[:2] == said and "certificate" in said[0]
    assert not early._early


#: what a sync where nothing changed must not load (each costs start-up time)
NOT_ON_THE_NO_OP_PATH = (
    "argparse",  # a plain `mailbag sync` is parsed without it (cmd_sync.parse_plain)
    "typing",  # annotations only (TYPE_CHECKING); generics from mailbag.record
    "gettext",
    "mailbag.cli.cmd_send",  # the outbox is empty
    "email",
    "json",
    "shutil",  # argparse asks it the terminal width; we measure it ourselves
    "encodings.idna",  # an ASCII host name needs no IDNA codec
    "queue",
    "random",
    "secrets",
    "tomlkit",
    "tomllib",  # the parsed config is cached (config.file)
    "keyring",
    "httpx",
    "mailbag.store.envelope",
    "mailbag.store.outbox",
    "mailbag.sync.plan",
    "mailbag.sync.apply",
    "mailbag.sync.sending",
    "mailbag.message",
    "mailbag.auth.tokens",
    # records are plain classes (mailbag.record): building dataclasses at import took
    # 20-25 ms, and `dataclasses` loads `inspect` (with ast, dis, tokenize)
    "dataclasses",
    "inspect",
    "ast",  # the parsed config is cached with marshal, not as Python literals
    "tokenize",
    # the password command runs without `subprocess`, and takes its signal numbers from
    # `_signal`: `signal` builds enum classes of them as it loads
    "signal",
    # indexing is deferred and the full-text schema in place (`fulltext_in_place`)
    "mailbag.store.fulltext",
    # a password login chooses no SASL mechanism (`sasl_mechanisms`: an enum to build)
    "mailbag.protocols.sasl_mechanisms",
)


def test_a_sync_with_nothing_to_do_loads_only_what_it_needs(
    cli_home: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import subprocess
    import sys

    assert main(["sync", "-q"]) == 0
    time.sleep(0.25)  # directory times old enough to be trusted: the fast path arms
    assert main(["sync", "-q"]) == 0
    # the engine's own no-op path, not the run that ends before it loads (`sync.quick`,
    # whose record the last run left: the index's WAL, kept between runs, is old enough
    # by now to be trusted)
    for record in cli_home.state_dir.glob("sync-*.quick"):
        record.unlink()
    code = (
        "import sys\n"
        "from mailbag.cli.main import main\n"
        "assert main(['sync', '-q']) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {"MAILBAG_HOME": os.environ["MAILBAG_HOME"], "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert res.returncode == 0, res.stderr
    loaded = set(res.stdout.split())
    assert "mailbag.sync.imap" in loaded  # it did sync
    heavy = sorted(
        m for m in loaded if any(m == h or m.startswith(h + ".") for h in NOT_ON_THE_NO_OP_PATH)
    )
    assert heavy == []


def _loaded_by_sync(home: str) -> set[str]:
    """The modules a `mailbag sync -q` run in a fresh interpreter loaded."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mailbag.cli.main import main\n"
        "assert main(['sync', '-q']) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {"MAILBAG_HOME": home, "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert res.returncode == 0, res.stderr
    return set(res.stdout.split())


#: what a re-sync that downloads, changes flags and deletes must not load either (ctypes
#: it needs, for syncfs, but not `ctypes.util` to find libc: that loads subprocess)
NOT_ON_THE_RESYNC_PATH = (
    "dataclasses",
    "inspect",
    "ast",
    "tokenize",
    "dis",
    "typing",
    "argparse",
    "ctypes.util",
    "subprocess",
    "importlib",  # (0.5M instructions, for an import_module `import` statements do)
)


def _synced_twice(
    sb: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    user: str,
    inbox: int,
    archive: int,
) -> tuple[Path, Paths]:
    """`user`'s account with mail in INBOX and Archive, synced, and synced again once its
    directory times are old enough to be trusted (the delta path arms)."""
    home = tmp_path / "home"
    monkeypatch.setenv("MAILBAG_HOME", str(home))
    paths = Paths.from_env()
    save_account(paths, sb.account(user, name=user, password_command=True))
    sb.fill(user, inbox, "INBOX")
    sb.fill(user, archive, "Archive", seed=2)
    assert main(["sync", "-q"]) == 0
    time.sleep(0.25)
    assert main(["sync", "-q"]) == 0
    return home, paths


def test_a_resync_with_changes_loads_no_dataclass_machinery(
    sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    home, paths = _synced_twice(sb, tmp_path, monkeypatch, RESYNC, 6, 4)
    with sb.control(RESYNC) as control:
        uids = control.uids("INBOX")
        control.store("INBOX", uids[:1], "+FLAGS", ["\\Flagged"])
        control.expunge("INBOX", uids[1:2])
        control.expunge("Archive", control.uids("Archive")[:1])
    sb.deliver(RESYNC, b"Subject: new\r\nMessage-ID: <resync-new@example.org>\r\n\r\nhi\r\n")
    loaded = _loaded_by_sync(str(home))
    assert "mailbag.sync.plan" in loaded and "mailbag.sync.apply" in loaded  # it did work
    heavy = sorted(
        m for m in loaded if any(m == h or m.startswith(h + ".") for h in NOT_ON_THE_RESYNC_PATH)
    )
    assert heavy == []
    # and it did it right: the new message is here, the expunged ones gone, the flag set
    with sqlite3.connect(paths.index_file) as conn:
        rows = conn.execute(
            "SELECT f.name, m.uid, m.flags, m.message_id FROM messages m "
            "JOIN folders f ON f.id = m.folder_id"
        ).fetchall()
    inbox = {uid: (flags, mid) for name, uid, flags, mid in rows if name == "INBOX"}
    with sb.control(RESYNC) as control:
        assert sorted(inbox) == control.uids("INBOX")
        assert sorted(uid for name, uid, *_ in rows if name == "Archive") == control.uids("Archive")
    assert uids[1] not in inbox and "\\Flagged" in inbox[uids[0]][0]
    assert any(mid == "<resync-new@example.org>" for _, mid in inbox.values())


def test_a_resync_of_changes_made_only_on_the_server_loads_no_ctypes(
    sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # flags changed and mail expunged in two folders: both are selected together and
    # their QRESYNC deltas applied; in a mailbox this small the folders are checked by
    # listing them, without loading ctypes for a watch (`_LIST_MAX`)
    import sqlite3

    home, paths = _synced_twice(sb, tmp_path, monkeypatch, AHEAD, 8, 5)
    with sb.control(AHEAD) as control:
        for box in ("INBOX", "Archive"):
            uids = control.uids(box)
            control.store(box, uids[:1], "+FLAGS", ["\\Flagged"])
            control.expunge(box, uids[1:2])
    loaded = _loaded_by_sync(str(home))
    assert "mailbag.sync.apply" in loaded  # it did work
    assert "ctypes" not in loaded
    with sqlite3.connect(paths.index_file) as conn:
        rows = conn.execute(
            "SELECT f.name, m.uid, m.flags, f.sync_state FROM messages m "
            "JOIN folders f ON f.id = m.folder_id"
        ).fetchall()
    with sb.control(AHEAD) as control:
        for box in ("INBOX", "Archive"):
            mine = {uid: flags for name, uid, flags, _ in rows if name == box}
            uids = control.uids(box)
            assert sorted(mine) == uids, box
            assert "\\Flagged" in mine[uids[0]], box
    assert all(state for *_, state in rows)  # both re-armed: checked all the same


#: `python -c` running the `mailbag` program as installed (`entry`), telling on stderr
#: whether it ended with the quick exit and whether collection ran while it synced
PROGRAM = """\
import gc, os, sys
real_exit = os._exit
def told(code):
    sys.stderr.write(f"quick exit {code}\\n")
    sys.stderr.flush()
    real_exit(code)
os._exit = told
import mailbag.sync.imap as engine
real_sync = engine.sync_account
def sync_account(*args, **kwargs):
    sys.stderr.write(f"collecting {gc.isenabled()} frozen {gc.get_freeze_count() > 0}\\n")
    return real_sync(*args, **kwargs)
engine.sync_account = sync_account
from mailbag.cli.main import entry
sys.argv = ["mailbag", *sys.argv[1:]]
raise SystemExit(entry())
"""


def _program(*args: str) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    env = {"MAILBAG_HOME": os.environ["MAILBAG_HOME"], "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # the mailbag this test imported
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_a_successful_sync_ends_with_the_quick_exit_output_and_index_complete(
    cli_home: Paths, sb: Sandbox
) -> None:
    import json
    import sqlite3

    for _ in range(2):  # the first sync downloads, the second has nothing to do
        res = _program("sync", "--json")
        assert res.returncode == 0, res.stderr
        assert "quick exit 0" in res.stderr
        assert "collecting True frozen True" in res.stderr  # resumed before any mail
        report = json.loads(res.stdout)  # all of it reached the pipe
        (account,) = report["accounts"]
        assert account["ok"] and "INBOX" in [f["name"] for f in account["folders"]]
    # the index was closed properly: whole, readable by the next command (its WAL is
    # left for the next sync to checkpoint: `Store.close`)
    index = cli_home.index_file
    with sqlite3.connect(index) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (count,) = conn.execute("SELECT count(*) FROM messages").fetchone()
    with sb.control(USER) as control:
        assert count == len(control.uids("INBOX"))
    res = _program("folders", "--json")
    assert res.returncode == 0 and "quick exit" not in res.stderr  # only sync opts in
    assert any(f["name"] == "INBOX" for f in json.loads(res.stdout))


def test_a_failed_sync_exits_with_its_code_never_the_quick_exit(cli_home: Paths) -> None:
    import json

    for _ in range(3):
        with sync_lock(cli_home, "early"):  # another sync of the account is running
            res = _program("sync", "--json")
        # the early connection may still be logging in: then the process ends right after
        # Python's part of the exit (`process.exit_past_threads`), with the same code
        assert res.returncode == 1, res.stderr
        assert "quick exit 0" not in res.stderr
        assert "another `mailbag sync`" in res.stderr
        (account,) = json.loads(res.stdout)["accounts"]  # the whole report reached the pipe
        assert not account["ok"]


#: `python -c` running the `mailbag` program with its `rm` replaced (argv[1])
SLOW_RM_PROGRAM = """\
import sys
import mailbag.store.maildir as maildir
maildir._RM = sys.argv.pop(1)
from mailbag.cli.main import entry
sys.argv = ["mailbag", *sys.argv[1:]]
raise SystemExit(entry())
"""


def test_the_program_leaves_its_rm_running_and_later_syncs_converge(
    sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `mailbag` program does not wait for the `rm` of the files its sync took out of
    the folders (they are out already, durably; only their blocks are left to free). A
    sync while that `rm` is still at work, and one after it was killed before removing
    anything, converge; what it left in tmp/ goes with the folder's next sync."""
    import os
    import signal
    import sqlite3
    import sys

    home = tmp_path / "home"
    monkeypatch.setenv("MAILBAG_HOME", str(home))
    paths = Paths.from_env()
    save_account(paths, sb.account(LEAVE, name="leave", password_command=True))
    sb.fill(LEAVE, 10, "INBOX")
    assert main(["sync", "-q"]) == 0
    time.sleep(0.25)  # directory times old enough to be trusted: the delta path arms
    gate, pids, slow = tmp_path / "gate", tmp_path / "rm-pids", tmp_path / "slow-rm"
    # an `rm` that waits for the gate (started with exec: killing it kills the removal)
    slow.write_text(
        f"#!/bin/sh\necho $$ >> '{pids}'\n"
        f"while [ ! -e '{gate}' ]; do sleep 0.01; done\nexec /bin/rm \"$@\"\n"
    )
    slow.chmod(0o700)
    env = {"MAILBAG_HOME": str(home), "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    def program(*args: str) -> None:
        res = subprocess.run(
            [sys.executable, "-c", SLOW_RM_PROGRAM, str(slow), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr

    def rows() -> list[int]:
        with sqlite3.connect(paths.index_file) as conn:
            return sorted(r for (r,) in conn.execute("SELECT uid FROM messages"))

    inbox = next(p for p in (home / "data" / "mail").glob("*/INBOX"))

    def files(sub: str) -> int:
        return len(os.listdir(inbox / sub))

    def wait_for(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 20
        while not check():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    with sb.control(LEAVE) as control:
        uids = control.uids("INBOX")
        control.expunge("INBOX", uids[:3])
    program("sync", "-q")
    # it ended while its `rm` waits: the three files are out of the folder, in tmp/
    assert pids.read_text().split() and files("tmp") == 3
    assert files("cur") + files("new") == 7 and rows() == uids[3:]
    # a sync now (the `rm` still waiting) converges: nothing to do (a run that reads the
    # folder again may remove the files itself, as it does a crash's leftovers)
    assert main(["sync", "-q"]) == 0
    assert rows() == uids[3:] and files("tmp") in (0, 3) and files("cur") + files("new") == 7
    gate.touch()
    wait_for(lambda: files("tmp") == 0)  # the `rm` went on by itself
    gate.unlink()

    # an `rm` that dies before removing anything (a crash, a power loss): the files stay
    # in tmp/, out of every reader's sight, until the folder's next sync
    with sb.control(LEAVE) as control:
        control.expunge("INBOX", uids[3:5])
    program("sync", "-q")
    assert files("tmp") == 2 and rows() == uids[5:]
    os.kill(int(pids.read_text().split()[-1]), signal.SIGKILL)
    with sb.control(LEAVE) as control:
        control.store("INBOX", uids[5:6], "+FLAGS", ["\\Flagged"])
    gate.touch()
    assert main(["sync", "-q"]) == 0
    assert files("tmp") == 0 and rows() == uids[5:]
    with sb.control(LEAVE) as control:
        assert control.uids("INBOX") == uids[5:]
    assert main(["sync", "-q"]) == 0  # and one more run changes nothing
    assert files("tmp") == 0 and rows() == uids[5:] and files("cur") + files("new") == 5
