"""The argparse parser of the `mailbag` command line (`build_parser`).

Loaded only when a command line is parsed by argparse: a plain `mailbag sync` is
parsed without it (`cli.main`, `cmd_sync.parse_plain`), since importing argparse
(with gettext and locale) and building the parser cost ~4 ms of a re-sync's ~110 ms
of CPU time.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from mailbag import __version__
from mailbag.cli.main import COMMANDS, DESCRIPTION, EPILOG


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
