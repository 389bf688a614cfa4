"""The command-line contract's global behaviour: version, help, exit codes, startup."""

from __future__ import annotations

import os
import subprocess
import sys
import time

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
