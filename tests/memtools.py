"""Peak Python memory of a piece of work, measured so that only the work counts.

`tracemalloc` counts every thread's allocations, and whatever the cyclic collector
happens to find while it runs: in the whole suite, on a loaded machine, a test's
threads left behind or a collection of an earlier test's garbage added ~100-300 kB
to one measure of two, and a "bytes a message" test failed once in a while. So the
collector runs before the measure and not during it (garbage the work itself leaves
in cycles stays counted: it only adds), and `least_peak` takes the least of two
measures, as others' allocations can only add to a peak, never take from it (and
the first measure also counts what is built on first use: ~90 kB in the planner).
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


def least_peak(work: Callable[[], T], times: int = 2) -> tuple[int, T]:
    """`traced_peak` of `work` run `times` times: the least peak, the last result."""
    peak, result = traced_peak(work)
    for _ in range(times - 1):
        again, result = traced_peak(work)
        peak = min(peak, again)
    return peak, result
