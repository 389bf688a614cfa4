"""`Store.flush_dirs_ahead`: the directories noted so far are made durable in a helper
thread while the caller goes on; the commit waits for that, flushes only what was noted
since (a directory changed again is flushed again), and a failed flush fails the commit
(nothing recorded)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import mailbag.store.index as index_module
from mailbag.store.index import Store


@pytest.fixture
def store(tmp_store: Store) -> Store:
    return tmp_store


@pytest.fixture
def flushed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(directory, thread) of each directory fsync, in order."""
    seen: list[tuple[str, str]] = []
    real = index_module.fsync_dir

    def fsync_dir(path: str | Path) -> None:
        seen.append((Path(path).name, threading.current_thread().name))
        real(path)

    monkeypatch.setattr(index_module, "fsync_dir", fsync_dir)
    return seen


def _dirs(tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for n in names:
        (tmp_path / n).mkdir()
        out.append(tmp_path / n)
    return out


def test_the_commit_flushes_only_what_was_noted_after(
    store: Store, tmp_path: Path, flushed: list[tuple[str, str]]
) -> None:
    a, b, c = _dirs(tmp_path, "a", "b", "c")
    store.account_id("acct")  # (a write: the transaction the commit ends)
    store.note_dir_changes(a, b)
    store.flush_dirs_ahead()
    store.note_dir_changes(b, c)  # b changed again, c for the first time
    store.commit()
    ahead = sorted(d for d, t in flushed if t == "mailbag-flush")
    at_commit = sorted(d for d, t in flushed if t == threading.current_thread().name)
    assert ahead == ["a", "b"]
    assert at_commit == ["b", "c"]
    # after the helper's (waited for), in whatever order the commit takes them
    last = flushed[-2:]
    assert sorted(d for d, _ in last) == at_commit
    assert all(t == threading.current_thread().name for _, t in last)
    flushed.clear()
    store.commit()  # nothing noted: nothing flushed
    assert flushed == []


def test_a_failed_flush_ahead_fails_the_commit(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (a,) = _dirs(tmp_path, "a")

    def fsync_dir(path: str | Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(index_module, "fsync_dir", fsync_dir)
    store.account_id("acct")
    store.note_dir_changes(a)
    store.flush_dirs_ahead()
    with pytest.raises(OSError, match="Input/output"):
        store.commit()
    store.rollback()
    assert store.conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0
