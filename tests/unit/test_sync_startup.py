"""What a `mailbag sync` with nothing to do costs: the index finds pending rows without
reading folders, the outbox check loads no sending code, the sync path loads no
planner, mail parser, TOML writer or OAuth2 machinery until something needs them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mailbag.paths import Paths
from mailbag.store.index import _MIGRATIONS, PENDING_ROWS, SCHEMA_VERSION, Store
from mailbag.store.outbox import Outbox, OutboxRecord, OutboxState
from pyrun import python_words

MESSAGE = b"Subject: hi\r\nMessage-ID: <p1@example.org>\r\n\r\nbody\r\n"


def paths(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")


def test_pending_rows_come_from_the_partial_index(tmp_path: Path) -> None:
    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        other = store.folder("other", "INBOX")
        m = store.add_bytes(inbox, MESSAGE, flags={"\\Seen"})
        store.add_bytes(other, MESSAGE)
        store.commit()
        assert store.folders_with_pending("acct") == {inbox.id}  # new here: to upload
        store.pair(m.id, 7, synced_flags=m.flags)
        store.commit()
        assert store.folders_with_pending("acct") == set()
        store.set_flags(m, {"\\Seen", "$Later"})  # a keyword: the file name stays
        assert store.folders_with_pending("acct") == {inbox.id}
        store.remove(store.get(m.id))  # type: ignore[arg-type]
        assert store.folders_with_pending("acct") == {inbox.id}  # a tombstone to push
        plan = store.conn.execute(
            "EXPLAIN QUERY PLAN SELECT DISTINCT folder_id FROM messages WHERE " + PENDING_ROWS  # noqa: S608
        ).fetchall()
        assert any("messages_pending" in str(row[-1]) for row in plan), plan


def test_an_index_of_the_first_schema_is_migrated(tmp_path: Path) -> None:
    p = paths(tmp_path)
    p.index_file.parent.mkdir(parents=True)
    conn = sqlite3.connect(p.index_file)
    conn.executescript(_MIGRATIONS[0])
    conn.execute("INSERT INTO accounts(name) VALUES ('acct')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Store.open(p) as store:
        version = store.conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION >= 2
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "messages_pending" in names
        assert store.accounts() == ["acct"]


def test_outbox_has_entries(tmp_path: Path) -> None:
    p = paths(tmp_path)
    assert not Outbox.has_entries(p)  # not even created
    box = Outbox.open(p)
    assert not Outbox.has_entries(p)
    rec = box.add(
        OutboxRecord(
            id="",
            account="acct",
            state=OutboxState.QUEUED,
            message_id="<m@example.org>",
            envelope_from="me@example.org",
            recipients=["you@example.org"],
        ),
        MESSAGE,
    )
    assert Outbox.has_entries(p)
    box.remove(rec.id)
    assert not Outbox.has_entries(p)
    (box.tmp_dir / "half-written").mkdir()  # a crash mid-add: recover() must run
    assert Outbox.has_entries(p)


def _loaded_after(code: str, env_home: Path) -> set[str]:
    code += "\nimport sys; print(' '.join(sorted(sys.modules)))"
    return set(python_words(code, env={"MAILBAG_HOME": str(env_home), "PATH": "/usr/bin:/bin"}))


HEAVY = (
    "email",
    "tomlkit",
    "httpx",
    "httpx2",
    "keyring",
    "webbrowser",
    "http.server",
    "mailbag.message",
    "mailbag.sync.plan",
    "mailbag.sync.apply",
    "mailbag.sync.sending",
    "mailbag.sync.outbox",
    "mailbag.auth.tokens",
    "mailbag.auth.flows",
    "mailbag.store.outbox",
    "json",
    "secrets",
)


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_the_sync_path_loads_nothing_it_does_not_need(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[accounts.a]\nemail = "a@example.org"\nprotocol = "imap"\n\n'
        '[accounts.a.incoming]\nhost = "imap.example.org"\nport = 993\nsecurity = "ssl"\n'
        'username = "a@example.org"\n\n'
        '[accounts.a.smtp]\nhost = "smtp.example.org"\nport = 465\nsecurity = "ssl"\n'
        'username = "a@example.org"\n'
    )
    code = (
        "from mailbag.cli.main import build_parser\n"
        "from mailbag.cli.context import Context\n"
        "from mailbag.cli.cmd_send import flush_before_sync\n"
        "from mailbag.config import load_config\n"
        "from mailbag.paths import Paths\n"
        "from mailbag.protocols.trace import NO_TRACE\n"
        "import mailbag.sync.imap, mailbag.auth.login\n"
        "from mailbag.store.index import Store\n"
        "paths = Paths.from_env()\n"
        "config = load_config(paths)\n"
        "assert config.account(None).name == 'a'\n"
        "Store.open(paths, defer_indexing=True).close()\n"
        "args = build_parser().parse_args(['sync', '-q'])\n"
        "ctx = Context.from_args(args)\n"
        "assert flush_before_sync(ctx, config, ['a'], NO_TRACE) == []\n"
    )
    assert _heavy(_loaded_after(code, tmp_path)) == []
    # and the lazy names of mailbag.auth still resolve
    loaded = _loaded_after("from mailbag.auth import sign_in, login_imap, Provider", tmp_path)
    assert "mailbag.auth.tokens" in loaded
    import mailbag.auth

    for name in mailbag.auth.__all__:
        assert getattr(mailbag.auth, name).__name__ == name


def test_a_store_deferring_indexing_loads_the_fulltext_module_only_to_mend_its_schema(
    tmp_path: Path,
) -> None:
    import mailbag.store.fulltext as fulltext
    from mailbag.store.index import FULLTEXT_INDEXES, FULLTEXT_TRIGGERS, fulltext_in_place

    assert tuple(fulltext._INDEXES) == FULLTEXT_INDEXES
    p = paths(tmp_path)
    opened = (
        "from mailbag.paths import Paths\n"
        "from mailbag.store.index import Store\n"
        "store = Store.open(Paths.from_env(), defer_indexing=True)\n"
        "inbox = store.folder('acct', 'INBOX')\n"
        "store.add_bytes(inbox, b'Subject: hi\\r\\n\\r\\nbody\\r\\n')\n"
        "store.commit()\n"
        "store.close()\n"
    )
    # a new store: the module makes the tables, triggers and indexes
    assert "mailbag.store.fulltext" in _loaded_after(opened, tmp_path)
    with Store.open(p, hooks=False) as store:
        assert fulltext_in_place(store.conn)
    # then a sync's store needs nothing of it: its triggers list the new mail to index
    assert "mailbag.store.fulltext" not in _loaded_after(opened, tmp_path)
    with Store.open(p, hooks=False) as store:
        assert fulltext.pending(store.conn) == 2
        # a store migration that rebuilds `messages` drops the triggers: put back
        store.conn.execute(f"DROP TRIGGER {FULLTEXT_TRIGGERS[0]}")
        assert not fulltext_in_place(store.conn)
    assert "mailbag.store.fulltext" in _loaded_after(opened, tmp_path)
    with Store.open(p, hooks=False) as store:
        assert fulltext_in_place(store.conn)


def test_files_are_checked_against_every_row(tmp_path: Path) -> None:
    from mailbag.sync.imap import _matches_index

    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        store.add_bytes(inbox, MESSAGE, flags={"\\Seen", "$Later"})
        store.add_bytes(inbox, MESSAGE.replace(b"p1@", b"p2@"))  # no flags: new/
        store.commit()
        assert _matches_index(store, inbox)
        seen, unseen = sorted(inbox.maildir.scan().values(), key=lambda e: e.subdir)
        os.rename(seen.path, seen.root / "cur" / f"{seen.key}:2,FS")  # flagged elsewhere
        assert not _matches_index(store, inbox)
        os.rename(seen.root / "cur" / f"{seen.key}:2,FS", seen.path)
        assert _matches_index(store, inbox)
        stray = inbox.path / "cur" / "1700000000.stray.host:2,S"
        stray.write_bytes(MESSAGE)  # delivered by another program
        assert not _matches_index(store, inbox)
        stray.unlink()
        # mutt saw it (new/ -> cur/, still no flags): what a scan finds equals the index
        os.rename(unseen.path, unseen.root / "cur" / f"{unseen.key}:2,")
        assert _matches_index(store, inbox)
        os.rename(unseen.root / "cur" / f"{unseen.key}:2,", unseen.root / "cur" / unseen.key)
        assert not _matches_index(store, inbox)  # a name without info: not ours to judge


def test_directory_times_are_trusted_only_when_old_enough_for_their_clock(
    tmp_path: Path,
) -> None:
    import time

    from mailbag.sync.imap import _dir_stamp

    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")

    def set_times(ns: int) -> None:
        for sub in ("cur", "new"):
            os.utime(inbox.path / sub, ns=(ns, ns))

    now = time.time_ns()
    set_times(now - 1_000_000)  # 1 ms ago: too fresh
    assert _dir_stamp(inbox) is None
    set_times(now - 100_000_000 + 123_457)  # 0.1 s ago, nanosecond clock
    assert _dir_stamp(inbox) is not None
    whole = (now // 1_000_000_000 - 1) * 1_000_000_000  # a clock of whole seconds
    set_times(whole)
    assert _dir_stamp(inbox) is None  # a change in this second would not show
    set_times(whole - 3_000_000_000)
    assert _dir_stamp(inbox) == f"dirs={whole - 3_000_000_000}:{whole - 3_000_000_000}"


def test_fresh_directory_times_are_stepped_back_instead_of_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from mailbag.sync import imap
    from mailbag.sync.imap import _rearm, _times_stamp

    with Store.open(paths(tmp_path)) as store:
        inbox = store.folder("acct", "INBOX")
        m = store.add_bytes(inbox, MESSAGE, flags={"\\Seen"})
        store.pair(m.id, 7, {"\\Seen"})
        store.commit()
        # this run's own change, a moment ago: the times are too fresh to record as
        # they are (another change in the same clock tick would leave them unchanged)
        store.set_flags(m, {"\\Seen", "\\Flagged"})
        store.record_flags(m.id, {"\\Seen", "\\Flagged"})
        store.commit()
        cur = inbox.path / "cur"
        before = time.time_ns()  # (as fresh as can be, however slow the machine)
        os.utime(cur, ns=(before, before))

        def no_sleep(seconds: float) -> None:
            raise AssertionError(f"waited {seconds} s")

        monkeypatch.setattr(imap.time, "sleep", no_sleep)
        stamp = _rearm(store, inbox, None)
        assert stamp is not None and stamp == _times_stamp(inbox)
        assert cur.stat().st_mtime_ns == before - 1
        # another program's change right away (same clock tick, most likely): seen
        entry = next(iter(inbox.maildir.scan().values()))
        os.rename(entry.path, entry.root / "cur" / f"{entry.key}:2,FRS")
        assert _times_stamp(inbox) != stamp
        # and a change by another program before the check is not papered over
        os.rename(entry.root / "cur" / f"{entry.key}:2,FRS", entry.path)
        os.rename(entry.path, entry.root / "cur" / f"{entry.key}:2,S")
        assert _rearm(store, inbox, None) is None


def test_the_program_entry_runs_the_command_and_returns_its_code(tmp_path: Path) -> None:
    env = {"MAILBAG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "mailbag", "folders", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (ok.returncode, ok.stdout.strip()) == (0, "[]"), ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "mailbag", "sync"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "no account is configured" in bad.stderr


def test_an_index_of_schema_2_keeps_one_date_index_and_its_order(tmp_path: Path) -> None:
    from mailbag.store.contacts import known_addresses

    p = paths(tmp_path)
    p.index_file.parent.mkdir(parents=True)
    conn = sqlite3.connect(p.index_file)
    for script in _MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("INSERT INTO accounts(id, name) VALUES (1, 'acct')")
    conn.execute("INSERT INTO folders(id, account_id, name) VALUES (1, 1, 'INBOX')")
    for i, (date, internal) in enumerate([(300.0, 1.0), (None, 200.0), (100.0, 900.0)]):
        conn.execute(
            "INSERT INTO messages(folder_id, uid, key, date, internal_date, from_addr, subject,"
            " added) VALUES (1, ?, ?, ?, ?, ?, ?, 0)",
            (i + 1, f"k{i}", date, internal, f"p{i}@example.org", f"s{i}"),
        )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Store.open(p, hooks=False) as store:  # the migration alone makes the index
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "messages_when" not in names and "messages_by_when" in names
        assert [m.subject for m in store.messages()] == ["s0", "s1", "s2"]  # newest first
        assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        seen: list[str] = []
        store.conn.set_trace_callback(seen.append)
        found = known_addresses(store, "p")
        store.conn.set_trace_callback(None)
        assert [k.address for k in found] == [f"p{i}@example.org" for i in range(3)]
        (sql,) = [s for s in seen if "ORDER BY" in s]
        plan = " ".join(str(r[3]) for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "messages_by_when" in plan and "TEMP B-TREE" not in plan, plan
