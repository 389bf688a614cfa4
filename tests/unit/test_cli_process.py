"""`cli.process`: the quick exit happens only when the interpreter's shutdown has nothing
left to do, keeps the exit code and flushes what was printed; the collector pause.
Each case runs in a process of its own (a quick exit ends the process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PRELUDE = """\
import os, sys
from mailbag.cli import process
before = process.open_files()
"""
EXIT = """\
process.exit_now_if_clean(3, before)
print("returned", flush=True)
"""


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "case.py"
    script.write_text(PRELUDE + body + EXIT)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=60
    )


def test_a_clean_process_exits_at_once_with_its_code_and_its_output(tmp_path: Path) -> None:
    # stdout is a pipe here: block-buffered, so only a flush gets this out
    res = _run('sys.stdout.write("x" * 100_000 + "end")\nsys.stderr.write("note")\n', tmp_path)
    assert res.returncode == 3
    assert res.stdout == "x" * 100_000 + "end"  # no "returned": it never came back
    assert res.stderr == "note"


def test_a_file_left_open_makes_it_exit_the_usual_way(tmp_path: Path) -> None:
    out = tmp_path / "left-open.txt"
    res = _run(f"f = open({str(out)!r}, 'w')\nf.write('buffered')\n", tmp_path)
    assert res.returncode == 0 and res.stdout == "returned\n"
    assert out.read_text() == "buffered"  # the usual shutdown flushed and closed it


def test_a_file_opened_and_closed_does_not_matter(tmp_path: Path) -> None:
    out = tmp_path / "closed.txt"
    res = _run(f"with open({str(out)!r}, 'w') as f:\n    f.write('done')\n", tmp_path)
    assert res.returncode == 3 and res.stdout == ""
    assert out.read_text() == "done"


def test_a_descriptor_number_reused_for_another_file_counts_as_open(tmp_path: Path) -> None:
    # a descriptor open before the run, closed, and its number taken by a new file
    script = tmp_path / "case.py"
    script.write_text(
        "import os\n"
        f"fd = os.open({str(tmp_path / 'old.txt')!r}, os.O_WRONLY | os.O_CREAT)\n"
        "from mailbag.cli import process\n"
        "before = process.open_files()\n"
        "os.close(fd)\n"
        f"f = open({str(tmp_path / 'new.txt')!r}, 'w')\n"
        "assert f.fileno() == fd\n"
        "f.write('kept')\n" + EXIT
    )
    res = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=60
    )
    assert res.returncode == 0 and res.stdout == "returned\n", res.stderr
    assert (tmp_path / "new.txt").read_text() == "kept"


def test_an_open_database_makes_it_exit_the_usual_way(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    res = _run(
        f"import sqlite3\nconn = sqlite3.connect({str(db)!r})\n"
        "conn.execute('create table t (x)')\nconn.commit()\n",
        tmp_path,
    )
    assert res.returncode == 0 and res.stdout == "returned\n"


def test_a_running_thread_makes_it_exit_the_usual_way(tmp_path: Path) -> None:
    out = tmp_path / "thread.txt"
    res = _run(
        "import threading, time\n"
        "def work():\n"
        "    time.sleep(0.3)\n"
        f"    open({str(out)!r}, 'w').write('finished')\n"
        "threading.Thread(target=work).start()\n",
        tmp_path,
    )
    assert res.returncode == 0 and res.stdout == "returned\n"
    assert out.read_text() == "finished"  # the usual exit waited for it


def test_an_atexit_handler_makes_it_exit_the_usual_way(tmp_path: Path) -> None:
    res = _run("import atexit\natexit.register(print, 'handler ran')\n", tmp_path)
    assert res.returncode == 0
    assert res.stdout == "returned\nhandler ran\n"


def test_an_unwritable_stdout_makes_it_exit_the_usual_way(tmp_path: Path) -> None:
    script = tmp_path / "case.py"
    script.write_text(PRELUDE + 'sys.stdout.write("lost")\nsys.stdout.close()\n' + EXIT)
    res = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=60
    )
    assert res.returncode != 3  # not the quick exit (printing "returned" then fails)


#: ends with `exit_past_threads(4)`; `Marker`'s finalizer tells whether the interpreter's
#: own shutdown ran (it finalizes module globals), the atexit handler that Python's part
#: of the exit did
PAST_THREADS = """\
import atexit, sys
from mailbag.cli import process
class Marker:
    def __del__(self):
        sys.stdout.write("finalized\\n")
marker = Marker()
atexit.register(print, "atexit ran")
sys.stdout.write("report")  # a pipe: block-buffered, only a flush gets it out
"""
PAST_THREADS_END = """\
process.exit_past_threads(4)
print("returned")
raise SystemExit(4)
"""


def _run_past_threads(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "case.py"
    script.write_text(PAST_THREADS + body + PAST_THREADS_END)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=60
    )


def test_a_daemon_thread_inside_a_tls_handshake_ends_the_process_before_the_c_exit(
    tmp_path: Path,
) -> None:
    # as an early connection a failed sync never took: a handshake with a server that
    # does not answer (OpenSSL's cleanup at the C exit frees what such a thread uses)
    from mailbag.sandbox.certs import make_certs

    ca = make_certs(tmp_path / "certs").ca_file
    res = _run_past_threads(
        "import socket, ssl, threading, time\n"
        "silent = socket.create_server(('127.0.0.1', 0))\n"
        f"ctx = ssl.create_default_context(cafile={str(ca)!r})\n"
        "started = threading.Event()\n"
        "def handshake():\n"
        "    raw = socket.create_connection(silent.getsockname())\n"
        "    started.set()\n"
        "    ctx.wrap_socket(raw, server_hostname='localhost')\n"
        "threading.Thread(target=handshake, daemon=True).start()\n"
        "started.wait()\n"
        "time.sleep(0.05)\n",
        tmp_path,
    )
    assert res.returncode == 4, res.stderr
    # the report reached the pipe and the atexit handler ran; the interpreter's shutdown
    # (and the C exit after it) did not
    assert res.stdout == "reportatexit ran\n"
    assert res.stderr == ""


#: (what runs beside the main thread at the end, what it printed): each then exits the
#: usual way, after `exit_past_threads` returned
USUAL_EXIT_CASES = {
    # waited for, as the usual exit would
    "thread": (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('finished'))).start()\n",
        "finished\n",
    ),
    # its workers stop only when threading's exit handlers tell them to (a plain join of
    # every thread would wait forever)
    "executor": (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "ThreadPoolExecutor(2).submit(sum, [1, 2])\n",
        "",
    ),
    # ended already (it may still be leaving as far as the system is concerned)
    "joined": (
        "import threading\n"
        "t = threading.Thread(target=print, args=('ran',))\n"
        "t.start()\n"
        "t.join()\n",
        "ran\n",
    ),
}


@pytest.mark.parametrize("case", sorted(USUAL_EXIT_CASES))
def test_threads_that_are_not_daemons_are_waited_for_then_the_usual_exit(
    case: str, tmp_path: Path
) -> None:
    body, printed = USUAL_EXIT_CASES[case]
    res = _run_past_threads(body, tmp_path)
    assert res.returncode == 4, res.stderr
    # what the threads printed comes before "returned" (the non-daemon ones were waited
    # for there); then the usual exit: atexit handlers, then the interpreter's shutdown
    assert res.stdout == "report" + printed + "returned\natexit ran\nfinalized\n"


@pytest.mark.parametrize(("code", "ends_with"), [(0, 120), (4, 4)])
def test_a_stdout_that_cannot_be_flushed_at_the_end_is_an_error(
    code: int, ends_with: int, tmp_path: Path
) -> None:
    script = tmp_path / "case.py"
    script.write_text(
        "import sys, threading, time\n"
        "from mailbag.cli import process\n"
        "class Gone:  # a reader that went away\n"
        "    def write(self, text): return len(text)\n"
        "    def flush(self): raise BrokenPipeError(32, 'Broken pipe')\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "sys.stdout = Gone()\n"
        f"process.exit_past_threads({code})\n"
        "sys.__stderr__.write('returned')\n"
    )
    res = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=60
    )
    assert res.returncode == ends_with, res.stderr
    assert "returned" not in res.stderr


@pytest.mark.parametrize("paused", [True, False])
def test_the_collector_resumes_frozen_only_if_it_was_paused_here(
    paused: bool, tmp_path: Path
) -> None:
    script = tmp_path / "case.py"
    script.write_text(
        "import gc\n"
        "from mailbag.cli import process\n"
        f"if {paused}:\n"
        "    process.pause_collector()\n"
        "    assert not gc.isenabled()\n"
        "process.resume_collector()\n"
        "assert gc.isenabled()\n"
        "print(gc.get_freeze_count() > 0)\n"
    )
    res = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(paused)
