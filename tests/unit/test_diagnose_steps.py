"""The step framework: ordering, timing, skipping, streaming, and the JSON shape."""

from __future__ import annotations

import json

import pytest

from mailbag.diagnose.steps import Done, StepResult, StepRunner, StepStatus, TestReport
from mailbag.errors import AuthError, NetworkError


def fake_clock() -> tuple[list[float], object]:
    ticks = [0.0]

    def clock() -> float:
        ticks[0] += 0.0125
        return ticks[0]

    return ticks, clock


def test_steps_stream_in_order_with_timing() -> None:
    seen: list[StepResult] = []
    _, clock = fake_clock()
    run = StepRunner(on_step=seen.append, clock=clock)  # type: ignore[arg-type]
    assert run.run("dns", lambda: "localhost is 127.0.0.1")
    assert run.run("connect", lambda: Done("connected", value=42), needs=["dns"])
    assert [s.name for s in seen] == ["dns", "connect"]
    assert all(s.status is StepStatus.OK for s in seen)
    assert seen[0].detail == "localhost is 127.0.0.1"
    assert seen[0].ms == 12.5
    assert run.value("connect") == 42


def test_failure_carries_message_and_hint_and_blocks_dependants() -> None:
    seen: list[StepResult] = []
    run = StepRunner(on_step=seen.append)

    def boom() -> str:
        raise NetworkError("connection refused", hint="check the port", cause="refused")

    assert not run.run("connect", boom)
    assert not run.run("tls", lambda: "never", needs=["connect"])
    assert not run.run("login", lambda: "never", needs=["tls"])
    assert [(s.name, s.status) for s in seen] == [
        ("connect", StepStatus.FAILED),
        ("tls", StepStatus.SKIPPED),
        ("login", StepStatus.SKIPPED),
    ]
    assert seen[0].detail == "connection refused"
    assert seen[0].hint == "check the port"
    assert seen[1].detail == "skipped because 'connect' failed"
    assert seen[2].detail == "skipped because 'connect' failed"
    assert seen[1].hint is None and seen[1].ms == 0.0


def test_explainer_replaces_hint() -> None:
    run = StepRunner(explain=lambda step, exc: f"{step}: {type(exc).__name__}")

    def bad_login() -> str:
        raise AuthError("535 no")

    run.run("login", bad_login)
    assert run.results[0].hint == "login: AuthError"


def test_untranslated_oserror_is_a_failed_step_not_a_crash() -> None:
    run = StepRunner()

    def reset() -> str:
        raise ConnectionResetError(104, "Connection reset by peer")

    assert not run.run("inbox", reset)
    assert run.results[0].status is StepStatus.FAILED
    assert "Connection reset by peer" in run.results[0].detail


def test_bugs_are_not_swallowed() -> None:
    run = StepRunner()

    def bug() -> str:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        run.run("dns", bug)


def test_step_that_never_ran_blocks_with_reason() -> None:
    run = StepRunner()
    run.run("receive", lambda: "x", needs=["send"])
    assert run.results[0].detail == "skipped because 'send' did not run"


def test_report_json_shape_is_the_contract() -> None:
    report = TestReport(
        "work",
        (
            StepResult("dns", StepStatus.OK, "a is 1.2.3.4", None, 1.5),
            StepResult("login", StepStatus.FAILED, "535 bad", "check the password", 20.0),
            StepResult("inbox", StepStatus.SKIPPED, "skipped because 'login' failed"),
        ),
    )
    doc = json.loads(json.dumps(report.to_json()))
    assert set(doc) == {"account", "ok", "steps"}
    assert doc["account"] == "work" and doc["ok"] is False
    for step in doc["steps"]:
        assert set(step) == {"name", "status", "detail", "hint", "ms"}
        assert step["status"] in ("ok", "failed", "skipped")
        assert isinstance(step["ms"], (int, float))
    assert doc["steps"][1] == {
        "name": "login",
        "status": "failed",
        "detail": "535 bad",
        "hint": "check the password",
        "ms": 20.0,
    }
    assert doc["steps"][2]["hint"] is None
    assert report.failures == (report.steps[1],)


def test_skipped_steps_do_not_fail_the_report() -> None:
    report = TestReport(
        "x",
        (
            StepResult("dns", StepStatus.OK, ""),
            StepResult("send", StepStatus.SKIPPED, "not requested (--no-send)"),
        ),
    )
    assert report.ok
    assert report.step("send").status is StepStatus.SKIPPED
