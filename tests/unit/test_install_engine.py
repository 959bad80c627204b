"""The step graph executor: order, concurrency, failure handling, events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from choreoctl.errors import InputError, WaitTimeout
from choreoctl.install.engine import Event, State, Step, check_graph, run_graph


def _step(
    step_id: str, deps: tuple[str, ...], log: list[str], delay: float = 0.0, fail: bool = False
) -> Step:
    async def run(report: Callable[[str], None]) -> str:
        log.append(f"start {step_id}")
        report("working")
        await asyncio.sleep(delay)
        if fail:
            raise WaitTimeout(f"{step_id} timed out")
        log.append(f"end {step_id}")
        return f"{step_id} ok"

    return Step(step_id, step_id.upper(), run, deps)


async def test_dependencies_order_and_independent_steps_overlap() -> None:
    log: list[str] = []
    steps = [
        _step("control", (), log),
        _step("trust", ("control",), log),
        _step("us", ("trust",), log, 0.05),
        _step("eu", ("trust",), log, 0.05),
        _step("build", ("us", "eu"), log),
    ]
    events: list[Event] = []
    await run_graph(steps, events.append)
    assert log.index("end control") < log.index("start trust")
    # both data planes started before either finished: they ran at the same time
    assert max(log.index("start us"), log.index("start eu")) < min(
        log.index("end us"), log.index("end eu")
    )
    assert log.index("start build") > max(log.index("end us"), log.index("end eu"))
    assert all(s.state is State.done for s in steps)
    done = [e for e in events if e.state is State.done and not e.message.endswith("working")]
    assert {e.step for e in done} == {"control", "trust", "us", "eu", "build"}
    assert any(e.message == "working" and e.state is State.running for e in events)


async def test_failure_stops_new_steps_lets_running_finish_and_raises_first() -> None:
    log: list[str] = []
    steps = [
        _step("a", (), log),
        _step("bad", ("a",), log, 0.01, fail=True),
        _step("slow", ("a",), log, 0.1),
        _step("after", ("bad", "slow"), log),
    ]
    events: list[Event] = []
    with pytest.raises(WaitTimeout, match="bad timed out"):
        await run_graph(steps, events.append)
    states = {s.id: s.state for s in steps}
    assert states == {
        "a": State.done,
        "bad": State.failed,
        "slow": State.done,
        "after": State.cancelled,
    }
    failed = [e for e in events if e.state is State.failed]
    assert failed[0].error == "wait-timeouts"
    assert "start after" not in log


def test_graph_checks() -> None:
    noop = _step("x", (), [])
    with pytest.raises(InputError, match="unknown"):
        check_graph([Step("a", "a", noop.run, ("missing",))])
    with pytest.raises(InputError, match="cycle"):
        check_graph([Step("a", "a", noop.run, ("b",)), Step("b", "b", noop.run, ("a",))])
    with pytest.raises(InputError, match="duplicate"):
        check_graph([Step("a", "a", noop.run), Step("a", "a", noop.run)])


async def test_cancellation_marks_running_steps_cancelled() -> None:
    log: list[str] = []
    steps = [_step("long", (), log, 5.0), _step("next", ("long",), log)]
    events: list[Event] = []
    task = asyncio.ensure_future(run_graph(steps, events.append))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [s.state for s in steps] == [State.cancelled, State.cancelled]
