"""The step framework of the account test: results, the report, and the runner.

A test is a chain of named steps. Each step is timed, either succeeds with a
detail line or fails with the exact problem and a plain-language hint; once a
step fails, the steps that depend on it are reported as skipped with the
reason, never silently dropped. Results stream out through a callback as they
happen (the CLI and the TUI show them live). Nothing here touches the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from mailbag.errors import MailbagError

T = TypeVar("T")


class StepStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StepResult:
    """One line of the test: what was checked, how it went, what to do about it."""

    name: str
    status: StepStatus
    detail: str
    hint: str | None = None
    ms: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status is StepStatus.FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "hint": self.hint,
            "ms": self.ms,
        }


@dataclass(frozen=True)
class TestReport:
    """The outcome of `test_account`: `ok` when no step failed (skipped steps are fine)."""

    __test__ = False  # not a pytest test class, despite the name

    account: str
    steps: tuple[StepResult, ...]
    #: whether the server filed the test message into Sent by itself (None: not learned)
    server_saves_sent: bool | None = None
    #: send-to-arrival time of the test message, when it arrived
    round_trip_ms: float | None = None

    @property
    def ok(self) -> bool:
        return not any(s.failed for s in self.steps)

    def step(self, name: str) -> StepResult:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def failures(self) -> tuple[StepResult, ...]:
        return tuple(s for s in self.steps if s.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "ok": self.ok,
            "steps": [s.to_json() for s in self.steps],
        }


class StepFailed(MailbagError):
    """Raised inside a step for a failure that is not an exception of a lower layer."""


@dataclass(frozen=True)
class Done:
    """What a successful step returns: its detail line and, optionally, a value for later steps."""

    detail: str
    value: Any = None
    hint: str | None = None  # advice even on success (e.g. "prefer SSL on 993")


Explainer = Callable[[str, MailbagError], str | None]


def _no_explainer(step: str, exc: MailbagError) -> str | None:
    return exc.hint


@dataclass
class StepRunner:
    """Runs steps in order, times them, and records results.

    `run(name, fn, needs=...)` calls `fn()` unless a step named in `needs` did
    not succeed, in which case the step is recorded as skipped with the reason.
    Failures are `MailbagError`s (and `OSError`s a lower layer failed to
    translate); anything else is a bug and propagates.
    """

    on_step: Callable[[StepResult], None] | None = None
    explain: Explainer = _no_explainer
    clock: Callable[[], float] = time.perf_counter
    results: list[StepResult] = field(default_factory=list)
    _values: dict[str, Any] = field(default_factory=dict)

    def status(self, name: str) -> StepStatus | None:
        for r in self.results:
            if r.name == name:
                return r.status
        return None

    def value(self, name: str) -> Any:
        return self._values.get(name)

    def record(self, result: StepResult) -> StepResult:
        self.results.append(result)
        if self.on_step is not None:
            self.on_step(result)
        return result

    def skip(self, name: str, reason: str) -> StepResult:
        return self.record(StepResult(name, StepStatus.SKIPPED, reason))

    def blocked_by(self, needs: Iterable[str]) -> str | None:
        """The reason a step cannot run: the first needed step that did not succeed."""
        for need in needs:
            status = self.status(need)
            if status is StepStatus.FAILED:
                return f"skipped because '{need}' failed"
            if status is StepStatus.SKIPPED:
                # name the step that really failed, not the chain in between
                reason = next(r.detail for r in self.results if r.name == need)
                if reason.startswith("skipped because"):
                    return reason
                return f"skipped because '{need}' was skipped"
            if status is None:
                return f"skipped because '{need}' did not run"
        return None

    def run(self, name: str, fn: Callable[[], Done | str], *, needs: Iterable[str] = ()) -> bool:
        """Run one step; True when it succeeded."""
        reason = self.blocked_by(needs)
        if reason is not None:
            self.skip(name, reason)
            return False
        start = self.clock()
        try:
            outcome = fn()
        except MailbagError as exc:
            self.record(
                StepResult(
                    name,
                    StepStatus.FAILED,
                    exc.message,
                    self.explain(name, exc),
                    _ms(start, self.clock()),
                )
            )
            return False
        except OSError as exc:
            err = MailbagError(f"{exc.strerror or exc}", hint=None)
            self.record(
                StepResult(
                    name,
                    StepStatus.FAILED,
                    err.message,
                    self.explain(name, err),
                    _ms(start, self.clock()),
                )
            )
            return False
        if isinstance(outcome, str):
            outcome = Done(outcome)
        self._values[name] = outcome.value
        self.record(
            StepResult(name, StepStatus.OK, outcome.detail, outcome.hint, _ms(start, self.clock()))
        )
        return True


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 1)
