"""StepTimer: every step's wall time, in order, even when the step fails."""

from __future__ import annotations

import time

import pytest

from recolake.timing import StepTimer


def test_steps_timed_in_order_and_reported(capsys):
    timer = StepTimer(echo=True)
    with timer.step("first") as step:
        time.sleep(0.05)
        step.counts = "rows=3"
    with timer.step("second"):
        pass
    assert list(timer.seconds) == ["first", "second"]
    assert timer.seconds["first"] >= 0.05 > timer.seconds["second"]
    assert timer.total == pytest.approx(sum(timer.seconds.values()))
    lines = timer.report().splitlines()
    assert lines[0].split()[0] == "first" and lines[0].endswith("rows=3")
    assert lines[-1].split()[0] == "total"
    assert capsys.readouterr().out.splitlines() == lines[:2]  # echoed as each step ended
    metrics = timer.metrics()
    assert metrics["step_seconds.first"] == timer.seconds["first"]
    assert metrics["step_seconds.total"] == pytest.approx(timer.total)
    assert not any(k.startswith("spark_jobs.") for k in metrics)  # no session: no job count


def test_failed_step_is_still_recorded():
    timer = StepTimer()
    with pytest.raises(RuntimeError), timer.step("broken"):
        raise RuntimeError("boom")
    assert list(timer.seconds) == ["broken"]
