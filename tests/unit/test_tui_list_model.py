"""The message list's model (`tui.view.ListModel`): folding conversations, removing and
re-flagging lines, and fetching rows a page at a time; no screen needed."""

from __future__ import annotations

from mailbag.store.listing import ThreadSummary
from mailbag.tui.view import ROWS_PER_FETCH, ListModel, MessageRow


class Fetcher:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.unread: set[int] = set()

    def __call__(self, ids: list[int]) -> list[MessageRow]:
        self.calls.append(list(ids))
        return [_message(i, i in self.unread) for i in ids if i < 10_000]


def _message(i: int, unread: bool = False) -> MessageRow:
    flags = frozenset() if unread else frozenset({"\\Seen"})
    return MessageRow(str(i), "Jan 01", "someone", f"subject {i}", flags, False, 10)


def _model(fetch: Fetcher) -> ListModel:
    threads = [
        ThreadSummary((9, 5, 2), 9.0, 1),
        ThreadSummary((8,), 8.0, 0),
        ThreadSummary((7, 3), 7.0, 0),
    ]
    fetch.unread = {5}
    return ListModel.by_thread(threads, fetch)


def test_fold_and_unfold() -> None:
    model = _model(Fetcher())
    assert model.entries == [9, 8, 7] and model.threaded
    assert model.thread_at(0) is not None and model.thread_at(1) is None
    model.expand(0)
    assert model.entries == [9, 5, 2, 8, 7]
    assert model.is_child(1) and model.is_child(2) and not model.is_child(3)
    assert model.head_of(2) == 0 and model.head_of(3) == 3
    model.expand(0)  # twice is once
    assert model.entries == [9, 5, 2, 8, 7]
    assert model.collapse(2) == 0  # folding from a child folds its conversation
    assert model.entries == [9, 8, 7]
    assert model.toggle(2) == 2 and model.entries == [9, 8, 7, 3]
    assert model.toggle(3) == 2 and model.entries == [9, 8, 7]
    assert model.toggle(1) == 1 and model.entries == [9, 8, 7]  # a single message: no-op


def test_remove_keeps_conversations_right() -> None:
    fetch = Fetcher()
    model = _model(fetch)
    model.expand(0)
    model.row(0)  # rows known, so the unread count can follow
    model.remove(1)  # 5 (unread) leaves; the conversation stays unfolded
    assert model.entries == [9, 2, 8, 7]
    thread = model.thread_at(0)
    assert thread is not None and thread.ids == (9, 2) and thread.unread == 0
    model.remove(0)  # the newest goes: the next one heads what is left (a single message)
    assert model.entries == [2, 8, 7] and model.thread_at(0) is None
    assert not model.is_child(0)
    model.remove(2)  # a folded conversation's head: 3 takes its place
    assert model.entries == [2, 8, 3]
    assert model.index_of("3") == 2 and model.index_of("7") is None


def test_reading_updates_the_unread_count_of_its_conversation() -> None:
    fetch = Fetcher()
    model = _model(fetch)
    model.expand(0)
    row = model.row(1)
    assert row.unread
    model.replace(
        1, MessageRow(row.id, row.date, row.sender, row.subject, frozenset({"\\Seen"}), False, 10)
    )
    thread = model.thread_at(0)
    assert thread is not None and thread.unread == 0
    model.replace(1, row)  # marked unread again
    thread = model.thread_at(0)
    assert thread is not None and thread.unread == 1


def test_rows_are_fetched_a_page_at_a_time() -> None:
    fetch = Fetcher()
    model = ListModel.flat(list(range(5000)), fetch)
    assert len(model) == 5000 and not fetch.calls  # nothing read until drawn
    for i in range(30):
        assert model.row(i).subject == f"subject {i}"
    assert len(fetch.calls) == 1 and len(fetch.calls[0]) == ROWS_PER_FETCH
    model.row(4000)
    assert (
        len(fetch.calls) == 2 and 4000 in fetch.calls[1] and len(fetch.calls[1]) <= ROWS_PER_FETCH
    )


def test_a_message_gone_meanwhile_shows_a_placeholder() -> None:
    model = ListModel.flat([10_001], Fetcher())
    assert model.row(0).subject == "(gone)"


def test_top_first_then_complete() -> None:
    fetch = Fetcher()
    model = ListModel.flat([1, 2], fetch)
    model.complete = False
    model.complete_with([1, 2, 3])
    assert model.complete and model.entries == [1, 2, 3]


def test_search_results_need_no_fetch() -> None:
    rows = [_message(4), _message(2)]
    model = ListModel.of_rows(rows)
    assert model.rows() == rows and not model.threaded


def test_unfolded_conversations_stay_unfolded_after_regrouping() -> None:
    fetch = Fetcher()
    old = _model(fetch)
    old.expand(0)
    # a sync brought a new reply (11) into the first conversation and a new message (10)
    threads = [
        ThreadSummary((11, 9, 5, 2), 11.0, 1),
        ThreadSummary((10,), 10.0, 1),
        ThreadSummary((8,), 8.0, 0),
        ThreadSummary((7, 3), 7.0, 0),
    ]
    new = ListModel.by_thread(threads, fetch)
    new.unfold_like(old)
    assert new.entries == [11, 9, 5, 2, 10, 8, 7]
    assert new.expanded == {11}


def test_a_folded_conversation_leaves_at_once() -> None:
    fetch = Fetcher()
    model = _model(fetch)
    model.expand(2)  # 7 unfolded: [9, 8, 7, 3]
    model.remove_conversation(0)
    assert model.entries == [8, 7, 3] and 9 not in model.heads
    model.remove_conversation(1)  # an unfolded one goes with its children
    assert model.entries == [8] and not model.children and not model.expanded
    model.remove_conversation(0)  # a single message
    assert model.entries == []
