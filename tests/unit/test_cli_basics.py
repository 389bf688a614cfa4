"""The command-line contract's global behaviour: version, help, exit codes, startup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from mailbag import __version__
from mailbag.cli.main import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mailbag {__version__}"


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "MAILBAG_HOME" in out and "exit codes" in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_completion_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert main(["completion", shell]) == 0
        assert "mailbag" in capsys.readouterr().out


def test_python_dash_m_and_fast_version() -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "mailbag", "--version"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0 and res.stdout.strip() == f"mailbag {__version__}"
    # `--version` must not pull in the heavy modules (measured by what gets imported,
    # not by wall time, which is noisy on shared machines)
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from mailbag.cli.main import main; main(['--version']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('ssl','email','sqlite3','httpx','keyring','dns','rich','tomlkit','asyncio')))",
        ],
        capture_output=True,
        text=True,
    )
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout


def test_version_wall_time_is_reported() -> None:
    # Not a benchmark: a loose bound that only catches a gross regression
    # (an eager heavy import adds hundreds of ms).
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mailbag", "--version"], check=True, capture_output=True)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "argv",
    [["--trace", "T", "--json", "-q", "demo"], ["demo", "--trace", "T", "--json", "-q"]],
)
def test_global_options_before_or_after_the_command(argv: list[str]) -> None:
    from mailbag.cli.main import build_parser

    ns = build_parser().parse_args(argv)
    assert (ns.trace, ns.json, ns.quiet, ns.verbose) == ("T", True, True, 0)


def test_global_option_defaults() -> None:
    from mailbag.cli.main import build_parser

    ns = build_parser().parse_args(["demo"])
    assert (ns.trace, ns.json, ns.quiet, ns.verbose, ns.debug) == (None, False, False, 0, False)


def _subcommands(parser: Any) -> dict[str, Any]:
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return dict(action.choices)


def test_a_parser_built_for_one_command_matches_the_whole_one() -> None:
    from mailbag.cli.main import build_parser

    whole = _subcommands(build_parser())
    assert {"sync", "folders", "account", "send", "list"} <= set(whole)
    for name, full in whole.items():
        only = _subcommands(build_parser(name))
        assert list(only) == [name]
        assert only[name].format_help() == full.format_help(), name
    assert set(_subcommands(build_parser("no-such-command"))) == set(whole)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["sync", "-q"], "sync"),
        (["-q", "--json", "-vv", "--trace", "sync", "folders"], "folders"),
        (["--trace=f", "--debug", "account", "list"], "account"),
        (["--tr", "sync", "list"], None),  # an abbreviation: left to the whole parser
        (["--help"], None),
        ([], None),
    ],
)
def test_command_guess(argv: list[str], command: str | None) -> None:
    from mailbag.cli.main import _command_of

    assert _command_of(argv) == command


def test_main_with_an_unknown_command_lists_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["synk"])
    assert info.value.code == 2
    assert "invalid choice: 'synk'" in capsys.readouterr().err
