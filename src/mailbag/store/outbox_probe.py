"""Is anything waiting in the outbox? Answered without loading the outbox code.

`mailbag sync` asks this before every run; the answer is almost always no, and the
outbox module (records, JSON, locking, id generation) costs a few milliseconds to
import, a noticeable share of a sync where nothing changed. The layout is the one
`mailbag.store.outbox` documents: `queue/<id>/` and `tmp/<id>/` under the outbox root.
"""

from __future__ import annotations

import os

from mailbag.paths import Paths

__all__ = ["has_entries"]


def has_entries(paths: Paths) -> bool:
    """Anything queued, or left in tmp/ by a crash? Two directory reads, no record parsed."""
    root = os.path.join(paths.data_dir, "outbox")
    for sub in ("queue", "tmp"):
        try:
            with os.scandir(os.path.join(root, sub)) as it:
                if next(it, None) is not None:
                    return True
        except FileNotFoundError:
            continue
    return False
