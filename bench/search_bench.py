"""Search benchmark: mailbag's SQLite FTS5 index side by side with notmuch.

    .venv/bin/python bench/search_bench.py                    # 20,000 generated messages
    .venv/bin/python bench/search_bench.py --small 200000     # 200,000 small messages
    .venv/bin/python bench/search_bench.py --messages 2000 --json

Measures, on the same messages:
  * indexing: mailbag adding messages to its store with the full-text hook
    (what a sync does) and without it (the difference is the index's cost), a
    full `reindex` from the Maildir files, and `notmuch new` on a Maildir copy;
  * query latency for typical queries (a word, a phrase, from: + a date range,
    has:attachment), median of several runs: mailbag in-process, `mailbag
    search` as a fresh process, and `notmuch search` (always a fresh process);
  * `mailbag list --limit 50` wall time from a cold process.

Needs notmuch (`scripts/setup --bench`). Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from email.utils import format_datetime
from pathlib import Path

from mailbag.paths import Paths
from mailbag.sandbox.sample import PEOPLE, WORDS, generate
from mailbag.store import fulltext
from mailbag.store.index import Store
from mailbag.store.query import search

# (label, mailbag query, notmuch query)
QUERIES = [
    ("word", "budget", "budget"),
    ("phrase", '"quick brown"', '"quick brown"'),
    (
        "from + dates",
        "from:alice date:2026-01-05..2026-01-20",
        "from:alice date:2026-01-05..2026-01-20",
    ),
    ("has:attachment", "has:attachment", "tag:attachment"),
]


def small_messages(count: int, seed: int = 3) -> Iterator[bytes]:
    """Short plain-text messages (a few hundred bytes), quick to generate."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(count):
        name, local = rng.choice(PEOPLE)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 60)))
        when = format_datetime(start + dt.timedelta(minutes=3 * n))
        yield (
            f"From: {local} <{local}@example.org>\r\nTo: me@sandbox.test\r\n"
            f"Subject: {' '.join(rng.choice(WORDS) for _ in range(4))}\r\n"
            f"Date: {when}\r\nMessage-ID: <small{n}@bench.test>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{words}\r\n"
        ).encode()
        del name


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class _TimedHook:
    """Wraps the full-text hook to measure the time spent indexing."""

    def __init__(self, inner: fulltext.FulltextHook) -> None:
        self.inner = inner
        self.seconds = 0.0

    def message_added(self, store: Store, message: object, path: Path) -> None:
        start = time.perf_counter()
        self.inner.message_added(store, message, path)  # type: ignore[arg-type]
        self.seconds += time.perf_counter() - start

    def message_removed(self, store: Store, message_id: int) -> None:
        self.inner.message_removed(store, message_id)


def fill_store(home: Path, messages: list[bytes]) -> tuple[float, float]:
    """(seconds to add everything as a sync does, seconds of it spent indexing)."""
    paths = Paths(config_dir=home, data_dir=home / "data", state_dir=home / "state")
    store = Store.open(paths)
    hook = _TimedHook(store.hooks[0])  # type: ignore[arg-type]
    store.hooks[0] = hook  # type: ignore[assignment]
    inbox = store.folder("bench", "INBOX", role="inbox")
    start = time.perf_counter()
    for i, raw in enumerate(messages, 1):
        store.add_bytes(inbox, raw, commit=False)
        if i % 1000 == 0:
            store.commit()
    store.commit()
    seconds = time.perf_counter() - start
    store.close()
    return seconds, hook.seconds


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm the page cache once, as a user's second query would be
    return statistics.median(timed(fn) for _ in range(runs)) * 1000


def cold_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of a fresh process (the page cache is warm, the process is new)."""
    return median_ms(
        lambda: subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300), runs
    )


def run(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--messages", type=int, default=20_000, help="generated realistic messages")
    size.add_argument("--small", type=int, metavar="N", help="N small plain-text messages instead")
    ap.add_argument("--runs", type=int, default=7, help="runs per query (median)")
    ap.add_argument("--workdir", type=Path, help="keep the data here (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)

    notmuch = shutil.which("notmuch")
    if notmuch is None:
        sys.exit("notmuch is not installed: run `scripts/setup --bench`")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mailbag-search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    count = args.small or args.messages
    kind = "small" if args.small else "realistic"
    log = (lambda s: None) if args.json else (lambda s: print(s, file=sys.stderr, flush=True))

    log(f"generating {count:,} {kind} messages ...")
    gen = small_messages(count) if args.small else generate(count, to="me@sandbox.test", seed=11)
    messages = list(gen)
    total_bytes = sum(len(m) for m in messages)

    results: dict[str, object] = {"messages": count, "kind": kind, "bytes": total_bytes}

    log("mailbag: adding to the store with the full-text hook (as a sync does) ...")
    home = work / "mailbag"
    with_index, index_share = fill_store(home, messages)
    paths = Paths(config_dir=home, data_dir=home / "data", state_dir=home / "state")
    log("mailbag: rebuilding the index from the Maildir ...")
    store = Store.open(paths)
    rebuild = timed(lambda: fulltext.rebuild(store))

    log("notmuch: writing the Maildir copy and running `notmuch new` ...")
    nm_root = work / "notmuch-mail"
    for sub in ("cur", "new", "tmp"):
        (nm_root / sub).mkdir(parents=True, exist_ok=True)
    for i, raw in enumerate(messages):
        (nm_root / "cur" / f"{i}.bench:2,").write_bytes(raw)
    nm_config = work / "notmuch-config"
    nm_config.write_text(
        f"[database]\npath={nm_root}\n[user]\nname=Bench\nprimary_email=me@sandbox.test\n"
        "[new]\ntags=inbox;\n[search]\nexclude_tags=\n[maildir]\nsynchronize_flags=false\n"
    )
    env = {**os.environ, "NOTMUCH_CONFIG": str(nm_config)}
    nm_new = timed(
        lambda: subprocess.run([notmuch, "new", "--quiet"], env=env, check=True, timeout=7200)
    )

    results["index_seconds"] = {
        "mailbag_add_with_index": round(with_index, 2),
        "mailbag_index_share": round(index_share, 2),
        "mailbag_rebuild": round(rebuild, 2),
        "notmuch_new": round(nm_new, 2),
    }

    # an installed mailbag has its bytecode cached; measure that, not compiling
    env_mb = {**os.environ, "MAILBAG_HOME": str(home)}
    env_mb.pop("PYTHONDONTWRITEBYTECODE", None)
    exe = shutil.which("mailbag", path=str(Path(sys.executable).parent))
    mailbag_cmd = [exe] if exe else [sys.executable, "-m", "mailbag"]
    queries = []
    for label, mq, nq in QUERIES:
        hits = len(search(store, mq, limit=None))
        inproc = median_ms(lambda mq=mq: search(store, mq, limit=50), args.runs)  # type: ignore[misc]
        cli = cold_ms([*mailbag_cmd, "search", mq, "--limit", "50", "--json"], env_mb, args.runs)
        nm_count = subprocess.run(
            [notmuch, "count", nq], env=env, check=True, capture_output=True, text=True
        )
        nm = cold_ms([notmuch, "search", "--limit=50", "--output=summary", nq], env, args.runs)
        queries.append(
            {
                "query": label,
                "mailbag": mq,
                "notmuch": nq,
                "mailbag_hits": hits,
                "notmuch_hits": int(nm_count.stdout.strip()),
                "mailbag_inprocess_ms": round(inproc, 1),
                "mailbag_cli_ms": round(cli, 1),
                "notmuch_cli_ms": round(nm, 1),
            }
        )
    store.close()
    results["queries"] = queries
    inprocess = [float(q["mailbag_inprocess_ms"]) for q in queries]  # type: ignore[arg-type]
    results["median_query_inprocess_ms"] = round(statistics.median(inprocess), 1)
    results["list_cold_ms"] = round(
        cold_ms([*mailbag_cmd, "list", "--limit", "50"], env_mb, args.runs), 1
    )
    results["version_cold_ms"] = round(cold_ms([*mailbag_cmd, "--version"], env_mb, args.runs), 1)
    results["notmuch_search_all_limit50_ms"] = round(
        cold_ms([notmuch, "search", "--limit=50", "*"], env, args.runs), 1
    )
    index_file = paths.index_file
    results["mailbag_index_mb"] = round(index_file.stat().st_size / 1e6, 1)
    xapian = nm_root / ".notmuch" / "xapian"
    if xapian.is_dir():
        results["notmuch_index_mb"] = round(
            sum(p.stat().st_size for p in xapian.iterdir()) / 1e6, 1
        )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return results


def report(r: dict[str, object]) -> str:
    idx = r["index_seconds"]
    assert isinstance(idx, dict)
    lines = [
        f"{r['messages']:,} {r['kind']} messages ({int(r['bytes']) / 1e6:.0f} MB)",  # type: ignore[call-overload]
        "",
        "indexing (s)                          mailbag    notmuch",
        f"  store + index (as during sync)     {idx['mailbag_add_with_index']:>8}",
        f"    of which the full-text index     {idx['mailbag_index_share']:>8}",
        f"  rebuild from files / notmuch new   {idx['mailbag_rebuild']:>8}"
        f"   {idx['notmuch_new']:>8}",
        "",
        "query (median ms, limit 50)        hits mb/nm   mailbag   mailbag CLI   notmuch CLI",
    ]
    for q in r["queries"]:  # type: ignore[attr-defined]
        lines.append(
            f"  {q['query']:<30} {q['mailbag_hits']:>6}/{q['notmuch_hits']:<6}"
            f"{q['mailbag_inprocess_ms']:>8}   {q['mailbag_cli_ms']:>11}"
            f"   {q['notmuch_cli_ms']:>11}"
        )
    lines += [
        "",
        f"median query in process: {r['median_query_inprocess_ms']} ms (target < 50)",
        f"`mailbag list --limit 50` cold: {r['list_cold_ms']} ms (target < 300;"
        f" `mailbag --version`: {r['version_cold_ms']} ms);"
        f" `notmuch search --limit=50 '*'`: {r['notmuch_search_all_limit50_ms']} ms",
        f"index size: mailbag {r['mailbag_index_mb']} MB (whole index), "
        f"notmuch {r.get('notmuch_index_mb')} MB",
    ]
    return "\n".join(lines)


def main() -> None:
    results = run()
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
    else:
        print(report(results))


if __name__ == "__main__":
    main()
