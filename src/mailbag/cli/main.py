"""Entry point: parse arguments, call the library, render the result.

Startup must stay fast (`mailbag --version` well under 150 ms), so this module
imports neither argparse nor typing; the parser is built by `cli.parser` when a
command line needs it, and each command module imports what it needs when it runs.
Commands are listed in `COMMANDS`; each module provides `register(subparsers)`
which adds its parser and sets `run` as the handler. A plain `mailbag sync` (only
its own options, written out in full) is parsed without argparse
(`cmd_sync.parse_plain`): argparse, gettext and locale load in ~2 ms and the
parser takes ~2 ms more to build, of a re-sync's ~110 ms of CPU time.
"""

from __future__ import annotations

import gc
import os
import sys

from mailbag import __version__
from mailbag.cli import process
from mailbag.errors import MailbagError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

# module name under mailbag.cli -> registers one or more subcommands
# Keep one per line, sorted: several people add commands at once.
COMMANDS: tuple[str, ...] = (
    "cmd_account",
    "cmd_autoconfig",
    "cmd_completion",
    "cmd_demo",
    "cmd_read",
    "cmd_send",
    "cmd_sync",
    "cmd_tui",
    "cmd_watch",
)

DESCRIPTION = """\
mailbag: email for the terminal and for scripts.

Add an account (settings found from the address, or given by hand), test it,
sync IMAP or download POP3 mail into a local Maildir, then read, search and send.

Try it without an account:  mailbag demo
"""

EPILOG = """\
environment:
  MAILBAG_HOME   keep config, secrets fallback, mail, state and logs under this folder

exit codes: 0 success, 1 the operation ran and failed, 2 usage or configuration error
"""


#: what may come before the command name for `_command_of` to trust its guess
_FLAGS = frozenset({"--json", "-q", "--quiet", "-v", "--verbose", "--debug"})


def _command_of(argv: Sequence[str]) -> str | None:
    """The command name in argv when only global options precede it, else None."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--trace":
            skip = True
        elif arg in _FLAGS or arg.startswith("--trace=") or arg.strip("v") == "-":
            continue
        elif arg.startswith("-"):
            return None  # an abbreviation or anything unusual: the full parser decides
        else:
            return arg
    return None


def _plain_global(arg: str, into: dict[str, Any]) -> bool:
    """Set global option `arg` in `into` as argparse does (`cli.parser._global_options`);
    False when `arg` is not one a plain command line may have (`--trace` is left to
    argparse, as is any abbreviation or combination of short options)."""
    if arg == "--json":
        into["json"] = True
    elif arg in ("-q", "--quiet"):
        into["quiet"] = True
    elif arg == "--debug":
        into["debug"] = True
    elif arg == "--verbose" or (len(arg) > 1 and arg.strip("v") == "-"):
        into["verbose"] = into.get("verbose", 0) + (1 if arg == "--verbose" else len(arg) - 1)
    else:
        return False
    return True


def _parse_plain(command: str | None, argv: Sequence[str]) -> Any | None:
    """The values argparse would give for a plain `mailbag sync` command line, parsed
    without it; None for any other command line (argparse parses it, and explains what
    it refuses). The command's own options are `cmd_sync.parse_plain`'s. As with
    argparse, a global option given after the command name wins over the same one
    given before it (the subcommand's copies have no defaults)."""
    if command != "sync":
        return None
    from types import SimpleNamespace

    from mailbag.cli.cmd_sync import parse_plain

    before: dict[str, Any] = {
        "json": False,
        "quiet": False,
        "verbose": 0,
        "debug": False,
        "trace": None,
    }
    at = list(argv).index(command)
    if not all(_plain_global(arg, before) for arg in argv[:at]):
        return None
    after: dict[str, Any] = {}
    own = parse_plain(argv[at + 1 :], lambda arg: _plain_global(arg, after))
    if own is None:
        return None
    return SimpleNamespace(**{**before, **after, "command": command, **own})


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argparse parser (`cli.parser.build_parser`; loaded only when needed)."""
    from mailbag.cli.parser import build_parser as build

    return build(command)


def main(argv: Sequence[str] | None = None) -> int:
    return _run(argv)[0]


def _run(argv: Sequence[str] | None) -> tuple[int, bool]:
    """`main`; also whether the command allows a quick exit after success (`entry`)."""
    try:
        return _run_command(argv)
    finally:
        process.resume_collector()


def _run_command(argv: Sequence[str] | None) -> tuple[int, bool]:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--version"]:
        # fast path: no parser, no command modules
        print(f"mailbag {__version__}")
        return 0, False
    parser: argparse.ArgumentParser | None = None
    args: Any
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (mailbag completion)
        import argcomplete

        parser = build_parser()
        argcomplete.autocomplete(parser)
        args = parser.parse_args(args_list)
    else:
        command = _command_of(args_list)
        args = _parse_plain(command, args_list)
        if args is None:
            parser = build_parser(command)
            args = parser.parse_args(args_list)
    if not getattr(args, "command", None):
        assert parser is not None  # (a plain command line names its command)
        if sys.stdin.isatty() and sys.stdout.isatty():
            # plain `mailbag` on a terminal opens the interactive client
            args = parser.parse_args(["tui", *args_list])
        else:
            parser.print_help(sys.stderr)
            return 2, False
    from mailbag.cli.context import Context  # (here: see `entry`)

    ctx = Context.from_args(args)
    if not getattr(args, "collects_late", False):
        # the handler's own imports run with the collector on, as anywhere else
        process.resume_collector()
    quick_exit = bool(getattr(args, "quick_exit", False))
    try:
        code: int = args.run(args, ctx)
        return code, quick_exit
    except MailbagError as exc:
        if ctx.debug:
            raise
        ctx.error(exc)
        return exc.exit_code, False
    except KeyboardInterrupt:
        print("mailbag: interrupted", file=sys.stderr)
        return 130, False
    except BrokenPipeError:
        # the reader went away (`mailbag list | head`): stop quietly, as git does;
        # stdout now points nowhere so the final flush cannot fail again
        import contextlib

        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141, False
    finally:
        ctx.close()


def entry() -> int:
    """The `mailbag` program (console script, `python -m mailbag`): `main`, then a quick exit.

    The collector is paused while the command loads (`process.pause_collector`): this
    module loads only what `entry` needs to get there, so that all the rest loads paused
    (the context's paths, pathlib, threading, re: ~4M fewer instructions per sync). A
    command that allows it (`set_defaults(quick_exit=True)`) and succeeded ends here
    when nothing is left for the interpreter's shutdown to do
    (`process.exit_now_if_clean`). Otherwise what is left is that shutdown, whose
    collections walk every object the imports made (about 10 ms): frozen objects are
    skipped by them. Objects are still released and finalized as usual; files and
    connections were closed by `main`, and sys.stdout/stderr are flushed at exit as
    always. A daemon thread still running then (an early connection nobody took) ends
    it after Python's part of the exit (`process.exit_past_threads`)."""
    before = process.open_files()
    process.program = True
    process.pause_collector()
    code, quick_exit = _run(None)
    if quick_exit and code == 0:
        process.exit_now_if_clean(code, before)
    process.exit_past_threads(code)  # (returns when no thread but this one runs)
    gc.freeze()
    return code


if __name__ == "__main__":
    raise SystemExit(entry())
