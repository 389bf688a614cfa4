"""Peak Python memory of a piece of work, measured so that only the work counts.

Two things besides the work reach a `tracemalloc` peak. The cyclic collector: where
in the work it happened to run (its phase depends on everything that ran before,
other threads included) decided whether ~170-310 kB more fell in one measure or the
other, and a "bytes a message" test failed once in a while; so it runs before the
measure and not during it (garbage the work itself leaves in cycles stays counted:
it only adds). And every other thread's allocations (a thread an earlier test left
running): those only add to a peak, never take from it, so `least_of_three` takes
the least of up to three figures.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def traced_peak(work: Callable[[], T]) -> tuple[int, T]:
    """The peak traced memory (bytes) while `work` ran, and what it returned."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    tracemalloc.start()
    try:
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        if was_enabled:
            gc.enable()
    return peak, result


def least_of_three(measure: Callable[[], float], bound: float) -> float:
    """The least of up to three figures of `measure`, stopping at the first under
    `bound` (a figure that others' allocations raised is measured again)."""
    figures = [measure()]
    while len(figures) < 3 and figures[-1] >= bound:
        figures.append(measure())
    return min(figures)


#: the start of a script run in a fresh interpreter (`pyrun.python_words`) that measures
#: how much a piece of work grows the peak RSS: `store` is the sync's index
#: (`_open_store`) under the directory `sys.argv[1]`, `folder` its INBOX; `peak_from_here()`
#: gives back the memory freed so far (what was freed, e.g. by compiling modules, would
#: otherwise take in what the work needs unseen), starts the peak again and returns the
#: RSS then; `status("VmHWM")` is the peak since (kB; a child's ru_maxrss would start at
#: its parent's)
RSS_PEAK_PRELUDE = """\
import ctypes
import ctypes.util
import gc
import sys
from pathlib import Path
from mailbag.paths import Paths
from mailbag.sync.imap import _open_store
def status(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field))
def peak_from_here():
    gc.collect()
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status("VmRSS")
d = Path(sys.argv[1])
store = _open_store(Paths(config_dir=d, data_dir=d / "data", state_dir=d / "state"))
folder = store.find_folder("acct", "INBOX")
"""
