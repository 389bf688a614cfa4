"""Running a piece of test code in a fresh interpreter (what a process loads or
compiles at start-up cannot be seen in the test's own, which pytest has filled)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path


def python_words(
    code: str, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """Run `code` (dedented) with this interpreter and `args` as its `sys.argv[1:]` (and
    `env`, if given, as its whole environment); the words it printed. It must exit 0."""
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.split()
