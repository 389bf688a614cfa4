"""Secrets: the system keyring, a password command, or standard input.

Secrets never go into `config.toml`, logs or error messages. When no keyring
backend works (keyring's fail/null backend, as on a headless machine) this
module says so and names the alternatives; it never falls back to writing a
plaintext file by itself.
"""

from __future__ import annotations

import os
import sys
import time

from mailbag.config.model import Account, SecretRef, SecretSource
from mailbag.errors import SecretError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Literal

__all__ = [
    "SERVICE",
    "Which",
    "delete_secret",
    "get_secret",
    "keyring_problem",
    "read_secret_stream",
    "require_keyring",
    "run_password_command",
    "secret_ref",
    "store_secret",
]

#: the keyring "service" every mailbag secret is stored under
SERVICE = "mailbag"
if TYPE_CHECKING:
    Which = Literal["incoming", "smtp"]
else:
    Which = str  # (at run time only a name: typing is not loaded)
#: characters that need a shell; commands without them run directly
_SHELL_SYNTAX = set("|&;<>()$`\\\n*?[]{}~")
_QUOTES = frozenset("'\"")
COMMAND_TIMEOUT = 120.0

NO_KEYRING_HINT = (
    "use --password-command CMD (any command that prints the password, e.g. "
    "'pass show mail/work'), or --password-stdin; or install a keyring backend "
    "deliberately (a desktop Secret Service such as GNOME Keyring or KWallet, or "
    "'pip install keyrings.alt', which keeps passwords in a file you must protect)"
)


def secret_ref(account: Account, which: Which) -> SecretRef:
    if which == "incoming":
        return account.incoming.secret
    if which == "smtp":
        return account.smtp.secret
    raise ValueError(f"unknown secret {which!r}")


def keyring_problem() -> str | None:
    """Why the keyring cannot be used, or None when a real backend is active.

    Every keyring access here and in `mailbag.auth.tokens` asks this first, so it is
    where the backend gets resolved: through `keyring_backend.active_backend`, which
    remembers keyring's choice between runs (the search costs ~50-110 ms)."""
    from mailbag.config.keyring_backend import active_backend, load_keyring

    load_keyring()
    from keyring.backends import chainer, fail, null

    backend = active_backend()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if isinstance(backend, fail.Keyring):
        return f"no system keyring backend is available on this machine ({name})"
    if isinstance(backend, null.Keyring):
        return f"the keyring is disabled ({name})"
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return f"no system keyring backend is available on this machine ({name})"
    return None


def require_keyring() -> None:
    problem = keyring_problem()
    if problem is not None:
        raise SecretError(problem, hint=NO_KEYRING_HINT, cause="no-keyring")


def store_secret(ref: SecretRef, secret: str) -> None:
    """Put `secret` into the keyring entry `ref` names (only keyring refs can be stored)."""
    if ref.source is not SecretSource.KEYRING:
        raise SecretError(f"a {ref.source.value} secret cannot be stored")
    require_keyring()
    import keyring
    from keyring.errors import KeyringError

    try:
        keyring.set_password(SERVICE, ref.key, secret)
    except KeyringError as exc:
        raise SecretError(
            f"the keyring refused to store the password: {exc}",
            hint="unlock your keyring and try again, or " + NO_KEYRING_HINT,
            cause="keyring",
        ) from exc


def delete_secret(ref: SecretRef) -> bool:
    """Remove a keyring entry; True if there was one. Other sources are left alone."""
    if ref.source is not SecretSource.KEYRING or keyring_problem() is not None:
        return False
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    try:
        keyring.delete_password(SERVICE, ref.key)
    except PasswordDeleteError:
        return False
    except KeyringError as exc:
        raise SecretError(f"the keyring refused to delete the password: {exc}") from exc
    return True


def get_secret(account: Account, which: Which) -> str:
    """The account's password (or token) for `which` server."""
    ref = secret_ref(account, which)
    if ref.source is SecretSource.COMMAND:
        return run_password_command(ref.key)
    if ref.source is SecretSource.NONE:
        raise SecretError(
            f"account {account.name!r} has no {which} password configured",
            hint=f"set one with: mailbag account set-password {account.name}"
            + (" --smtp" if which == "smtp" else ""),
        )
    require_keyring()
    import keyring
    from keyring.errors import KeyringError

    try:
        secret = keyring.get_password(SERVICE, ref.key)
    except KeyringError as exc:
        raise SecretError(
            f"cannot read the password of {account.name!r} from the keyring: {exc}",
            hint="unlock your keyring and try again",
            cause="keyring",
        ) from exc
    if secret is None:
        raise SecretError(
            f"no password for {account.name!r} ({which}) in the keyring",
            hint=f"store it with: mailbag account set-password {account.name}"
            + (" --smtp" if which == "smtp" else ""),
            cause="missing",
        )
    return secret


def _argv(command: str) -> list[str]:
    if set(command) & _SHELL_SYNTAX:
        return ["/bin/sh", "-c", command]
    if command.isprintable() and not set(command) & _QUOTES:
        # what shlex.split gives for words without quotes (and, here, without
        # backslashes), split at spaces; the shlex module (~0.5 ms) loads for the others
        argv = command.split(" ")
        argv = [word for word in argv if word]
        if not argv:
            raise SecretError("the password command is empty")
        return argv
    import shlex

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise SecretError(f"cannot parse password command: {exc}") from exc
    if not argv:
        raise SecretError("the password command is empty")
    return argv


def _run_captured(argv: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of `argv` run to its end, as `subprocess.run(argv,
    capture_output=True, timeout=timeout)` gives them (a status below 0: killed by that
    signal), in a few lines of `os`: the `subprocess` module (with `selectors` and
    `signal`) takes ~2.5 ms to load, and a `mailbag sync` loads it for nothing else.
    Raises what starting the program raises (FileNotFoundError...), and TimeoutError
    when it has not ended within `timeout` (it is killed then)."""
    import select

    signal = _signal_numbers()
    out_r, out_w = os.pipe()  # (not inherited: the child gets them as 1 and 2 only)
    err_r, err_w = os.pipe()
    try:
        dup2 = os.POSIX_SPAWN_DUP2
        pid = os.posix_spawnp(
            argv[0],
            argv,
            os.environ,
            file_actions=[(dup2, out_w, 1), (dup2, err_w, 2)],
            # the signals Python ignores, as the command expects them (`restore_signals`)
            setsigdef=[getattr(signal, n) for n in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, n)],
        )
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout
    try:
        poller = select.poll()
        for fd in chunks:
            poller.register(fd, select.POLLIN)
        open_fds = len(chunks)
        status: int | None = None
        while status is None:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TimeoutError
            if open_fds:
                for fd, _ in poller.poll(left * 1000):
                    data = os.read(fd, 65536)
                    if data:
                        chunks[fd].append(data)
                    else:  # (its end: the command closed it, or ended)
                        poller.unregister(fd)
                        open_fds -= 1
            else:  # both closed: the command ends (or closed them and goes on)
                done, raw = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = os.waitstatus_to_exitcode(raw)
                else:
                    time.sleep(0.001)
    finally:
        os.close(out_r)
        os.close(err_r)
    return status, b"".join(chunks[out_r]), b"".join(chunks[err_r])


def _signal_numbers() -> Any:
    """The signal numbers, from `_signal`, the C module the interpreter loaded as it
    started: the `signal` module over it makes enum classes of them as it loads (~1 ms
    of a `mailbag sync`, where nothing else needs it). Taken from `sys.modules`: even
    the `importlib` package is ~0.5M instructions to load, for one look-up."""
    loaded = sys.modules.get("_signal")
    if loaded is not None:
        return loaded
    import importlib

    return importlib.import_module("_signal")


def run_password_command(command: str, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run `command` (without a shell unless it uses shell syntax); first stdout line."""
    argv = _argv(command)
    try:
        returncode, stdout, stderr = _run_captured(argv, timeout)
    except FileNotFoundError as exc:
        raise SecretError(
            f"password command not found: {argv[0]!r}",
            hint="check the command (is the program installed and on PATH?)",
            cause="command",
        ) from exc
    except TimeoutError as exc:
        raise SecretError(
            f"password command did not finish within {timeout:.0f} s: {command!r}",
            hint="does it wait for input? it must print the password and exit",
            cause="command",
        ) from exc
    except OSError as exc:
        raise SecretError(f"cannot run password command {command!r}: {exc.strerror}") from exc
    if returncode != 0:
        # stderr is the command's own message; stdout may hold a secret and is never shown
        err = stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {err[-1][:300]}" if err else ""
        raise SecretError(
            f"password command {command!r} failed with exit status {returncode}{detail}",
            hint="run the command yourself to see what it needs",
            cause="command",
        )
    try:
        out = stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SecretError(f"password command {command!r} printed something not UTF-8") from exc
    line = out.split("\n", 1)[0].rstrip("\r")
    if not line:
        raise SecretError(
            f"password command {command!r} printed no password",
            hint="the first line of its output is used as the password",
            cause="command",
        )
    return line


def read_secret_stream(stream: IO[str]) -> str:
    """`--password-stdin`: the first line of the stream, without its line ending."""
    line = stream.readline()
    secret = line.rstrip("\r\n")
    if not secret:
        raise SecretError(
            "--password-stdin was given but standard input had no password",
            hint="pipe the password in, e.g.: pass show mail/work | mailbag ... --password-stdin",
        )
    return secret
