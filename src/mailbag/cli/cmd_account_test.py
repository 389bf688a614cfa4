"""`mailbag account test NAME [--json] [--no-send]`: run the account test and show each step.

Registered under the `account` command by `cmd_account.py` (which calls
`register`). Human output lists the steps live with ✓/✗, their durations, the
cause and the fix; `--json` prints the report as the contract says. Exit 1
when any step failed.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mailbag.cli.context import Context

if TYPE_CHECKING:
    from mailbag.diagnose import StepResult, TestReport

MARKS = {"ok": "✓", "failed": "✗", "skipped": "-"}
NAME_WIDTH = 17  # longest step name is "smtp-capabilities"


def register(account_sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `test` to the `account` command's subparsers."""
    p = account_sub.add_parser(
        "test",
        parents=[common],
        help="check an account's settings step by step and say what is wrong",
        description="Connect to the account's incoming and outgoing servers, check DNS, "
        "TLS, the certificate, login and the inbox, then send a test message to the "
        "account's own address and wait for it to arrive (removed afterwards). Every "
        "failed step names the problem and the fix. Exit 1 when any step failed.",
    )
    p.add_argument(
        "name", metavar="NAME", nargs="?", help="the account to test (default: the default account)"
    )
    p.add_argument(
        "--no-send", action="store_true", help="skip the test message round trip (send/receive)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="network timeout for each step (default 20)",
    )
    p.add_argument(
        "--receive-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the test message to arrive (default 60)",
    )
    p.set_defaults(run=run)


def format_step(step: StepResult) -> list[str]:
    """The lines for one step: mark, name, duration, detail; then the fix when failed."""
    mark = MARKS[step.status.value]
    took = f"{step.ms:>8.0f} ms" if step.status.value != "skipped" else " " * 11
    lines = [f"{mark} {step.name:<{NAME_WIDTH}} {took}  {step.detail}"]
    if step.hint:
        label = "fix" if step.status.value == "failed" else "note"
        lines.append(f"  {' ' * NAME_WIDTH} {' ' * 11}  {label}: {step.hint}")
    return lines


def summary(report: TestReport) -> str:
    failed = [s.name for s in report.failures]
    ran = sum(1 for s in report.steps if s.status.value != "skipped")
    if not failed:
        return f"account {report.account!r}: all {ran} steps passed"
    return f"account {report.account!r}: {len(failed)} failed ({', '.join(failed)})"


def run(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import load_config
    from mailbag.diagnose import test_account

    account = load_config(ctx.paths).account(args.name)

    def show(step: StepResult) -> None:
        for line in format_step(step):
            if ctx.json:
                if ctx.verbose:
                    ctx.info(line)
            else:
                ctx.out(line)
        ctx.stdout.flush()

    report = test_account(
        account,
        send=not args.no_send,
        on_step=show,
        timeout=args.timeout,
        receive_timeout=args.receive_timeout,
        transcript=ctx.transcript,
    )
    learned = report.server_saves_sent
    if learned is not None and learned != account.server_saves_sent:
        # sending later must know whether to file its own copy in Sent
        from mailbag.config import save_account
        from mailbag.record import replace

        save_account(ctx.paths, replace(account, server_saves_sent=learned))
        ctx.info(f"noted in the configuration: server_saves_sent = {str(learned).lower()}")
    if ctx.json:
        ctx.emit_json(report.to_json())
    else:
        ctx.out(summary(report))
    return 0 if report.ok else 1
