"""Interactive client: launch-to-painted-list time and key-to-screen latency.

    python bench/tui_bench.py --messages 200000

Builds a local store of N small messages (cached in bench/out/tui-N, reused on
later runs), then runs the app headless (Textual's test driver) and measures:
- launch: from creating the app until the message list shows its first rows;
- scroll: per `down` keypress, the time until the screen has processed it
  (median and 95th percentile over 300 presses, including page loads);
- threads: from pressing `t` to the list grouped by conversation, then keys in
  that list (down, Space to fold/unfold, PgDn). Pilot's
  press itself waits for the app to go idle, which costs tens of milliseconds
  even in an empty app; that baseline is measured in the same run and printed,
  and mailbag's own share is the difference.
Goals from the issue: launch under 1 s on 200,000 messages, scroll under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from textual.app import App
from textual.pilot import Pilot

from mailbag.paths import Paths
from mailbag.store.index import Store
from mailbag.tui.app import MailbagApp


def _date(ts: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(ts))


def _subject(n: int) -> str:
    start = n - n % 5
    return f"Re: message number {start}" if n % 5 in (1, 2) else f"message number {n}"


def _threading(n: int) -> str:
    """Two of every five messages reply to the one before them (conversations of 3):
    the grouping then has real work to do, as in a real mailbox."""
    if n % 5 not in (1, 2):
        return ""
    refs = " ".join(f"<{m}@bench>" for m in range(n - n % 5, n))
    return f"In-Reply-To: <{n - 1}@bench>\r\nReferences: {refs}\r\n"


def build_store(root: Path, count: int) -> Paths:
    paths = Paths(config_dir=root, data_dir=root / "data", state_dir=root / "state")
    marker = root / f"built-{count}-v2"
    if marker.exists():
        return paths
    t0 = time.perf_counter()
    with Store.open(paths) as store:
        inbox = store.folder("bench", "INBOX", role="inbox")
        for n in range(count):
            data = (
                f"From: Sender {n % 97} <s{n % 97}@example.org>\r\nTo: me@example.org\r\n"
                f"Subject: {_subject(n)}\r\nDate: {_date(1.6e9 + n * 60)}\r\n"
                f"Message-ID: <{n}@bench>\r\n{_threading(n)}\r\nbody {n}\r\n"
            ).encode()
            store.add_bytes(inbox, data, flags={"\\Seen"} if n % 3 else (), commit=False)
            if n % 5000 == 4999:
                store.commit(fsync=False)
                print(f"  stored {n + 1}/{count}", file=sys.stderr, end="\r")
        store.commit(fsync=False)
    marker.touch()
    print(f"  store of {count} built in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return paths


class _EmptyApp(App[None]):
    """The test driver's own cost per keypress: an app that does nothing."""


async def baseline(presses: int) -> list[float]:
    app = _EmptyApp()
    latencies = []
    async with app.run_test(size=(140, 45)) as pilot:
        for _ in range(presses):
            t = time.perf_counter()
            await pilot.press("down")
            latencies.append(time.perf_counter() - t)
    return latencies


async def _keys(pilot: Pilot[None], key: str, presses: int) -> list[float]:
    latencies = []
    for _ in range(presses):
        t = time.perf_counter()
        await pilot.press(key)
        latencies.append(time.perf_counter() - t)
    return latencies


async def measure(paths: Paths, presses: int) -> tuple[float, list[float], float, list[float]]:
    """Launch, flat scrolling; then conversations on: time to the grouped list, and
    scrolling with a fold/unfold (Space) every few lines."""
    start = time.perf_counter()
    app = MailbagApp(paths, sync_on_start=False, poll_seconds=0)
    async with app.run_test(size=(140, 45)) as pilot:
        while not len(app.model):
            await pilot.pause(0.005)
        await pilot.pause()
        launch = time.perf_counter() - start
        latencies = await _keys(pilot, "down", presses)
        t = time.perf_counter()
        await pilot.press("t")
        while not app.model.threaded:
            await pilot.pause(0.005)
        await pilot.pause()
        grouping = time.perf_counter() - t
        threaded = []
        for n in range(presses // 10):
            threaded += await _keys(pilot, "down", 8)
            threaded += await _keys(pilot, "space", 1)
            if n % 10 == 0:
                threaded += await _keys(pilot, "pagedown", 1)
    return launch, latencies, grouping, threaded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--presses", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    root = Path(__file__).parent / "out" / f"tui-{args.messages}"
    root.mkdir(parents=True, exist_ok=True)
    paths = build_store(root, args.messages)
    launches, lat, groupings, tlat = [], [], [], []
    for _ in range(args.runs):
        launch, latencies, grouping, threaded = asyncio.run(measure(paths, args.presses))
        launches.append(launch)
        lat += latencies
        groupings.append(grouping)
        tlat += threaded
    lat.sort()
    tlat.sort()
    p95 = lat[int(len(lat) * 0.95)]
    base = statistics.median(asyncio.run(baseline(args.presses)))
    print(f"messages            {args.messages}")
    print(
        f"launch to list      median {statistics.median(launches) * 1000:.0f} ms "
        f"(runs: {', '.join(f'{x * 1000:.0f}' for x in launches)}; goal < 1000 ms)"
    )
    print(
        f"key to screen       median {statistics.median(lat) * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms"
    )
    print(f"  test driver alone   median {base * 1000:.1f} ms per key (an empty app, same run)")
    share = (statistics.median(lat) - base) * 1000
    print(f"  mailbag's own share median {share:.1f} ms (goal < 50 ms)")
    print(
        f"threads on (t)      median {statistics.median(groupings) * 1000:.0f} ms to the grouped "
        f"list (runs: {', '.join(f'{x * 1000:.0f}' for x in groupings)}; computed in a worker)"
    )
    print(
        f"threaded keys       median {statistics.median(tlat) * 1000:.1f} ms, "
        f"p95 {tlat[int(len(tlat) * 0.95)] * 1000:.1f} ms, max {tlat[-1] * 1000:.1f} ms "
        "(down, Space fold/unfold, PgDn)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
