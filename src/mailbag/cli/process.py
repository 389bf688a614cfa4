"""The `mailbag` process's start and end, for commands where start-up time counts.

A `mailbag sync` with nothing to do takes ~0.1 s, most of it loading Python modules
and shutting the interpreter down. Two things here shorten that, both only in the
`mailbag` program (`cli.main.entry`), never when mailbag is used as a library:

- While the command's modules load, the cyclic garbage collector is paused: those
  imports create tens of thousands of long-lived objects that it would otherwise walk
  again and again (~3 ms). Once loaded they are frozen (skipped by later collections)
  and collection resumes, before any mail is handled.
- A command that succeeded may end with `os._exit` (~3 ms less than the
  interpreter's shutdown, which frees every object one by one), but only when that
  shutdown has nothing left to do: no thread but the main one, no `atexit` handler
  (coverage, logging, temporary files register one), stdout and stderr flushed
  without error, and no file, socket or database opened during the run still open.
  Otherwise the process exits the usual way.

One more rule for the usual exit (`exit_past_threads`): when a daemon thread is still
running at the end (an early connection a failed sync never took, a discovery probe
given up on), the process ends once Python's own part of the exit is done (threading's
shutdown, `atexit` handlers, stdout and stderr flushed), without the C library's exit
handlers. Among those is OpenSSL's cleanup, which frees what a thread still inside
OpenSSL (a handshake, a read) or just leaving it (its thread-local state) is using: a
failed sync crashed with SIGSEGV or SIGABRT after printing its report, about once in
200 runs, instead of exiting 1.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time

__all__ = [
    "exit_now_if_clean",
    "exit_past_threads",
    "open_files",
    "pause_collector",
    "program",
    "resume_collector",
]

_paused = False

#: True in the `mailbag` program (`cli.main.entry`), whose process ends with its command:
#: work that finishes by itself after it (a sync's `rm` of discarded files) need not be
#: waited for. False where mailbag is used as a library (`main`, tests, the TUI's own
#: process keeps running and waits as always).
program = False

#: an open file descriptor -> what it is (device and inode), to tell a reused number
OpenFiles = dict[int, tuple[int, int]]


def pause_collector() -> None:
    """Pause the cyclic garbage collector while the command's modules load."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector() -> None:
    """The modules are loaded: freeze what exists and collect again (if paused here)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def open_files() -> OpenFiles | None:
    """The process's open file descriptors (None where the system does not list them)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    found: OpenFiles = {}
    for name in names:
        fd = int(name)
        try:
            st = os.fstat(fd)
        except OSError:
            continue  # the descriptor that listed the directory, closed by now
        found[fd] = (st.st_dev, st.st_ino)
    return found


def exit_now_if_clean(code: int, before: OpenFiles | None) -> None:
    """End the process with `code` at once when the interpreter's shutdown would have
    nothing left to do (see the module's docstring); return otherwise. `before` is
    `open_files()` from the start of the run."""
    import threading

    if before is None or threading.active_count() > 1:
        return
    ncallbacks = getattr(atexit, "_ncallbacks", None)
    if ncallbacks is None or ncallbacks() > 0:
        return
    if getattr(threading, "_threading_atexits", None):
        return  # concurrent.futures and the like wait for their workers at exit
    try:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return  # the usual exit reports it as it always did
    now = open_files()
    if now is None or any(before.get(fd) != ident for fd, ident in now.items()):
        return  # something opened during the run is still open: let finalizers close it
    os._exit(code)


def _os_threads() -> int:
    """The number of the process's threads as the system counts them, which includes a
    thread whose Python part has ended (joined) while it still frees its thread-local
    state; 1 where the system does not list them."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def exit_past_threads(code: int) -> None:
    """Before the usual exit: when a thread other than the main one is still running
    once threading's shutdown is done (daemon threads are not waited for), end the
    process with `code` after Python's part of the exit, skipping the C library's exit
    handlers (see the module's docstring); return otherwise, for the usual exit.

    What the skipped part would still have done: finalize the objects left (files and
    databases are closed by the commands themselves; only a file left open by mistake
    would lose what is buffered) and OpenSSL's cleanup, which is what crashes."""
    import threading

    if threading.active_count() == 1 and _os_threads() == 1:
        return  # the usual case: nothing running beside the main thread
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        # what the usual exit does first: threading's own exit handlers (an executor
        # stops its workers), then waiting for every thread that is not a daemon
        shutdown()
    if not any(t.daemon and t.is_alive() for t in threading.enumerate()):
        # a thread that ended may still be leaving (its thread-local state freed): it
        # takes microseconds
        for _ in range(100):
            if _os_threads() == 1:
                return
            time.sleep(0.001)
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        code = code or 120  # as the usual exit reports a failed flush
    os._exit(code)
