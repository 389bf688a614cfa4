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
