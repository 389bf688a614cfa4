"""Entry point: parse arguments, call the library, render the result.

Startup must stay fast (`mailbag --version` well under 150 ms), so this module
imports only argparse; each command module imports what it needs when it runs.
Commands are listed in `COMMANDS`; each module provides `register(subparsers)`
which adds its parser and sets `run` as the handler.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mailbag import __version__
from mailbag.cli import process
from mailbag.cli.context import Context
from mailbag.errors import MailbagError

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


def _columns() -> int:
    """`shutil.get_terminal_size().columns`, which argparse asks for every parser it
    builds: importing shutil loads the zlib, bz2 and lzma modules, a few milliseconds of
    a command that takes a hundred."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Width:
    """A help formatter as wide as the terminal, measured without shutil (`_columns`)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        width = _columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)  # type: ignore[call-arg]


class _Help(_Width, argparse.HelpFormatter):
    pass


class _RawHelp(_Width, argparse.RawDescriptionHelpFormatter):
    pass


_SIZED: dict[type, type] = {
    argparse.HelpFormatter: _Help,
    argparse.RawDescriptionHelpFormatter: _RawHelp,
}


def _global_options(*, defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name. The subcommands'
    copy has no defaults, so `mailbag --trace F send` keeps the F given before."""
    common = argparse.ArgumentParser(
        add_help=False,
        argument_default=None if defaults else argparse.SUPPRESS,
        formatter_class=_Help,
    )
    g = common.add_argument_group("global options")
    g.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if defaults else argparse.SUPPRESS,
        help="more detail on stderr (repeatable)",
    )
    g.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    g.add_argument(
        "--trace",
        metavar="FILE",
        help="write the protocol transcript to FILE (credentials redacted)",
    )
    return common


class _Sink:
    """Takes the place of the parsers of the commands not being run (see `build_parser`):
    whatever a `register` adds to it is dropped."""

    def __getattr__(self, name: str) -> Callable[..., _Sink]:
        return self._ignore

    def _ignore(self, *args: object, **kwargs: object) -> _Sink:
        return self


class _OneCommand:
    """The subparsers action as `register` sees it when only `command` is wanted."""

    def __init__(self, real: Any, command: str) -> None:
        self.real = real
        self.command = command
        self.found = False

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self.command == name or self.command in kwargs.get("aliases", ()):
            self.found = True
            given = kwargs.get("formatter_class", argparse.HelpFormatter)
            kwargs["formatter_class"] = _SIZED.get(given, given)
            return self.real.add_parser(name, **kwargs)
        return _Sink()


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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `command`, one where only that command is built
    (argparse takes ~15 ms to build all of them, a tenth of a no-op `mailbag sync`).
    A `command` no module registers gets the whole parser (and its error message)."""
    common = _global_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="mailbag",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_RawHelp,
        parents=[_global_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"mailbag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    one = _OneCommand(sub, command) if command is not None else None
    modules = list(COMMANDS)
    if one is not None and f"cmd_{command}" in modules:
        # the module named after the command usually registers it: try that one first
        modules.remove(f"cmd_{command}")
        modules.insert(0, f"cmd_{command}")
    for name in modules:
        module = importlib.import_module(f"mailbag.cli.{name}")
        module.register(one or sub, common)
        if one is not None and one.found:
            break
    if one is not None and not one.found:
        return build_parser()
    return parser


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
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (mailbag completion)
        import argcomplete

        parser = build_parser()
        argcomplete.autocomplete(parser)
    else:
        parser = build_parser(_command_of(args_list))
    args = parser.parse_args(args_list)
    if not getattr(args, "command", None):
        if sys.stdin.isatty() and sys.stdout.isatty():
            # plain `mailbag` on a terminal opens the interactive client
            args = parser.parse_args(["tui", *args_list])
        else:
            parser.print_help(sys.stderr)
            return 2, False
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
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141, False
    finally:
        ctx.close()


def entry() -> int:
    """The `mailbag` program (console script, `python -m mailbag`): `main`, then a quick exit.

    The collector is paused while the command loads (`process.pause_collector`). A
    command that allows it (`set_defaults(quick_exit=True)`) and succeeded ends here
    when nothing is left for the interpreter's shutdown to do
    (`process.exit_now_if_clean`). Otherwise what is left is that shutdown, whose
    collections walk every object the imports made (about 10 ms): frozen objects are
    skipped by them. Objects are still released and finalized as usual; files and
    connections were closed by `main`, and sys.stdout/stderr are flushed at exit as
    always."""
    before = process.open_files()
    process.program = True
    process.pause_collector()
    code, quick_exit = _run(None)
    if quick_exit and code == 0:
        process.exit_now_if_clean(code, before)
    gc.freeze()
    return code


if __name__ == "__main__":
    raise SystemExit(entry())
