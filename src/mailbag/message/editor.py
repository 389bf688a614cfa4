"""Running the user's editor on a text, for every front end (CLI compose, TUI compose).

The editor is $EDITOR, then $VISUAL, then the first of editor/nano/vi found on
PATH. The text lives in a private file (0600) under the given work directory,
not in a shared /tmp, and is removed once read back.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from mailbag.errors import UsageError

__all__ = ["FALLBACK_EDITORS", "edit_text", "editor_command", "keep_text"]

FALLBACK_EDITORS = ("editor", "nano", "vi")


def editor_command() -> list[str]:
    for var in ("EDITOR", "VISUAL"):
        value = os.environ.get(var, "").strip()
        if value:
            return shlex.split(value)
    for name in FALLBACK_EDITORS:
        found = shutil.which(name)
        if found:
            return [found]
    raise UsageError(
        "no editor found",
        hint="set EDITOR (e.g. export EDITOR=nano), or use `mailbag send` with --body",
    )


def edit_text(text: str, workdir: Path) -> str:
    """Open `text` in the editor and return what the user saved."""
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix="message-", suffix=".eml", dir=workdir)
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        cmd = [*editor_command(), str(path)]
        try:
            code = subprocess.call(cmd)
        except OSError as exc:
            raise UsageError(
                f"cannot run the editor {cmd[0]!r}: {exc.strerror or exc}",
                hint="check the EDITOR / VISUAL environment variables",
            ) from exc
        if code != 0:
            kept = workdir / f"kept-{path.name}"
            path.replace(kept)
            raise UsageError(
                f"the editor exited with status {code}; nothing was sent",
                hint=f"your text is kept in {kept}",
            )
        return path.read_text(encoding="utf-8")
    finally:
        path.unlink(missing_ok=True)


def keep_text(text: str, workdir: Path) -> Path:
    """Save text the user wrote but that cannot be used, so it is never lost."""
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix="kept-", suffix=".txt", dir=workdir)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(name)
