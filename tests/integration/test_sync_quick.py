"""`mailbag sync` with nothing to do ends before the sync engine loads (`sync.quick`), and
only then: any change here (a flag renamed by a mail reader, a write to the index) or on
the server, another sync running, or a damaged record leaves the sync to the engine,
which then does what it always did. Against the real sandbox Dovecot."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.cli.main import main
from mailbag.config import save_account
from mailbag.paths import Paths
from mailbag.sandbox import Sandbox
from mailbag.store.index import Store
from mailbag.sync.lock import sync_lock
from pyrun import python_words

USER = "quick"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(users={USER: "quick-secret"}, services={"imap", "smtp"}) as box:
        box.fill(USER, 4, "INBOX")
        box.fill(USER, 2, "Archive", seed=2)
        yield box


def _age_index(paths: Paths) -> None:
    """The index and its WAL as if last written a minute ago (their times are trusted
    only when older than a file-system tick could hide: `quick.index_stamp`)."""
    old = time.time() - 60
    for path in (paths.index_file, Path(f"{paths.index_file}-wal")):
        if path.exists():
            os.utime(path, (old, old))


@pytest.fixture
def armed(sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A synced account whose last sync found nothing to do, and recorded it."""
    monkeypatch.setenv("MAILBAG_HOME", str(tmp_path / "home"))
    paths = Paths.from_env()
    save_account(paths, sb.account(USER, name=USER, password_command=True))
    assert main(["sync", "-q"]) == 0
    time.sleep(0.25)  # directory times old enough to be trusted
    assert main(["sync", "-q"]) == 0  # (records them)
    assert main(["sync", "-q"]) == 0  # (checkpoints the WAL the last runs left)
    _age_index(paths)
    assert main(["sync", "-q"]) == 0  # nothing to do: recorded
    assert (paths.state_dir / f"sync-{USER}.quick").exists()
    return paths


def _sync_in_a_fresh_process(*args: str) -> tuple[str, set[str]]:
    """What `mailbag sync ARGS` says, and the modules it loaded (MAILBAG_HOME as set)."""
    words = python_words(
        f"""
        import sys
        sys.stderr = sys.stdout
        from mailbag.cli.main import main
        assert main(["sync", *{list(args)!r}]) == 0
        print("MODULES", " ".join(sorted(sys.modules)))
        """
    )
    at = words.index("MODULES")
    return " ".join(words[:at]), set(words[at + 1 :])


def _inbox_dir(paths: Paths) -> Path:
    return paths.mail_dir / USER / "INBOX"


def test_a_sync_with_nothing_to_do_ends_before_the_engine_loads(
    armed: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    said, loaded = _sync_in_a_fresh_process()
    assert "mailbag.sync.quick" in loaded
    assert not loaded & {
        "mailbag.sync.imap",
        "mailbag.store.index",
        "sqlite3",
        "datetime",
        "importlib",
    }
    assert said.startswith("quick: ") and "; 0 new, 0 updated, 0 deleted, 0 uploaded" in said
    # what the engine says for the same sync (without the record, the engine runs)
    (armed.state_dir / f"sync-{USER}.quick").unlink()
    engine_said, loaded = _sync_in_a_fresh_process()
    assert "mailbag.sync.imap" in loaded
    assert said == engine_said


def test_a_flag_a_mail_reader_changed_is_still_pushed(armed: Paths, sb: Sandbox) -> None:
    cur = _inbox_dir(armed) / "cur"
    name = sorted(os.listdir(cur))[0]
    os.rename(cur / name, cur / (name + "F"))  # as mutt flags a message
    with Store.open(armed) as store:
        uid = next(
            m.uid for m in store.messages(account=USER, folder="INBOX") if name.startswith(m.key)
        )
    assert main(["sync", "-q"]) == 0
    with sb.control(USER) as c:
        assert "\\Flagged" in c.flags("INBOX")[uid]


def test_a_flag_set_here_is_pushed_though_the_directory_times_hide_it(
    armed: Paths, sb: Sandbox
) -> None:
    # only the index shows this change: its folder's directory times are put back
    inbox = _inbox_dir(armed)
    times = {d: os.stat(inbox / d).st_mtime_ns for d in ("cur", "new")}
    with Store.open(armed) as store:
        message = store.messages(account=USER, folder="INBOX")[0]
        store.set_flags(message, set(message.flags) | {"\\Answered"})
    for d, ns in times.items():
        os.utime(inbox / d, ns=(ns, ns))
    assert main(["sync", "-q"]) == 0
    with sb.control(USER) as c:
        assert "\\Answered" in c.flags("INBOX")[message.uid]


def test_a_change_on_the_server_is_synced_on_the_same_connection_and_listing(
    armed: Paths, sb: Sandbox, tmp_path: Path
) -> None:
    with sb.control(USER) as c:
        uid = c.uids("Archive")[0]
        c.store("Archive", [uid], "+FLAGS", ["\\Flagged"])
    trace = tmp_path / "trace.txt"
    assert main(["sync", "-q", "--trace", str(trace)]) == 0
    sent = [x.split(" C: ", 1)[1] for x in trace.read_text().splitlines() if " C: " in x]
    assert sum(1 for x in sent if " LOGIN " in x or " AUTHENTICATE " in x) == 1
    assert sum(1 for x in sent if " LIST " in x) == 1  # the quick check's, taken over
    with Store.open(armed) as store:
        (flagged,) = [m for m in store.messages(account=USER, folder="Archive") if m.uid == uid]
    assert "\\Flagged" in flagged.flags
    assert not (armed.state_dir / f"sync-{USER}.quick").exists()  # it did something


def test_another_sync_running_is_reported_as_by_the_engine(
    armed: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    with sync_lock(armed, USER):
        assert main(["sync"]) == 1
    assert "another `mailbag sync`" in capsys.readouterr().err


def test_a_damaged_record_leaves_the_sync_to_the_engine(
    armed: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    record = armed.state_dir / f"sync-{USER}.quick"
    record.write_bytes(b"\x00garbage")
    assert main(["sync"]) == 0
    assert "; 0 new, 0 updated, 0 deleted, 0 uploaded" in capsys.readouterr().err
    assert record.read_bytes() != b"\x00garbage"  # the engine recorded its run again


def test_other_folders_asked_for_are_synced_by_the_engine(
    armed: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    said, loaded = _sync_in_a_fresh_process("--folder", "INBOX")
    assert "mailbag.sync.imap" in loaded
    assert said.startswith("quick: 1 folders;")
