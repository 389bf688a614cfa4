"""`mailbag completion SHELL`: print the shell completion script (argcomplete)."""

from __future__ import annotations

import argparse
from typing import Any

from mailbag.cli.context import Context

DESCRIPTION = """\
Print a completion script for your shell. Install it with:

  bash:  mailbag completion bash >> ~/.bashrc
  zsh:   mailbag completion zsh >> ~/.zshrc
  fish:  mailbag completion fish > ~/.config/fish/completions/mailbag.fish
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "completion",
        help="print the shell completion script (bash, zsh, fish)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    p.add_argument("shell", choices=["bash", "zsh", "fish"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from argcomplete import shellcode  # type: ignore[attr-defined]

    ctx.stdout.write(shellcode(["mailbag"], shell=args.shell))
    return 0
