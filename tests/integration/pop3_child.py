"""Run one POP3 download session in a child process, optionally SIGKILLing itself at a point.

Used by the crash tests: `python pop3_child.py SPEC_JSON`. SPEC has the account's
connection facts, the home directory, the batch size and `crash`: "" (no crash)
or "WHAT:N" with WHAT one of
  add       after the N-th message is indexed (before its batch commits)
  fsync     after the N-th file fsync of a batch commit (before COMMIT)
  deliver   after the N-th rename into new/ (after COMMIT)
  commit    right after the N-th batch commit returned
  dele      after the N-th DELE was answered
  quit      "quit:0" just before QUIT, "quit:1" right after QUIT's +OK
Exit code 0: the session finished; -9: it was killed where asked.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mailbag.store.index as index_mod
import mailbag.sync.pop3 as engine
from mailbag.config.model import (
    Account,
    PopOptions,
    Protocol,
    SecretRef,
    SecretSource,
    Server,
    SmtpServer,
)
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.store.maildir import Maildir


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def counting(original: Callable[..., Any], n: int, *, before: bool = False) -> Callable[..., Any]:
    calls = itertools.count(1)  # next() is atomic: the fsyncs run in threads

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mine = next(calls)
        if before and mine == n:
            die()
        result = original(*args, **kwargs)
        if not before and mine == n:
            die()
        return result

    return wrapper


def main() -> int:
    spec = json.loads(sys.argv[1])
    engine.BATCH_MESSAGES = int(spec.get("batch", 7))
    what, _, num = str(spec.get("crash", "")).partition(":")
    n = int(num or 0)
    if what == "add":
        index_mod.Store.add_message = counting(index_mod.Store.add_message, n)  # type: ignore[method-assign]
    elif what == "fsync":
        engine.fsync_file = counting(engine.fsync_file, n)  # type: ignore[assignment]
    elif what == "deliver":
        Maildir.deliver = counting(Maildir.deliver, n)  # type: ignore[method-assign]
    elif what == "commit":
        index_mod.Store.commit = counting(index_mod.Store.commit, n)  # type: ignore[method-assign]

    def connect(account: Account, password: str, transcript: Any) -> Any:
        wire = engine.open_pop3(account, password, transcript)
        if what == "dele":
            wire.dele = counting(wire.dele, n)  # type: ignore[method-assign]
        elif what == "quit":
            wire.quit = counting(wire.quit, 1, before=(n == 0))  # type: ignore[method-assign]
        return wire

    secret = SecretRef(SecretSource.COMMAND, "true")
    account = Account(
        name=spec["user"],
        email=spec["email"],
        protocol=Protocol.POP3,
        incoming=Server("localhost", spec["port"], Security.SSL, spec["email"], secret=secret),
        smtp=SmtpServer("localhost", 1, Security.SSL, spec["email"], secret=secret),
        ca_file=Path(spec["ca_file"]),
        pop=PopOptions(leave_on_server=spec["leave"]),
    )
    home = Path(spec["home"])
    paths = Paths(config_dir=home, data_dir=home / "data", state_dir=home / "state")
    report = engine.sync_pop3_account(account, paths, password=spec["password"], connect=connect)
    print(json.dumps({"new": report.new, "removed": report.removed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
