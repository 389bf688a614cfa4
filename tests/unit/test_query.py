"""The search language: parsing and compiling are pure; running uses a real store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mailbag.errors import UsageError
from mailbag.paths import Paths
from mailbag.store.index import Store
from mailbag.store.query import (
    And,
    Cond,
    Not,
    Or,
    Text,
    base_subject,
    compile_query,
    parse_query,
    search,
    thread,
)

UTC = dt.UTC
M = "+m.id IN (SELECT rowid FROM fulltext WHERE fulltext MATCH ?)"
JAN = dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp()
FEB = dt.datetime(2026, 2, 1, tzinfo=UTC).timestamp()
APR = dt.datetime(2026, 4, 1, tzinfo=UTC).timestamp()
WHEN = "COALESCE(m.date, m.internal_date)"


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("budget", Text("budget")),
        ('"quarterly report"', Text("quarterly report")),
        ("rep*", Text("rep", prefix=True)),
        ('"rep*"', Text("rep*")),
        ("from:alice", Text("alice", "sender")),
        ('from:"Alice Liddell"', Text("Alice Liddell", "sender")),
        ("subject:invoice body:paid", And((Text("invoice", "subject"), Text("paid", "body")))),
        ("a b", And((Text("a"), Text("b")))),
        ("a AND b", And((Text("a"), Text("b")))),
        ("a OR b c", Or((Text("a"), And((Text("b"), Text("c")))))),
        ("(a OR b) c", And((Or((Text("a"), Text("b"))), Text("c")))),
        ("NOT a", Not(Text("a"))),
        ("-a b", And((Not(Text("a")), Text("b")))),
        ("NOT NOT a", Not(Not(Text("a")))),
        ("re:lunch", Text("re:lunch")),  # unknown key: plain text
        ("http://x.example/", Text("http://x.example/")),
        ("is:unread", Cond("instr(' ' || m.flags || ' ', ?) = 0", (" \\Seen ",))),
        ("is:flagged", Cond("instr(' ' || m.flags || ' ', ?) > 0", (" \\Flagged ",))),
        ("has:attachment", Cond("m.has_attachments = 1")),
        ("folder:Work", Cond("f.name = ?", ("Work",))),
        ("folder:inbox", Cond("upper(f.name) = 'INBOX'")),
        ("folder:Lists/*", Cond("f.name GLOB ?", ("Lists/*",))),
        ("account:home", Cond("a.name = ?", ("home",))),
        ("larger:1M", Cond("m.size > ?", (1048576,))),
        ("smaller:20k", Cond("m.size < ?", (20480,))),
        ("larger:1.5k", Cond("m.size > ?", (1536,))),
        ("after:2026-01", Cond(f"{WHEN} >= ?", (JAN,))),
        ("before:2026-02-01", Cond(f"{WHEN} < ?", (FEB,))),
        ("date:2026-01", And((Cond(f"{WHEN} >= ?", (JAN,)), Cond(f"{WHEN} < ?", (FEB,))))),
        (
            "date:2026-01..2026-03",
            And((Cond(f"{WHEN} >= ?", (JAN,)), Cond(f"{WHEN} < ?", (APR,)))),
        ),
        ("date:..2026-01", Cond(f"{WHEN} < ?", (FEB,))),
        ("-- budget", Text("budget")),  # "--" has nothing to search for
        ("@", Cond("1")),
        ("@ OR a", Cond("1")),
        ("NOT @", Cond("0")),
    ],
)
def test_parse(query: str, tree: object) -> None:
    assert parse_query(query, tz=UTC) == tree


@pytest.mark.parametrize(
    ("query", "sql", "params"),
    [
        ("budget", M, ['"budget"']),
        ("a b", M, ['("a" AND "b")']),
        ("a OR from:b", M, ['("a" OR sender : "b")']),
        ("rep*", M, ['"rep" *']),
        ('say "hi"', M, ['("say" AND "hi")']),
        ('"a ""quoted"" word"', M, ['("a " AND "quoted" AND " word")']),
        ("NOT a", f"NOT {M}", ['"a"']),
        (
            "a is:unread b",
            f"({M} AND (instr(' ' || m.flags || ' ', ?) = 0))",
            ['("a" AND "b")', " \\Seen "],
        ),
        (
            "a OR is:flagged",
            f"({M} OR (instr(' ' || m.flags || ' ', ?) > 0))",
            ['"a"', " \\Flagged "],
        ),
        # FTS syntax in user text is only text
        ('x" OR rowid:1 NEAR(', M, ['("x" AND " OR rowid:1 NEAR(")']),
        ('subject:"a"" OR x', M, ['(subject : "a" AND " OR x")']),
        ("'; DROP TABLE messages; --", M, ['("DROP" AND "TABLE" AND "messages;")']),
    ],
)
def test_compile(query: str, sql: str, params: list[object]) -> None:
    assert compile_query(parse_query(query, tz=UTC)) == (sql, params)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("(a", "unbalanced"),
        ("a)", "unbalanced"),
        ("a OR", "ends too early"),
        ("NOT", "ends too early"),
        ("is:bogus", "unknown is:bogus"),
        ("has:kids", "unknown has:kids"),
        ("before:yesterday", "cannot read the date"),
        ("date:2026-13", "no such date"),
        ("larger:lots", "cannot read the size"),
        ("folder:", "needs a value"),
        ("date:..", "at least one end"),
        ("(" * 60 + "a" + ")" * 60, "nested too deeply"),
        (" ".join(["w"] * 300), "more than 200 terms"),
        ("a OR OR b", "unexpected 'OR'"),
    ],
)
def test_bad_queries_are_usage_errors(query: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_query(query, tz=UTC)
    assert message in err.value.message


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("Re: Lunch", "lunch"),
        ("RE: re: Fwd: Lunch", "lunch"),
        ("AW: Treffen", "treffen"),
        ("Re[2]: Lunch", "lunch"),
        ("Lunch", "lunch"),
        ("Re:", ""),
    ],
)
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


def _msg(
    subject: str,
    *,
    sender: str = "Alice <alice@example.org>",
    to: str = "bob@example.net",
    body: str = "hello",
    date: str = "Mon, 05 Jan 2026 10:00:00 +0000",
    mid: str,
    reply_to: str | None = None,
    refs: str | None = None,
    attach: str | None = None,
) -> bytes:
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <{mid}@example.org>\r\n"
    )
    if reply_to:
        head += f"In-Reply-To: <{reply_to}@example.org>\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    if attach:
        return (
            head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            f"--b\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
            "--b\r\nContent-Type: application/pdf\r\n"
            f'Content-Disposition: attachment; filename="{attach}"\r\n\r\n%PDF\r\n--b--\r\n'
        ).encode()
    return (head + f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(Paths(config_dir=tmp_path, data_dir=tmp_path / "d", state_dir=tmp_path / "s"))
    inbox = s.folder("home", "INBOX", role="inbox")
    work = s.folder("work", "Projects")
    add = s.add_bytes
    add(inbox, _msg("Lunch on Friday", mid="lunch", body="Shall we eat at noon?"))
    add(
        inbox,
        _msg("Re: Lunch on Friday", mid="lunch2", reply_to="lunch", sender="Bob <bob@example.net>",
             date="Tue, 06 Jan 2026 09:00:00 +0000", body="Yes, the café downstairs."),
        flags={"\\Seen", "\\Answered"},
    )  # fmt: skip
    add(
        inbox,
        _msg("Re: Re: Lunch on Friday", mid="lunch3",
             refs="<lunch@example.org> <lunch2@example.org>",
             date="Wed, 07 Jan 2026 09:00:00 +0000", body="Great"),
    )  # fmt: skip
    add(
        inbox,
        _msg("Quarterly report", mid="q3", attach="q3-report.pdf",
             date="Mon, 02 Feb 2026 10:00:00 +0000", body="The quarterly report is attached."),
        flags={"\\Flagged"},
    )  # fmt: skip
    add(
        work,
        _msg("Build failed", mid="build", sender="CI <ci@example.com>", to="team@example.com",
             date="Sun, 15 Mar 2026 10:00:00 +0000", body="report: 3 tests failed " + "x" * 3000),
    )  # fmt: skip
    add(inbox, _msg("Standup", mid="s1", body="no threading headers"))
    add(inbox, _msg("Re: Standup", mid="s2", body="also none"))
    return s


def _subjects(store: Store, query: str, **kw: object) -> list[str]:
    return [m.subject for m in search(store, query, tz=UTC, **kw)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "subjects"),
    [
        ("lunch", ["Re: Re: Lunch on Friday", "Re: Lunch on Friday", "Lunch on Friday"]),
        ("cafe", ["Re: Lunch on Friday"]),  # diacritics folded
        ('"quarterly report"', ["Quarterly report"]),
        ("report", ["Build failed", "Quarterly report"]),
        ("subject:report", ["Quarterly report"]),
        ("body:report", ["Build failed", "Quarterly report"]),
        ("from:bob", ["Re: Lunch on Friday"]),
        ("from:example.net", ["Re: Lunch on Friday"]),
        ("to:team", ["Build failed"]),
        ("attachment:q3-report.pdf", ["Quarterly report"]),
        ("has:attachment", ["Quarterly report"]),
        ("is:flagged", ["Quarterly report"]),
        ("is:answered", ["Re: Lunch on Friday"]),
        ("lunch is:unread", ["Re: Re: Lunch on Friday", "Lunch on Friday"]),
        ("folder:Projects", ["Build failed"]),
        ("account:work", ["Build failed"]),
        ("date:2026-02..2026-03", ["Build failed", "Quarterly report"]),
        ("after:2026-01-06 before:2026-01-07", ["Re: Lunch on Friday"]),
        ("larger:2k", ["Build failed"]),
        ("lunch NOT from:bob", ["Re: Re: Lunch on Friday", "Lunch on Friday"]),
        ("(from:bob OR from:ci) report OR cafe", ["Build failed", "Re: Lunch on Friday"]),
        ("qua*", ["Quarterly report"]),
        ("nothing-like-this", []),
        ("'; DROP TABLE messages; --", []),
        ('"unbalanced', []),
    ],
)
def test_search_semantics(store: Store, query: str, subjects: list[str]) -> None:
    assert _subjects(store, query) == subjects


def test_search_limit_and_account(store: Store) -> None:
    assert _subjects(store, "lunch", limit=1) == ["Re: Re: Lunch on Friday"]
    assert _subjects(store, "report", account="home") == ["Quarterly report"]
    assert store.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 7


def test_index_follows_moves_and_deletions(store: Store) -> None:
    [q3] = search(store, "quarterly", tz=UTC)
    archive = store.folder("home", "Archive")
    moved = store.move(q3, archive)
    assert [m.id for m in search(store, "quarterly folder:Archive", tz=UTC)] == [moved.id]
    store.remove(moved)
    assert search(store, "quarterly", tz=UTC) == []
    assert store.conn.execute("SELECT count(*) FROM fulltext").fetchone()[0] == 6


def test_rebuild_recreates_the_same_index(store: Store) -> None:
    from mailbag.store import fulltext

    before = _subjects(store, "report OR lunch")
    store.conn.execute("DELETE FROM fulltext")
    assert _subjects(store, "report OR lunch") == []
    assert fulltext.rebuild(store) == 7
    assert _subjects(store, "report OR lunch") == before


def test_thread_by_references_and_by_subject(store: Store) -> None:
    [first] = search(store, "subject:lunch NOT subject:re", tz=UTC)
    assert [m.subject for m in thread(store, first)] == [
        "Lunch on Friday",
        "Re: Lunch on Friday",
        "Re: Re: Lunch on Friday",
    ]
    [last] = search(store, '"Re: Re: Lunch"', tz=UTC)
    assert len(thread(store, last)) == 3
    [standup] = search(store, "subject:standup NOT subject:re", tz=UTC)
    assert sorted(m.subject for m in thread(store, standup)) == ["Re: Standup", "Standup"]
    [report] = search(store, "quarterly", tz=UTC)
    assert [m.subject for m in thread(store, report)] == ["Quarterly report"]


def test_writers_without_the_hook_are_caught_up(store: Store, tmp_path: Path) -> None:
    from mailbag.store import fulltext

    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "d", state_dir=tmp_path / "s")
    store.close()
    raw_writer = Store.open(paths, hooks=False)  # as a sync that defers indexing
    inbox = raw_writer.folder("home", "INBOX")
    raw_writer.add_bytes(inbox, _msg("Deferred one", mid="d1", body="zebra crossing"))
    raw_writer.add_bytes(inbox, _msg("Deferred two", mid="d2", body="zebra stripes"))
    [q3] = [m for m in raw_writer.messages() if m.subject == "Quarterly report"]
    raw_writer.remove(q3)  # no hook: the trigger drops its index row
    lost = raw_writer.add_bytes(inbox, _msg("File vanishes", mid="d3", body="zebra gone"))
    raw_writer.path(lost).unlink()
    raw_writer.close()

    reader = Store.open(paths)
    assert fulltext.pending(reader.conn) == 3
    assert _subjects(reader, "zebra") == ["Deferred two", "Deferred one"]
    assert fulltext.pending(reader.conn) == 0
    assert _subjects(reader, "quarterly") == []
    assert reader.conn.execute("SELECT count(*) FROM fulltext").fetchone()[0] == 8
    reader.close()


def test_an_old_index_is_rebuilt_on_first_search(store: Store) -> None:
    from mailbag.store import fulltext

    store.conn.execute("DROP TRIGGER fulltext_forget_gone")  # as a store migration might
    fulltext.ensure_schema(store.conn)
    assert fulltext.needs_rebuild(store.conn)
    assert _subjects(store, "report") == ["Build failed", "Quarterly report"]
    assert not fulltext.needs_rebuild(store.conn)


def test_search_and_list_walk_the_date_index(store: Store) -> None:
    from mailbag.store import fulltext

    store.conn.execute(f"DROP INDEX {fulltext.WHEN_INDEX}")
    fulltext.ensure_schema(store.conn)  # recreated without a rebuild
    assert not fulltext.needs_rebuild(store.conn)
    from mailbag.store.index import _MESSAGE_COLUMNS

    where, params = compile_query(parse_query("lunch", tz=UTC))
    plan = store.conn.execute(
        f"EXPLAIN QUERY PLAN SELECT {_MESSAGE_COLUMNS} FROM messages m "  # noqa: S608
        "JOIN folders f ON f.id = m.folder_id JOIN accounts a "
        f"ON a.id = f.account_id WHERE {where} ORDER BY COALESCE(m.date, m.internal_date) DESC, "
        "m.id DESC LIMIT 5",
        params,
    ).fetchall()
    text = " ".join(str(r[3]) for r in plan)
    assert "messages_by_when" in text and "TEMP B-TREE" not in text
    assert _subjects(store, "lunch", limit=2) == ["Re: Re: Lunch on Friday", "Re: Lunch on Friday"]


@pytest.mark.parametrize(
    "query", ["lunch", "report", "lunch is:unread", "(from:bob OR from:ci) report OR cafe", "zz"]
)
def test_both_plans_give_the_same_answer(
    store: Store, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbag.store import query as q

    few = _subjects(store, query)  # a handful of matches: driven from the match list
    monkeypatch.setattr(q, "FEW_MATCHES", 0)  # as if there were many: walk the date index
    assert _subjects(store, query) == few
    assert _subjects(store, query, limit=1) == few[:1]
    where, _ = compile_query(parse_query("a is:unread"), drive_from_matches=True)
    assert where.startswith("(m.id IN")


def _in_text_index(store: Store, message_id: int) -> bool:
    row = store.conn.execute("SELECT 1 FROM fulltext WHERE rowid = ?", (message_id,)).fetchone()
    return row is not None


def test_a_deleted_message_leaves_the_text_index_at_search_time(store: Store) -> None:
    # deleting an FTS5 row tokenizes its text again: the sync's deletions only list it
    [q3] = search(store, "quarterly", tz=UTC)
    [build] = search(store, "build", tz=UTC)
    store.forget(q3.id)  # as the sync does when the server expunged it
    store.remove(build)  # a tombstone
    store.commit()
    assert _in_text_index(store, q3.id) and _in_text_index(store, build.id)
    listed = {r[0] for r in store.conn.execute("SELECT id FROM fulltext_gone")}
    assert listed == {q3.id, build.id}
    assert _subjects(store, "quarterly OR build") == []
    assert not _in_text_index(store, q3.id) and not _in_text_index(store, build.id)
    assert store.conn.execute("SELECT count(*) FROM fulltext_gone").fetchone() == (0,)
    assert store.conn.execute("SELECT count(*) FROM fulltext").fetchone() == (5,)


@pytest.mark.parametrize("hooks", [True, False])
def test_a_new_message_with_a_deleted_ones_id_is_found_by_its_own_text(
    store: Store, tmp_path: Path, hooks: bool
) -> None:
    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "d", state_dir=tmp_path / "s")
    [last] = search(store, '"also none"', tz=UTC)
    assert last.id == max(r[0] for r in store.conn.execute("SELECT id FROM messages"))
    store.close()
    writer = Store.open(paths, hooks=hooks)  # indexing as it adds, or deferred (the sync)
    writer.forget(last.id)
    writer.commit()
    inbox = writer.folder("home", "INBOX")
    new = writer.add_bytes(inbox, _msg("Kayak trip", mid="kayak", body="paddles"))
    assert new.id == last.id  # SQLite gives the freed highest ID again
    writer.close()
    reader = Store.open(paths)
    assert _subjects(reader, "paddles") == ["Kayak trip"]
    assert _subjects(reader, '"also none"') == []
    assert _subjects(reader, "kayak") == ["Kayak trip"]  # (the list dropped nothing new)
    reader.close()


def test_an_index_that_dropped_text_at_once_is_upgraded_without_a_rebuild(store: Store) -> None:
    from mailbag.store import fulltext

    conn = store.conn
    for name in ("fulltext_forget_deleted", "fulltext_forget_gone"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE fulltext_gone")
    drop = "DELETE FROM fulltext WHERE rowid = old.id; DELETE FROM fulltext_todo WHERE id = old.id;"
    conn.execute(f"CREATE TRIGGER fulltext_on_delete AFTER DELETE ON messages BEGIN {drop} END")
    conn.execute(
        "CREATE TRIGGER fulltext_on_gone AFTER UPDATE OF gone ON messages WHEN new.gone != 0 "
        f"BEGIN {drop} END"
    )
    fulltext.ensure_schema(conn)
    assert not fulltext.needs_rebuild(conn)
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert triggers == {"fulltext_on_insert", "fulltext_forget_deleted", "fulltext_forget_gone"}
    [q3] = search(store, "quarterly", tz=UTC)
    store.forget(q3.id)
    store.commit()
    assert _in_text_index(store, q3.id)  # the new triggers only list it
    assert _subjects(store, "quarterly OR report") == ["Build failed"]


def _listed(store: Store) -> tuple[set[int], set[int]]:
    todo = {r[0] for r in store.conn.execute("SELECT id FROM fulltext_todo")}
    gone = {r[0] for r in store.conn.execute("SELECT id FROM fulltext_gone")}
    return todo, gone


def test_mail_that_comes_and_goes_between_searches_leaves_no_rows_behind(tmp_path: Path) -> None:
    # the sync defers indexing: a store synced for months and never searched must not
    # keep a to-do or drop row for every message the server expunged meanwhile
    paths = Paths(config_dir=tmp_path, data_dir=tmp_path / "d", state_dir=tmp_path / "s")
    writer = Store.open(paths, defer_indexing=True)
    inbox = writer.folder("home", "INBOX")
    rows = [
        writer.add_bytes(inbox, _msg(f"Note {i}", mid=f"n{i}", body=f"word{i}")).id
        for i in range(6)
    ]
    writer.commit()
    writer.forget_many(rows[:2])  # expunged on the server
    gone = writer.get(rows[2])
    assert gone is not None
    writer.remove(gone)  # a tombstone
    writer.commit()
    assert _listed(writer) == (set(rows[3:]), set())
    writer.close()
    reader = Store.open(paths)
    assert _subjects(reader, "word0 OR word2 OR word4") == ["Note 4"]
    assert _listed(reader) == (set(), set())
    # once indexed, a deletion is listed (its text must leave the index)
    reader.forget(rows[4])
    reader.commit()
    assert _listed(reader) == (set(), {rows[4]})
    assert _subjects(reader, "word4 OR word5") == ["Note 5"]
    assert reader.conn.execute("SELECT count(*) FROM fulltext").fetchone() == (2,)
    reader.close()


def test_an_index_that_listed_every_deletion_is_upgraded_and_pruned(store: Store) -> None:
    from mailbag.store import fulltext

    conn = store.conn
    [q3] = search(store, "quarterly", tz=UTC)  # indexes the fixture's seven messages
    for name in ("fulltext_forget_deleted", "fulltext_forget_gone"):
        conn.execute(f"DROP TRIGGER {name}")
    for name, when in (("deleted", "DELETE"), ("gone", "UPDATE OF gone")):
        conn.execute(
            f"CREATE TRIGGER fulltext_drop_{name} AFTER {when} ON messages BEGIN "  # noqa: S608
            "INSERT OR IGNORE INTO fulltext_gone(id) VALUES (old.id); END"
        )
    inbox = store.folder("home", "INBOX")
    never = store.add_bytes(inbox, _msg("Never searched", mid="ns", body="zebra")).id
    conn.execute("INSERT INTO fulltext_todo(id) VALUES (?)", (never,))  # as if deferred
    conn.execute("DELETE FROM fulltext WHERE rowid = ?", (never,))
    store.forget_many([q3.id, never])
    conn.execute("INSERT INTO fulltext_gone(id) VALUES (9999)")  # an ID never indexed
    store.commit()
    assert _listed(store) == ({never}, {q3.id, never, 9999})
    fulltext.ensure_schema(conn)
    assert not fulltext.needs_rebuild(conn)
    assert _listed(store) == (set(), {q3.id})  # q3's text still has to leave the index
    assert _subjects(store, "quarterly OR zebra") == []
    assert not _in_text_index(store, q3.id)
