"""Address completion in the compose screen on a big store: how long the index lookup
takes, and whether typing stays smooth while it runs.

    python bench/compose_bench.py --messages 200000

Uses the store of `bench/tui_bench.py` (bench/out/tui-N, built on first use) and
prints:
- lookup: `Outgoing.complete` alone for a few prefixes (a one-letter prefix, a
  name, a prefix matching nothing, which reads the whole index);
- keys: typing names into To at a fast typist's pace while the lookups run in
  their thread: from a key to the field showing it, and the longest stall of the
  UI's event loop meanwhile;
- to the list: from the last key of a name to its list of matches on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from itertools import pairwise
from pathlib import Path

from textual import events
from textual.widgets import Input

from mailbag.config import save_account
from mailbag.config.model import Account, Protocol, SecretRef, SecretSource, Server, SmtpServer
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.tui.app import MailbagApp
from mailbag.tui.compose import COMPLETE_DELAY, CompletionMenu
from mailbag.tui.outgoing import Outgoing

sys.path.insert(0, str(Path(__file__).parent))
from tui_bench import build_store


def with_account(paths: Paths) -> Paths:
    """The same store with a config of its own (one account, never contacted)."""
    own = Paths(
        config_dir=paths.config_dir / "compose-bench",
        data_dir=paths.data_dir,
        state_dir=paths.state_dir,
    )
    if not own.config_file.exists():
        secret = SecretRef(SecretSource.COMMAND, "echo unused")
        save_account(
            own,
            Account(
                name="bench",
                email="me@example.org",
                display_name="Me",
                protocol=Protocol.IMAP,
                incoming=Server("imap.invalid", 993, Security.SSL, "me", secret=secret),
                smtp=SmtpServer("smtp.invalid", 465, Security.SSL, "me", secret=secret),
            ),
            make_default=True,
        )
    return own


def lookups(paths: Paths, runs: int) -> dict[str, float]:
    out = Outgoing(paths)
    times: dict[str, float] = {}
    for prefix in ("s", "s4", "Sender 4", "zzq"):
        taken = []
        for _ in range(runs):
            t = time.perf_counter()
            out.complete(prefix, limit=8)
            taken.append(time.perf_counter() - t)
        times[prefix] = statistics.median(taken)
    return times


async def typing(paths: Paths, rounds: int, gap: float) -> tuple[list[float], list[float], float]:
    """Type names into To, one key every `gap` seconds (as a fast typist does), with
    the lookups running meanwhile. Keys are posted as the terminal driver does (Pilot's
    press would wait for the whole process to go idle, the lookup thread included)."""
    keys: list[float] = []
    to_list: list[float] = []
    ticks: list[float] = []
    app = MailbagApp(paths, sync_on_start=False, poll_seconds=0, push=False)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("c")
        await pilot.pause()
        menu = app.screen.query_one(CompletionMenu)
        to = app.screen.query_one("#to", Input)
        # the UI's event loop: a timer every 5 ms; a long gap between two ticks is a stall
        app.set_interval(0.005, lambda: ticks.append(time.perf_counter()))
        stall = 0.0
        for n in range(rounds):
            text = f"Sender {n % 97}"
            ticks.clear()
            for i, ch in enumerate(text):
                t = time.perf_counter()
                app.post_message(events.Key("space" if ch == " " else ch, ch))
                while to.value != text[: i + 1]:
                    await asyncio.sleep(0.0005)
                keys.append(time.perf_counter() - t)
                await asyncio.sleep(max(0.0, gap - (time.perf_counter() - t)))
            t = time.perf_counter()
            while not (menu.display and str(menu.get_option_at_index(0).prompt).startswith(text)):
                await asyncio.sleep(0.001)
                if time.perf_counter() - t > 10:
                    raise SystemExit(f"no list of matches for {text!r}")
            to_list.append(time.perf_counter() - t + gap)
            stall = max(stall, *(b - a for a, b in pairwise(ticks)))
            to.value = ""
            await pilot.pause(0.3)
    return keys, to_list, stall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--gap", type=float, default=0.08, help="seconds between keys")
    args = ap.parse_args()
    root = Path(__file__).parent / "out" / f"tui-{args.messages}"
    root.mkdir(parents=True, exist_ok=True)
    paths = with_account(build_store(root, args.messages))
    print(f"messages            {args.messages}")
    for prefix, taken in lookups(paths, 5).items():
        print(f"lookup {prefix!r:<12} median {taken * 1000:.0f} ms (in a thread, off the UI)")
    keys, to_list, stall = asyncio.run(typing(paths, args.rounds, args.gap))
    keys.sort()
    print(
        f"key to the field     median {statistics.median(keys) * 1000:.1f} ms, "
        f"p95 {keys[int(len(keys) * 0.95)] * 1000:.1f} ms, max {keys[-1] * 1000:.1f} ms "
        f"(a key every {args.gap * 1000:.0f} ms, lookups running)"
    )
    print(
        f"longest UI stall     {stall * 1000:.0f} ms (the most time between two 5 ms timer ticks)"
    )
    print(
        f"last key to the list median {statistics.median(to_list) * 1000:.0f} ms, "
        f"max {max(to_list) * 1000:.0f} ms (the {COMPLETE_DELAY * 1000:.0f} ms pause "
        "after a key included)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
