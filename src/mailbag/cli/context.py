"""What every command gets: where things live and how to talk to the user.

stdout carries data only (one JSON document with --json); human text,
progress and warnings go to stderr.
"""

from __future__ import annotations

import sys

from mailbag.errors import MailbagError
from mailbag.paths import Paths
from mailbag.protocols.trace import NO_TRACE, Transcript
from mailbag.record import Record
from mailbag.textsafe import clean_terminal

TYPE_CHECKING = False
if TYPE_CHECKING:  # (neither loads on the way to a command: start-up time counts)
    import argparse
    from typing import IO, Any


class Context(Record):
    """What every command gets: where things live and how to talk to the user."""

    __slots__ = (
        "_transcript",
        "debug",
        "json",
        "paths",
        "quiet",
        "stderr",
        "stdout",
        "trace_file",
        "verbose",
    )
    _hidden = ("_transcript",)
    paths: Paths
    json: bool
    quiet: bool
    verbose: int
    debug: bool
    trace_file: str | None
    stdout: IO[str]
    stderr: IO[str]
    _transcript: Transcript | None

    def __init__(
        self,
        paths: Paths,
        json: bool = False,
        quiet: bool = False,
        verbose: int = 0,
        debug: bool = False,
        trace_file: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        _transcript: Transcript | None = None,
    ) -> None:
        self.paths = paths
        self.json = json
        self.quiet = quiet
        self.verbose = verbose
        self.debug = debug
        self.trace_file = trace_file
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self._transcript = _transcript

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        return cls(
            paths=Paths.from_env(),
            json=bool(getattr(args, "json", False)),
            quiet=bool(getattr(args, "quiet", False)),
            verbose=int(getattr(args, "verbose", 0) or 0),
            debug=bool(getattr(args, "debug", False)),
            trace_file=getattr(args, "trace", None),
        )

    @property
    def interactive(self) -> bool:
        return self.stdout.isatty()

    def out(self, text: str = "") -> None:
        """A line of human output on stdout (text that is data, e.g. a listing)."""
        print(clean_terminal(text, keep_newlines=True), file=self.stdout)

    def info(self, text: str) -> None:
        if not self.quiet:
            print(clean_terminal(text, keep_newlines=True), file=self.stderr)

    def warn(self, text: str) -> None:
        print(f"mailbag: warning: {clean_terminal(text)}", file=self.stderr)

    def emit_json(self, document: Any) -> None:
        import json  # here: most runs print no JSON, and start-up time counts

        json.dump(document, self.stdout, ensure_ascii=False, indent=2, default=str)
        self.stdout.write("\n")

    def error(self, exc: MailbagError) -> None:
        line = f"mailbag: error: {clean_terminal(exc.message)}"
        if exc.hint:
            line += f"\n  hint: {clean_terminal(exc.hint)}"
        print(line, file=self.stderr)

    @property
    def transcript(self) -> Transcript:
        """Where protocol clients write their lines (`--trace FILE`; else nowhere)."""
        if self.trace_file is None:
            return NO_TRACE
        if self._transcript is None:
            self._transcript = Transcript(self.trace_file)
        return self._transcript

    def close(self) -> None:
        self.stdout.flush()
        if self._transcript is not None:
            self._transcript.close()
