"""`config.keyring_backend.deferring`: the modules keyring loads but a password read
never runs are imported deferred (their code runs when first used, once, in any
thread). Each case runs in a fresh interpreter, with throwaway modules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pyrun import python_words

PRELUDE = """\
import sys, threading
from mailbag.config.keyring_backend import deferring
"""


def _run(tmp_path: Path, code: str) -> list[str]:
    return python_words(PRELUDE + textwrap.dedent(code), cwd=tmp_path)


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    """Throwaway modules; each counts the runs of its code in `ran.txt`."""
    count = "open('ran.txt', 'a').write(__name__ + ' ')\n"
    (tmp_path / "mb_slow.py").write_text(count + "import time\ntime.sleep(0.2)\nVALUE = 42\n")
    (tmp_path / "mb_fails.py").write_text(count + "raise RuntimeError('broken')\n")
    (tmp_path / "mb_user.py").write_text("import mb_slow\n\ndef use():\n    return mb_slow.VALUE\n")
    (tmp_path / "mb_native.py").write_text(count + "VALUE = 1\n")
    (tmp_path / "mb_self.py").write_text(
        "import sys\nFIRST = 1\nme = sys.modules[__name__]\n"
        "SEEN = me.FIRST\ntry:\n    me.LATER\nexcept AttributeError:\n    MISSING = True\n"
        "LATER = 2\n"
    )
    return tmp_path


def test_a_deferred_module_runs_when_first_used_and_only_once(modules: Path) -> None:
    out = _run(
        modules,
        """
        with deferring(frozenset({"mb_slow"})):
            import mb_user
            import mb_slow
        import os
        print(type(sys.modules["mb_slow"]).__name__, os.path.exists("ran.txt"))
        print(mb_user.use())
        from mb_slow import VALUE
        import mb_slow as again
        print(VALUE, type(again).__name__, open("ran.txt").read().split())
        """,
    )
    assert out == ["_Deferred", "False", "42", "42", "module", "['mb_slow']"]


def test_threads_reading_it_at_once_all_wait_for_one_run(modules: Path) -> None:
    out = _run(
        modules,
        """
        with deferring(frozenset({"mb_slow"})):
            import mb_slow
        got = []
        threads = [threading.Thread(target=lambda: got.append(mb_slow.VALUE)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(got.count(42), open("ran.txt").read().split())
        """,
    )
    assert out == ["8", "['mb_slow']"]


def test_a_module_whose_code_fails_raises_where_used_and_is_not_kept(modules: Path) -> None:
    out = _run(
        modules,
        """
        with deferring(frozenset({"mb_fails"})):
            import mb_fails
        try:
            mb_fails.anything
        except RuntimeError as exc:
            print(exc, "mb_fails" in sys.modules)
        try:  # (the failed module's object, as after a failed import: not run again)
            mb_fails.anything
        except AttributeError:
            print("attribute-error")
        try:
            import mb_fails
        except RuntimeError as exc:
            print("again", exc, open("ran.txt").read().split())
        """,
    )
    assert out == [
        "broken",
        "False",
        "attribute-error",
        "again",
        "broken",
        "['mb_fails',",
        "'mb_fails']",
    ]


def test_only_the_named_modules_are_deferred_and_only_while_in_it(modules: Path) -> None:
    out = _run(
        modules,
        """
        with deferring(frozenset({"mb_slow"})):
            import mb_native
        print(type(sys.modules["mb_native"]).__name__)
        import mb_slow
        print(type(sys.modules["mb_slow"]).__name__)
        """,
    )
    assert out == ["module", "module"]


def test_a_module_reading_itself_as_it_runs_sees_what_it_has_so_far(modules: Path) -> None:
    out = _run(
        modules,
        """
        with deferring(frozenset({"mb_self"})):
            import mb_self
        print(mb_self.SEEN, mb_self.MISSING, mb_self.LATER)
        """,
    )
    assert out == ["1", "True", "2"]
