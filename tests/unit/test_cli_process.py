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
