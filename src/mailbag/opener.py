"""Open a file with the desktop's handler for its type (an attachment the user asked to see).

`$MAILBAG_OPENER` wins (a command line, split like a shell would, with the
file appended as the last argument), else `xdg-open` (Linux, BSD) or `open`
(macOS). The command runs without a shell, detached from the terminal, with
no access to it: a viewer must not draw over the interactive client or read
its keys. Nothing here decides what is safe to open; the file name is already
safe (`message.attachments.safe_filename`) and lives in a private folder.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from mailbag.errors import UsageError

__all__ = ["open_file", "open_url", "opener_command"]


def opener_command(env: dict[str, str] | None = None) -> list[str]:
    """The command (without the file) that opens files here; UsageError if none."""
    env = dict(os.environ) if env is None else env
    configured = env.get("MAILBAG_OPENER", "").strip()
    if configured:
        try:
            argv = shlex.split(configured)
        except ValueError as exc:
            raise UsageError(
                f"cannot read MAILBAG_OPENER: {exc}", hint="for example MAILBAG_OPENER='xdg-open'"
            ) from exc
        if argv:
            return argv
    default = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(default, path=env.get("PATH")) is None:
        raise UsageError(
            f"no program to open files with ({default} is not installed)",
            hint="set MAILBAG_OPENER to a viewer command, or save the attachment instead",
        )
    return [default]


def open_url(url: str, env: dict[str, str] | None = None) -> bool:
    """Open a web page (an OAuth2 sign-in) with the same handler; False when there is
    none, so the caller shows the address instead."""
    try:
        _start([*opener_command(env), url], env)
    except UsageError:
        return False
    return True


def open_file(path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the handler on `path` and return at once (the viewer keeps running)."""
    return _start([*opener_command(env), str(path)], env)


def _start(argv: list[str], env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    except OSError as exc:
        raise UsageError(
            f"cannot start {argv[0]}: {exc.strerror}",
            hint="check MAILBAG_OPENER, or save the attachment instead",
        ) from exc
    # reaped in the background: no zombie, and the caller never waits for the viewer
    threading.Thread(target=proc.wait, name="opener-wait", daemon=True).start()
    return proc
