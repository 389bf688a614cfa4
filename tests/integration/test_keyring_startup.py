"""The keyring backend keyring's search chose is remembered between runs (state dir,
0600, never a secret) and used only while it still holds; a backend the user chose, or
one set in the process, always wins. Each run is a real `mailbag sync` process against
the sandbox Dovecot, with its password in a keyring plugin installed the way one from
PyPI is (mailbag.sandbox.keyring_plugin), so keyring's own search finds it."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbag.config import save_account
from mailbag.config.keyring_backend import CACHE_FILE, DEFERRED, active_backend
from mailbag.config.schema import keyring_key
from mailbag.config.secrets import SERVICE, keyring_problem
from mailbag.paths import Paths
from mailbag.sandbox import Sandbox, keyring_plugin
from pyrun import python_words

USER = "kring"
PASSWORD = "kring-secret"
NAME = "kr"
KEY = keyring_key(NAME, "incoming")
FILE_BACKEND = f"{keyring_plugin.MODULE}.FileKeyring"
OTHER_BACKEND = f"{keyring_plugin.MODULE}.OtherFileKeyring"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(users={USER: PASSWORD}, services={"imap", "smtp"}) as box:
        box.fill(USER, 2, "INBOX")
        yield box


@dataclass
class Run:
    code: int
    out: str
    err: str
    log: list[str]  # the plugin's events during this run


class Machine:
    """One user's machine: a mailbag home, keyring's config dir, the plugin keyrings."""

    def __init__(self, root: Path, sb: Sandbox) -> None:
        self.root = root
        self.home = root / "mailbag"
        self.xdg_config = root / "xdg-config"
        self.cwd = root / "cwd"  # an empty working directory: `python -m` puts it on sys.path
        self.cwd.mkdir()
        self.plugin = keyring_plugin.install(root / "plugin")
        self.file = root / "file-keyring.json"
        self.other = root / "other-keyring.json"
        self.log_file = root / "keyring.log"
        self.paths = Paths.from_env({"MAILBAG_HOME": str(self.home)})
        save_account(self.paths, sb.account(USER, name=NAME))

    @property
    def cache(self) -> Path:
        return self.paths.state_dir / CACHE_FILE

    def _base(self) -> dict[str, str]:
        """The environment of a mailbag process here: this home, this test keyring."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "XDG_CONFIG_HOME": str(self.xdg_config),
            "MAILBAG_HOME": str(self.home),
            "MAILBAG_TEST_KEYRING": str(self.file),
        }

    def run(self, *argv: str, stdin: str = "", **env: str) -> Run:
        base = {**self._base(), "MAILBAG_TEST_KEYRING_LOG": str(self.log_file)}
        full = keyring_plugin.environment(self.plugin, base=base, **env)
        before = self.log_file.read_text().splitlines() if self.log_file.exists() else []
        res = subprocess.run(
            [sys.executable, "-m", "mailbag", *argv],
            env=full,
            cwd=self.cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        after = self.log_file.read_text().splitlines() if self.log_file.exists() else []
        return Run(res.returncode, res.stdout, res.stderr, after[len(before) :])

    def sync(self, **env: str) -> Run:
        return self.run("sync", "--json", **env)

    def modules_after_sync(self) -> dict[str, str]:
        """The modules a `mailbag sync` process loaded (name -> the type of its module
        object: "_Deferred" for one whose code has not run)."""
        code = (
            "import sys\n"
            "from mailbag.cli.main import main\n"
            "assert main(['sync', '-q']) == 0\n"
            "print(' '.join(f'{n}={type(m).__name__}' for n, m in sys.modules.items()))\n"
        )
        env = keyring_plugin.environment(self.plugin, base=self._base())
        words = python_words(code, cwd=self.cwd, env=env)
        return dict(item.split("=", 1) for item in words)

    def remembered(self) -> str:
        return self.cache.read_text(encoding="utf-8").splitlines()[3]


@pytest.fixture
def machine(sb: Sandbox, tmp_path: Path) -> Machine:
    m = Machine(tmp_path, sb)
    keyring_plugin.store(m.file, SERVICE, KEY, PASSWORD)
    return m


def ok(run: Run) -> None:
    assert run.code == 0, run.err
    assert json.loads(run.out)["accounts"][0]["ok"], run.out


def test_the_second_sync_uses_the_remembered_backend(machine: Machine) -> None:
    first = machine.sync()
    ok(first)
    assert first.log == ["search", f"get FileKeyring {KEY}"]  # one read per sync
    assert machine.remembered() == FILE_BACKEND
    assert stat.S_IMODE(machine.cache.stat().st_mode) == 0o600
    assert PASSWORD not in machine.cache.read_text()

    (machine.cwd / "notes.txt").write_text("a file made where mailbag is run from\n")
    second = machine.sync()
    ok(second)
    assert second.log == [f"get FileKeyring {KEY}"]  # no search: the plugins were not scanned

    # writes go to the same backend: set-password through the remembered one
    new = machine.run("account", "set-password", NAME, "--password-stdin", stdin="changed\n")
    assert new.code == 0, new.err
    assert "search" not in new.log
    assert json.loads(machine.file.read_text())[f"{SERVICE}\x00{KEY}"] == "changed"
    assert "changed" not in machine.cache.read_text()


def test_a_keyring_sync_leaves_what_keyring_loads_for_other_work_unrun(machine: Machine) -> None:
    searched = machine.modules_after_sync()  # (the search, remembered)
    assert searched["importlib_metadata"] == "module"  # (its entry points scanned)
    loaded = machine.modules_after_sync()
    assert loaded["keyring"] == "module" and "mailbag.sync.imap" in loaded  # it synced
    # imported by keyring's modules, deferred: their code never ran
    assert {name: loaded.get(name, "-") for name in DEFERRED} == dict.fromkeys(
        DEFERRED, "_Deferred"
    )
    # so neither did what they import (the http client, the email package, zip files;
    # traceback's linecache and tokenize, which logging loads to format exceptions)
    assert [m for m in ("http.client", "email", "zipfile", "csv") if m in loaded] == []
    assert loaded["traceback"] == "_Deferred"
    assert [m for m in ("linecache", "tokenize") if m in loaded] == []


@pytest.mark.parametrize("how", ["environment", "keyringrc.cfg"])
def test_a_backend_the_user_chose_wins_over_the_remembered_one(machine: Machine, how: str) -> None:
    ok(machine.sync())
    remembered = machine.cache.read_bytes()
    # the user now names the other backend; the remembered one holds a wrong password,
    # so the sync can only log in if the user's choice is used
    keyring_plugin.store(machine.file, SERVICE, KEY, "wrong")
    keyring_plugin.store(machine.other, SERVICE, KEY, PASSWORD)
    env = {"MAILBAG_TEST_KEYRING_OTHER": str(machine.other)}
    if how == "environment":
        env["PYTHON_KEYRING_BACKEND"] = OTHER_BACKEND
    else:
        rc = config_root_for(machine) / "keyringrc.cfg"
        rc.parent.mkdir(parents=True)
        rc.write_text(f"[backend]\ndefault-keyring = {OTHER_BACKEND}\n")
    run = machine.sync(**env)
    ok(run)
    assert run.log == [f"get OtherFileKeyring {KEY}"]
    assert machine.cache.read_bytes() == remembered  # neither used nor rewritten


def config_root_for(machine: Machine) -> Path:
    return machine.xdg_config / "python_keyring"


def test_a_remembered_backend_no_longer_viable_means_a_new_search(machine: Machine) -> None:
    ok(machine.sync())
    assert machine.remembered() == FILE_BACKEND
    keyring_plugin.store(machine.other, SERVICE, KEY, PASSWORD)
    # its daemon is gone, say; another backend is there now
    run = machine.sync(MAILBAG_TEST_KEYRING_OFF="1", MAILBAG_TEST_KEYRING_OTHER=str(machine.other))
    ok(run)
    assert run.log == ["search", f"get OtherFileKeyring {KEY}"]
    assert machine.remembered() == OTHER_BACKEND
    assert stat.S_IMODE(machine.cache.stat().st_mode) == 0o600


def _rename_class(text: str) -> str:
    lines = text.splitlines()
    return "\n".join([*lines[:3], f"{keyring_plugin.MODULE}.Uninstalled"]) + "\n"


def _other_module(text: str) -> str:
    lines = text.splitlines()
    return "\n".join([*lines[:3], "mailbag_no_such_plugin.Keyring"]) + "\n"


def _not_a_backend(text: str) -> str:
    lines = text.splitlines()
    return "\n".join([*lines[:3], "os.path"]) + "\n"


def _other_machine(text: str) -> str:
    lines = text.splitlines()
    return "\n".join([lines[0], lines[1], lines[2].replace("/", "/x"), lines[3]]) + "\n"


def _a_day_old(text: str) -> str:
    lines = text.splitlines()
    return "\n".join([lines[0], str(int(lines[1]) - 24 * 3600 - 60), *lines[2:]]) + "\n"


def _garbage(text: str) -> str:
    return "\x00not a cache\n"


@pytest.mark.parametrize(
    "damage",
    [_rename_class, _other_module, _not_a_backend, _other_machine, _a_day_old, _garbage],
)
def test_a_remembered_backend_that_does_not_hold_means_a_new_search(
    machine: Machine, damage: object
) -> None:
    ok(machine.sync())
    assert callable(damage)
    machine.cache.write_text(damage(machine.cache.read_text()))
    run = machine.sync()
    ok(run)
    assert run.log == ["search", f"get FileKeyring {KEY}"]
    assert machine.remembered() == FILE_BACKEND  # rewritten
    assert "search" not in machine.sync().log


def test_when_the_search_finds_no_backend_nothing_is_remembered(machine: Machine) -> None:
    ok(machine.sync())
    assert machine.cache.exists()
    # the only backend goes away: keyring falls back to its fail backend
    run = machine.sync(MAILBAG_TEST_KEYRING_OFF="1")
    assert run.code != 0
    assert "no system keyring backend" in run.out + run.err
    assert "--password-command" in run.out + run.err  # the alternatives are named
    assert not machine.cache.exists()  # the old choice no longer holds: forgotten
    again = machine.sync(MAILBAG_TEST_KEYRING_OFF="1")
    assert again.code != 0 and again.log == ["search"]
    assert not machine.cache.exists()


def test_a_chain_of_backends_is_remembered_as_a_chain(machine: Machine) -> None:
    # two viable backends: keyring chains them (reads try each, highest priority first)
    other = {"MAILBAG_TEST_KEYRING_OTHER": str(machine.other)}
    keyring_plugin.store(machine.other, SERVICE, KEY, PASSWORD)
    machine.file.unlink()  # the password is only in the second backend of the chain
    first = machine.sync(**other)
    ok(first)
    assert first.log == ["search", f"get FileKeyring {KEY}", f"get OtherFileKeyring {KEY}"]
    assert machine.remembered() == f"{FILE_BACKEND} {OTHER_BACKEND}"

    second = machine.sync(**other)
    ok(second)
    assert second.log == [f"get FileKeyring {KEY}", f"get OtherFileKeyring {KEY}"]

    # writes go where the chain puts them: its first backend
    new = machine.run("account", "set-password", NAME, "--password-stdin", stdin="new\n", **other)
    assert new.code == 0 and "search" not in new.log, new.err
    assert json.loads(machine.file.read_text()) == {f"{SERVICE}\x00{KEY}": "new"}

    # one member no longer viable: search again; a single backend is left
    keyring_plugin.store(machine.file, SERVICE, KEY, PASSWORD)
    alone = machine.sync(MAILBAG_TEST_KEYRING_OTHER_OFF="1", **other)
    ok(alone)
    assert alone.log == ["search", f"get FileKeyring {KEY}"]
    assert machine.remembered() == FILE_BACKEND


def test_a_backend_below_priority_1_is_remembered_too(machine: Machine) -> None:
    # keyrings.alt's file backend (0.5), what a machine without a desktop session has:
    # keyring's search chooses it when it is the only one, and so does every later run
    low = {"MAILBAG_TEST_KEYRING_RANK": "0.5"}
    first = machine.sync(**low)
    ok(first)
    assert first.log == ["search", f"get FileKeyring {KEY}"]
    assert machine.remembered() == FILE_BACKEND
    second = machine.sync(**low)
    ok(second)
    assert second.log == [f"get FileKeyring {KEY}"]  # no search
    # a better backend appears (a new package: sys.path changes): keyring's search again
    keyring_plugin.store(machine.other, SERVICE, KEY, PASSWORD)
    (machine.plugin / "new_package.py").write_text("")
    third = machine.sync(**low, MAILBAG_TEST_KEYRING_OTHER=str(machine.other))
    ok(third)
    assert third.log[0] == "search"


# --- the early login and the quick no-op path, for a password in the keyring ----------

#: the plugin's read, as logged with MAILBAG_TEST_KEYRING_WHEN: before the sync engine
#: loaded, in the main thread (a prompt stays where Ctrl-C reaches it)
READ_EARLY = f"get FileKeyring {KEY} engine=0 thread=MainThread"
WHEN = {"MAILBAG_TEST_KEYRING_WHEN": "1"}


def _age_index(paths: Paths) -> None:
    old = time.time() - 60
    for path in (paths.index_file, Path(f"{paths.index_file}-wal")):
        if path.exists():
            os.utime(path, (old, old))


def _arm(machine: Machine) -> Path:
    """Synced, and the last sync found nothing to do and recorded it (`sync.quick`, as
    tests/integration/test_sync_quick.py's `armed`); returns the record."""
    ok(machine.sync())
    time.sleep(0.25)  # directory times old enough to be trusted
    ok(machine.sync())  # (records them)
    ok(machine.sync())  # (checkpoints the WAL the last runs left)
    _age_index(machine.paths)
    ok(machine.sync())  # nothing to do: recorded
    record = machine.paths.state_dir / f"sync-{NAME}.quick"
    assert record.exists()
    return record


def test_a_keyring_sync_with_nothing_to_do_ends_before_the_engine_loads(
    machine: Machine,
) -> None:
    record = _arm(machine)
    quick = machine.run("sync", **WHEN)
    assert quick.code == 0, quick.err
    assert quick.log == [READ_EARLY]  # one read, early
    assert "; 0 new, 0 updated, 0 deleted, 0 uploaded" in quick.err
    loaded = machine.modules_after_sync()
    assert "mailbag.sync.quick" in loaded
    assert "mailbag.sync.imap" not in loaded and "mailbag.store.index" not in loaded
    # what the engine says for the same sync (without the record, the engine runs)
    record.unlink()
    engine = machine.run("sync", **WHEN)
    assert (engine.code, engine.out, engine.err) == (quick.code, quick.out, quick.err)
    # (a search first: `modules_after_sync`'s `python -c` has another sys.path)
    assert engine.log == ["search", READ_EARLY]


def _command_account_saying(machine: Machine, sb: Sandbox, password: str) -> None:
    from mailbag.config import SecretRef, SecretSource
    from mailbag.record import replace

    account = sb.account(USER, name=NAME)
    ref = SecretRef(SecretSource.COMMAND, f"echo {password}")
    save_account(machine.paths, replace(account, incoming=replace(account.incoming, secret=ref)))


def test_a_wrong_password_in_the_keyring_fails_as_from_a_command(
    machine: Machine, sb: Sandbox
) -> None:
    _arm(machine)
    keyring_plugin.store(machine.file, SERVICE, KEY, "wrong")
    runs = [machine.run("sync", **WHEN), machine.run("sync", "--json", **WHEN)]
    assert [r.log for r in runs] == [[READ_EARLY], [READ_EARLY]]  # logged in early
    assert runs[0].code == 1 and "authentication failed" in runs[0].err.lower(), runs[0].err
    # the same account with the same wrong password from a password command
    _command_account_saying(machine, sb, "wrong")
    expected = [machine.run("sync"), machine.run("sync", "--json")]
    assert [(r.code, r.out, r.err) for r in runs] == [(r.code, r.out, r.err) for r in expected]


NO_ENTRY = (
    f"mailbag: error: no password for {NAME!r} (incoming) in the keyring\n"
    f"  hint: store it with: mailbag account set-password {NAME}\n"
)
LOCKED = (
    f"mailbag: error: cannot read the password of {NAME!r} from the keyring: the collection is "
    "locked (the unlock prompt was dismissed)\n  hint: unlock your keyring and try again\n"
)


@pytest.mark.parametrize(
    ("failure", "said"),
    [("empty", NO_ENTRY), ("locked", LOCKED), ("locked, another sync running", LOCKED)],
    ids=["empty", "locked", "locked-while-another-sync-runs"],
)
def test_a_keyring_that_fails_is_reported_as_always(
    machine: Machine, failure: str, said: str
) -> None:
    from mailbag.sync.lock import sync_lock

    _arm(machine)
    env = dict(WHEN)
    if failure == "empty":
        machine.file.write_text("{}")
    else:
        env["MAILBAG_TEST_KEYRING_LOCKED"] = "1"
    with contextlib.ExitStack() as stack:
        if "another sync" in failure:  # the keyring's error comes first, as it always did
            stack.enter_context(sync_lock(machine.paths, NAME, 0))
        runs = [machine.run("sync", **env), machine.run("sync", "--json", **env)]
    for run in runs:
        assert run.log == [READ_EARLY]  # read once, early
        assert (run.code, run.out, run.err) == (2, "", said)


# --- in the test process ---------------------------------------------------------------


def test_a_backend_set_in_the_process_is_used_as_it_is(
    memory_keyring: object, mailbag_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    import keyring

    from mailbag.config import keyring_backend

    # a remembered choice that would hold, were nothing set in the process
    monkeypatch.syspath_prepend(str(keyring_plugin.install(tmp_path / "plugin")))
    monkeypatch.setenv("MAILBAG_TEST_KEYRING", str(tmp_path / "kr.json"))
    plugin = importlib.import_module(keyring_plugin.MODULE)
    cache = Paths.from_env().state_dir / CACHE_FILE
    keyring_backend._remember(cache, keyring_backend._fingerprint(), plugin.FileKeyring())
    assert cache.exists()

    assert active_backend() is keyring.get_keyring()
    assert type(active_backend()) is not plugin.FileKeyring
    assert keyring_problem() is None
    memory_keyring.backend.set_password(SERVICE, KEY, "in memory")  # type: ignore[attr-defined]
    assert keyring.get_password(SERVICE, KEY) == "in memory"


# --- accounts that do not use the keyring never load it ---------------------------------


def test_an_oauth2_account_with_a_refresh_token_command_never_loads_keyring(
    oauth_sandbox: Sandbox, tmp_path: Path
) -> None:
    from mailbag.config import SecretRef, SecretSource
    from mailbag.record import replace

    sb = oauth_sandbox
    token = sb.oauth2.issue(sb.address("carol")) if sb.oauth2 else None
    assert token is not None and token.refresh_token
    account = sb.account("carol", name="oc", oauth2=True)
    ref = SecretRef(SecretSource.COMMAND, f"echo {token.refresh_token}")
    account = replace(account, incoming=replace(account.incoming, secret=ref))
    home = tmp_path / "home"
    save_account(Paths.from_env({"MAILBAG_HOME": str(home)}), account)
    code = (
        "import sys\n"
        "from mailbag.cli.main import main\n"
        "code = main(['sync', '-q'])\n"
        "print(code, 'keyring' in sys.modules)\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MAILBAG_HOME": str(home)}
    # one run: the sandbox rotates refresh tokens (as Microsoft does), and a command's
    # token cannot be replaced, so a second run would need a new sign-in
    assert python_words(code, env=env) == ["0", "False"]
