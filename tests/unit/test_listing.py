"""Message-list order and conversations (`store.listing`): the grouping rule on plain
rows, then the queries against a real store."""

from __future__ import annotations

from pathlib import Path

from mailbag.paths import Paths
from mailbag.store.index import Store
from mailbag.store.listing import folder_order, folder_threads, group_threads, messages_by_id
from mailbag.store.query import thread


def _row(
    n: int,
    msgid: str = "",
    irt: str = "",
    refs: str = "",
    subject: str = "",
    seen: bool = True,
) -> tuple[int, float, str, str, str, str, str]:
    # rows are given newest first, so a higher n is older here
    return (n, 1000.0 - n, "\\Seen" if seen else "", msgid, irt, refs, subject)


def _groups(rows: list[tuple[int, float, str, str, str, str, str]]) -> list[tuple[int, ...]]:
    return [t.ids for t in group_threads(rows)]


def test_replies_join_through_in_reply_to_and_references() -> None:
    rows = [
        _row(1, "<c@x>", "<b@x>", "<a@x> <b@x>", "Re: plan"),
        _row(2, "<other@x>", "", "", "lunch"),
        _row(3, "<b@x>", "<a@x>", "", "Re: plan"),
        _row(4, "<a@x>", "", "", "plan"),
    ]
    assert _groups(rows) == [(1, 3, 4), (2,)]


def test_a_missing_parent_still_links_its_children() -> None:
    # <root@x> is not in this folder; both replies name it in References
    rows = [
        _row(1, "<r2@x>", "<r1@x>", "<root@x> <r1@x>"),
        _row(2, "<r1@x>", "<root@x>", "<root@x>"),
        _row(3, "<alone@x>"),
    ]
    assert _groups(rows) == [(1, 2), (3,)]


def test_newest_conversation_first_and_each_newest_first() -> None:
    rows = [
        _row(1, "<new@x>"),
        _row(2, "<b2@x>", "<b1@x>"),
        _row(3, "<a2@x>", "<a1@x>"),
        _row(4, "<b1@x>"),
        _row(5, "<a1@x>"),
    ]
    threads = group_threads(rows)
    assert [t.ids for t in threads] == [(1,), (2, 4), (3, 5)]
    assert [t.latest for t in threads] == [999.0, 998.0, 997.0]


def test_unread_counts_per_conversation() -> None:
    rows = [
        _row(1, "<b@x>", "<a@x>", seen=False),
        _row(2, "<a@x>", seen=False),
        _row(3, "<c@x>", "<a@x>"),
    ]
    (only,) = group_threads(rows)
    assert only.ids == (1, 2, 3) and only.unread == 2 and only.size == 3 and only.newest == 1


def test_same_subject_without_headers_stays_apart_unless_a_reply_says_so() -> None:
    assert _groups([_row(1, "<1@x>", subject="Hello"), _row(2, "<2@x>", subject="Hello")]) == [
        (1,),
        (2,),
    ]
    rows = [
        _row(1, "<3@x>", subject="Re: Lunch?"),
        _row(2, "<2@x>", subject="lunch?"),
        _row(3, "<1@x>", subject="Lunch?"),
        _row(4, "<4@x>", subject="AW: Fwd: lunch?"),
    ]
    # the replies join the newest original; the older original stays alone
    assert _groups(rows) == [(1, 2, 4), (3,)]


def test_replies_with_no_original_here_group_together() -> None:
    rows = [_row(1, "<1@x>", subject="Re: x"), _row(2, "", subject="RE: X"), _row(3, "<3@x>")]
    assert _groups(rows) == [(1, 2), (3,)]


def test_a_reply_with_headers_is_not_joined_by_subject() -> None:
    rows = [_row(1, "<2@x>", "<elsewhere@x>", subject="Re: plan"), _row(2, "<1@x>", subject="plan")]
    assert _groups(rows) == [(1,), (2,)]


def test_empty_and_odd_values() -> None:
    assert group_threads([]) == []
    odd = [(1, None, None, None, None, None, None), (2, None, None, None, "junk", "", None)]
    assert [(t.ids, t.latest, t.unread) for t in group_threads(odd)] == [
        ((1,), 0.0, 1),
        ((2,), 0.0, 1),
    ]


def _mail(msgid: str, subject: str, day: int, irt: str = "", refs: str = "") -> bytes:
    head = f"Message-ID: {msgid}\r\nSubject: {subject}\r\nFrom: a@example.org\r\n"
    head += f"Date: {day:02d} Jan 2026 10:00:00 +0000\r\n"
    if irt:
        head += f"In-Reply-To: {irt}\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    return (head + "\r\nbody\r\n").encode()


def test_store_order_threads_and_pages(tmp_path: Path) -> None:
    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    with Store.open(paths) as store:
        inbox = store.folder("acct", "INBOX", role="inbox")
        other = store.folder("acct", "Other")
        root = store.add_bytes(inbox, _mail("<a@x>", "plan", 1), flags={"\\Seen"})
        solo = store.add_bytes(inbox, _mail("<s@x>", "solo", 2))
        reply = store.add_bytes(inbox, _mail("<b@x>", "Re: plan", 3, "<a@x>", "<a@x>"))
        gone = store.add_bytes(inbox, _mail("<g@x>", "gone", 4))
        store.add_bytes(other, _mail("<o@x>", "elsewhere", 5))
        store.remove(gone)

        assert folder_order(store, "acct", "INBOX") == [reply.id, solo.id, root.id]
        assert folder_order(store, "acct", "INBOX", first=2) == [reply.id, solo.id]
        assert folder_order(store, "acct", "Nope") == []
        assert folder_threads(store, "acct", "Nope") == []

        threads = folder_threads(store, "acct", "INBOX")
        assert [(t.ids, t.unread) for t in threads] == [
            ((reply.id, root.id), 1),
            ((solo.id,), 1),
        ]
        # the same conversation `mailbag thread` shows
        assert {m.id for m in thread(store, store.lookup(str(root.id)))} == set(threads[0].ids)

        got = messages_by_id(store, [root.id, gone.id, reply.id, 999_999])
        assert [m.subject for m in got] == ["plan", "Re: plan"]  # order kept, gone left out
        many = folder_order(store, "acct", "INBOX") * 400  # chunks of 500 parameters
        assert len(messages_by_id(store, many)) == 1200


def test_conversations_join_across_folders_of_one_account(tmp_path: Path) -> None:
    from mailbag.store.listing import ThreadSummary, join_across_folders

    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    with Store.open(paths) as store:
        inbox = store.folder("acct", "INBOX", role="inbox")
        sent = store.folder("acct", "Sent", role="sent")
        old = store.folder("acct", "Old")
        elsewhere = store.folder("other", "INBOX", role="inbox")
        # the match: Bob's second reply, in INBOX
        match = store.add_bytes(inbox, _mail("<i3@x>", "Re: bill", 5, "<i2@x>", "<i1@x> <i2@x>"))
        # its beginning, archived in Old; our answer in Sent; a reply to our answer in Sent
        first = store.add_bytes(old, _mail("<i1@x>", "bill", 1))
        ours = store.add_bytes(sent, _mail("<i2@x>", "Re: bill", 3, "<i1@x>", "<i1@x>"))
        later = store.add_bytes(sent, _mail("<i4@x>", "Re: bill", 7, "<i3@x>", "<i1@x> <i3@x>"))
        store.add_bytes(sent, _mail("<u@x>", "unrelated", 6))
        # the same Message-IDs in another account: never joined
        store.add_bytes(elsewhere, _mail("<i1@x>", "bill", 1))
        store.add_bytes(elsewhere, _mail("<i5@x>", "Re: bill", 8, "<i3@x>", "<i3@x>"))
        alone = ThreadSummary((match.id,), 5.0, 0)

        (joined,) = join_across_folders(store, "acct", [alone])
        assert joined.ids == (later.id, match.id, ours.id, first.id)  # newest first
        assert joined.unread == 4
        assert join_across_folders(store, "acct", []) == []
        # a lone message with nothing elsewhere stays alone
        lone = store.add_bytes(inbox, _mail("<l@x>", "lone", 9))
        assert [
            t.ids for t in join_across_folders(store, "acct", [ThreadSummary((lone.id,), 9.0, 1)])
        ] == [(lone.id,)]
