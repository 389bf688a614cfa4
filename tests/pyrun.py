"""Running a piece of test code in a fresh interpreter (what a process loads or
compiles at start-up cannot be seen in the test's own, which pytest has filled)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def python_words(code: str, *, cwd: Path | None = None) -> list[str]:
    """Run `code` (dedented) with this interpreter; the words it printed. It must exit 0."""
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.split()
