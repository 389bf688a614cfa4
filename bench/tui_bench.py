"""Interactive client: launch-to-painted-list time and key-to-screen latency.

    python bench/tui_bench.py --messages 200000

Builds a local store of N small messages (cached in bench/out/tui-N, reused on
later runs), then runs the app headless (Textual's test driver) and measures:
- launch: from creating the app until the message list shows its first rows;
- scroll: per `down` keypress, the time until the screen has processed it
  (median and 95th percentile over 300 presses, including page loads);
- threads: from pressing `t` to the list grouped by conversation, then keys in
  that list (down, Space to fold/unfold, PgDn);
- after a sync, with conversations on: what a sync that brought 10 new messages
  (5 of them replies), expunged one and changed 10 flags costs to regroup, from
  the sync's end to the regrouped list on screen, against grouping the folder
  whole again (what every sync did before it was incremental). Pilot's
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


def _fake_sync(paths: Paths, round_no: int, added: list[int]) -> None:
    """What a sync does to the store: 10 new messages (5 replying to old ones), one
    expunged (one added by an earlier round, so the store ends as it began), 10 flag
    changes (undone by the next round)."""
    with Store.open(paths, hooks=False) as store:
        inbox = store.find_folder("bench", "INBOX")
        assert inbox is not None
        for k in range(10):
            n = 10_000_000 + round_no * 100 + k
            parent = (round_no * 7919 + k * 104729) % 100_000 * 5
            head = (
                f"In-Reply-To: <{parent}@bench>\r\nReferences: <{parent}@bench>\r\n"
                if k < 5
                else ""
            )
            data = (
                f"From: New <new@example.org>\r\nSubject: new {n}\r\n"
                f"Date: {_date(2.0e9 + n)}\r\nMessage-ID: <{n}@bench>\r\n{head}\r\nx\r\n"
            ).encode()
            added.append(store.add_bytes(inbox, data, commit=False).id)
        if len(added) > 10:
            gone = added.pop(0)
            store.remove(store.lookup(str(gone)), commit=False)
        for i in range(10):
            message = store.lookup(str(1 + i * 997))
            store.set_flags(message, message.flags ^ {"\\Flagged"}, commit=False)
        store.commit(fsync=False)


def _undo_syncs(paths: Paths, added: list[int]) -> None:
    with Store.open(paths, hooks=False) as store:
        for i in added:
            store.remove(store.lookup(str(i)), commit=False)
        store.commit(fsync=False)


async def after_syncs(app: MailbagApp, pilot: Pilot[None], paths: Paths) -> list[float]:
    """From a sync's end to the regrouped list on screen, with conversations on."""
    times = []
    added: list[int] = []
    try:
        for round_no in range(4):
            _fake_sync(paths, round_no, added)
            before = app.model
            t = time.perf_counter()
            app._synced([])
            while app.model is before:
                await pilot.pause(0.002)
            times.append(time.perf_counter() - t)
            done = app.view.last_grouping
            assert done is not None and not done.full, done
    finally:
        _undo_syncs(paths, added)
    return times


def regroup_whole(paths: Paths) -> float:
    """Grouping the folder whole, as every sync did before."""
    from mailbag.store.listing import folder_threads

    with Store.open(paths) as store:
        t = time.perf_counter()
        folder_threads(store, "bench", "INBOX")
        return time.perf_counter() - t


async def measure(
    paths: Paths, presses: int
) -> tuple[float, list[float], float, list[float], list[float]]:
    """Launch, flat scrolling; then conversations on: time to the grouped list,
    scrolling with a fold/unfold (Space) every few lines, and regrouping after syncs."""
    paths.tui_state_file.unlink(missing_ok=True)  # start flat, as the first run did
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
        synced = await after_syncs(app, pilot, paths)
    paths.tui_state_file.unlink(missing_ok=True)
    return launch, latencies, grouping, threaded, synced


async def threaded_launch(paths: Paths) -> tuple[float, float]:
    """Launch with conversations remembered for the folder: to the first painted lines
    (the flat top, at once) and to the grouped list (worked out in a worker)."""
    from mailbag.tui.uistate import UiState

    state, _ = UiState.load(paths.tui_state_file)
    state.set_threaded("bench", "INBOX", True)
    try:
        start = time.perf_counter()
        app = MailbagApp(paths, sync_on_start=False, poll_seconds=0)
        async with app.run_test(size=(140, 45)) as pilot:
            while not len(app.model):
                await pilot.pause(0.005)
            # no wait for the app to go idle here (as the flat launch does): the grouping
            # worker keeps it busy for a second while the lines are already drawn
            painted = time.perf_counter() - start
            while not app.model.threaded:
                await pilot.pause(0.005)
            await pilot.pause()
            grouped = time.perf_counter() - start
    finally:
        paths.tui_state_file.unlink(missing_ok=True)
    return painted, grouped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--presses", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    root = Path(__file__).parent / "out" / f"tui-{args.messages}"
    root.mkdir(parents=True, exist_ok=True)
    paths = build_store(root, args.messages)
    launches, lat, groupings, tlat, synced = [], [], [], [], []
    for _ in range(args.runs):
        launch, latencies, grouping, threaded, syncs = asyncio.run(measure(paths, args.presses))
        launches.append(launch)
        synced += syncs
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
    whole = [regroup_whole(paths) for _ in range(3)]
    remembered = [asyncio.run(threaded_launch(paths)) for _ in range(args.runs)]
    painted = statistics.median(p for p, _ in remembered) * 1000
    grouped = statistics.median(g for _, g in remembered) * 1000
    print(
        f"launch, threads kept  median {painted:.0f} ms to the first lines, "
        f"{grouped:.0f} ms to the grouped list (conversations remembered for the folder)"
    )
    print(
        f"regroup after sync  median {statistics.median(synced) * 1000:.0f} ms from the sync's "
        f"end to the regrouped list (max {max(synced) * 1000:.0f} ms; 10 new, 1 gone, 10 flags; "
        f"in a worker)"
    )
    print(
        f"  grouped whole       median {statistics.median(whole) * 1000:.0f} ms "
        "(what each sync cost before: the folder grouped again)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
