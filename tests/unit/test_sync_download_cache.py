"""A download runs with a small index page cache (`apply.DOWNLOAD_CACHE_KIB`), whatever
cache the sync's connection has for its other work, so a big first sync's peak RSS does
not grow with the mailbox; the cache is as it was afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mailbag.errors import NetworkError
from mailbag.paths import Paths
from mailbag.store.index import Store
from mailbag.sync.apply import DOWNLOAD_CACHE_KIB, download_messages
from mailbag.sync.events import FolderReport, no_progress

if TYPE_CHECKING:
    from mailbag.sync.apply import DownloadSink


def _message(uid: int) -> bytes:
    return f"Subject: m{uid}\r\nMessage-ID: <m{uid}@example.org>\r\n\r\nbody {uid}\r\n".encode()


class _Server:
    """Sends the bodies of the UIDs asked for; notes the index's cache size as it does."""

    uidplus = True

    def __init__(self, store: Store, fail_after: int | None = None) -> None:
        self.store = store
        self.fail_after = fail_after
        self.cache_seen: list[int] = []

    def fetch_bodies(self, uids: Sequence[int], sink: DownloadSink) -> None:
        for n, uid in enumerate(uids):
            if n == self.fail_after:
                raise NetworkError("connection dropped")
            self.cache_seen.append(self.store.conn.execute("PRAGMA cache_size").fetchone()[0])
            out = sink.begin(len(_message(uid)))
            out.write(_message(uid))
            sink.done(uid, frozenset({"\\Seen"}), None, None, None)


def _open(tmp_path: Path) -> Store:
    p = Paths(config_dir=tmp_path, data_dir=tmp_path / "data", state_dir=tmp_path / "state")
    store = Store.open(p, defer_indexing=True)
    store.conn.execute("PRAGMA cache_size = -16384")  # (bigger than the download's)
    return store


@pytest.mark.parametrize("fail_after", [None, 2])
def test_downloads_use_the_small_page_cache_and_give_it_back(
    tmp_path: Path, fail_after: int | None
) -> None:
    with _open(tmp_path) as store:
        folder = store.folder("acct", "INBOX")
        store.commit()
        server = _Server(store, fail_after)
        report = FolderReport("INBOX")
        try:
            download_messages(store, folder, server, [1, 2, 3], {}, report, no_progress)  # type: ignore[arg-type]
        except NetworkError:
            assert fail_after is not None
        assert server.cache_seen and set(server.cache_seen) == {-DOWNLOAD_CACHE_KIB}
        assert store.conn.execute("PRAGMA cache_size").fetchone()[0] == -16384
        done = 3 if fail_after is None else fail_after
        assert report.new == done
        uids = [r[0] for r in store.conn.execute("SELECT uid FROM messages ORDER BY uid")]
        assert uids == list(range(1, done + 1))
