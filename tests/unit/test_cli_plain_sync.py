"""A plain `mailbag sync` command line is parsed without argparse (`cli.main._parse_plain`,
`cmd_sync.parse_plain`): the values must be argparse's, and anything else must be left
to argparse (which parses it or explains what it refuses)."""

from __future__ import annotations

import random
import subprocess
import sys
from typing import Any

import pytest

from mailbag.cli.main import _command_of, _parse_plain, build_parser


def _argparse(argv: list[str]) -> dict[str, Any] | None:
    """What argparse makes of `argv` (None: it refuses it)."""
    try:
        return vars(build_parser(_command_of(argv)).parse_args(argv))
    except SystemExit:
        return None


def _plain(argv: list[str]) -> dict[str, Any] | None:
    ns = _parse_plain(_command_of(argv), argv)
    return None if ns is None else vars(ns)


PLAIN = [
    ["sync"],
    ["sync", "-q"],
    ["sync", "--quiet"],
    ["-q", "sync"],
    ["--json", "sync", "work", "home"],
    ["sync", "work", "--folder", "INBOX", "--folder=Work/*", "--force"],
    ["sync", "--connections", "2", "--wait=1.5", "-v", "--debug"],
    ["sync", "--connections=12", "--wait", "30", "a", "b", "c"],
    ["-vv", "sync", "-v"],  # the command's -v wins, as argparse has it: verbose 1
    ["-v", "--verbose", "sync"],
    ["--debug", "-q", "sync", "--json", "x=y"],
    ["sync", "--folder", "a=b", "-vvv"],
    ["sync", "--connections", "0"],  # (refused later, by run_sync, as before)
]

NOT_PLAIN = [
    ["sync", "a", "--force", "b"],  # names in two runs: argparse refuses it
    ["sync", "--folder", "-x"],
    ["sync", "--folder="],
    ["sync", "--folder"],
    ["sync", "--connections", "many"],
    ["sync", "--wait", "soon"],
    ["sync", "--forc"],  # an abbreviation
    ["sync", "--force=yes"],
    ["sync", "-qv"],
    ["sync", "-h"],
    ["sync", "--help"],
    ["sync", "--", "a"],
    ["sync", ""],
    ["--trace", "t", "sync"],
    ["sync", "--trace=t"],
    ["--tr", "t", "sync"],
    ["sync", "--version"],
    ["folders"],
    ["list"],
    [],
]


@pytest.mark.parametrize("argv", PLAIN)
def test_a_plain_sync_command_line_gets_argparse_values_without_argparse(argv: list[str]) -> None:
    plain = _plain(argv)
    assert plain is not None
    assert plain == _argparse(argv)


@pytest.mark.parametrize("argv", NOT_PLAIN)
def test_other_command_lines_are_left_to_argparse(argv: list[str]) -> None:
    assert _plain(argv) is None


def test_random_command_lines_parse_as_argparse_parses_them() -> None:
    words = [
        "sync",
        "a",
        "b",
        "-q",
        "--quiet",
        "-v",
        "-vv",
        "--verbose",
        "--json",
        "--debug",
        "--force",
        "--folder",
        "--folder=X",
        "INBOX",
        "--connections",
        "--connections=3",
        "3",
        "-1",
        "--wait",
        "--wait=0.5",
        "0.5",
        "--trace",
        "--",
        "-h",
        "--f",
        "",
    ]
    rng = random.Random(4)
    plain_seen = 0
    for _ in range(3000):
        argv = [rng.choice(words) for _ in range(rng.randint(0, 6))]
        if rng.random() < 0.7:
            argv.insert(rng.randint(0, min(2, len(argv))), "sync")
        plain = _plain(argv)
        if plain is not None:
            plain_seen += 1
            assert plain == _argparse(argv), argv
    assert plain_seen > 300  # (the fast path is taken often enough to be tested)


def test_a_plain_sync_loads_neither_argparse_nor_the_sending_code(tmp_path: Any) -> None:
    code = (
        "import sys\n"
        "from mailbag.cli.main import main\n"
        "code = main(['sync', '-q'])\n"
        "print(code, ' '.join(sorted(sys.modules)))\n"
    )
    env = {"MAILBAG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    code_text, *loaded = res.stdout.split()
    assert code_text == "2", res.stderr  # (no account configured: a usage error)
    assert "mailbag.cli.cmd_sync" in loaded
    for name in ("argparse", "gettext", "mailbag.cli.parser", "mailbag.cli.cmd_send"):
        assert name not in loaded
    # while the help still comes from argparse
    res = subprocess.run(
        [sys.executable, "-m", "mailbag", "sync", "--help"], capture_output=True, text=True
    )
    assert res.returncode == 0 and "--connections N" in res.stdout
