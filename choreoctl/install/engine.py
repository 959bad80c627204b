"""A dependency graph of steps run with asyncio, reporting events as it goes.

Why a graph and not a script: the install order (control → trust → observability →
data → build) is a set of dependencies, and the steps that do not depend on each other
(the data planes of three regions) should run at the same time. A failure stops new
steps from starting, lets the running ones finish, and re-raises the first error; the
steps left over are reported as ``cancelled``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from choreoctl.errors import ChoreoError, InputError


class State(enum.StrEnum):
    """Where a step is."""

    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


@dataclass(frozen=True)
class Event:
    """Something that happened to a step (``state``) or inside it (``message`` only)."""

    step: str
    state: State
    title: str = ""
    cluster: str = ""
    plane: str = ""
    elapsed: float = 0.0
    message: str = ""
    error: str = ""  # the error reference when failed

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of ``-o json``'s event stream."""
        return {
            "event": "step",
            "step": self.step,
            "state": self.state.value,
            "title": self.title,
            "cluster": self.cluster,
            "plane": self.plane,
            "elapsed": round(self.elapsed, 3),
            "message": self.message,
            **({"error": self.error} if self.error else {}),
        }


EventSink = Callable[[Event], None]


@dataclass
class Step:
    """One node of the graph: ``run(report)`` does the work and returns a summary line.

    ``report`` lets a step say what it is doing now (e.g. which object it waits for).
    """

    id: str
    title: str
    run: Callable[[Callable[[str], None]], Awaitable[str]]
    deps: tuple[str, ...] = ()
    cluster: str = ""
    plane: str = ""
    state: State = field(default=State.pending)


def check_graph(steps: Sequence[Step]) -> None:
    """Refuse unknown dependencies, duplicate ids and cycles (a bug, said plainly)."""
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        raise InputError(f"duplicate step ids in the install plan: {ids}")
    known = set(ids)
    for s in steps:
        missing = [d for d in s.deps if d not in known]
        if missing:
            raise InputError(f"step {s.id} depends on unknown steps {missing}")
    done: set[str] = set()
    left = list(steps)
    while left:
        ready = [s for s in left if all(d in done for d in s.deps)]
        if not ready:
            raise InputError(f"the install plan has a cycle among {[s.id for s in left]}")
        done.update(s.id for s in ready)
        left = [s for s in left if s.id not in done]


async def run_graph(steps: Sequence[Step], on_event: EventSink) -> None:
    """Run every step once its dependencies are done, concurrently where possible."""
    check_graph(steps)
    by_id = {s.id: s for s in steps}
    started: dict[str, float] = {}
    tasks: dict[asyncio.Task[str], Step] = {}
    errors: list[BaseException] = []

    def emit(step: Step, message: str = "", error: str = "") -> None:
        elapsed = time.monotonic() - started[step.id] if step.id in started else 0.0
        on_event(
            Event(
                step.id, step.state, step.title, step.cluster, step.plane, elapsed, message, error
            )
        )

    for step in steps:
        emit(step)

    def start_ready() -> None:
        for step in steps:
            if step.state is State.pending and all(by_id[d].state is State.done for d in step.deps):
                step.state = State.running
                started[step.id] = time.monotonic()
                emit(step)

                def report(message: str, step: Step = step) -> None:
                    emit(step, message)

                tasks[asyncio.ensure_future(step.run(report))] = step

    try:
        start_ready()
        while tasks:
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                step = tasks.pop(task)
                exc = task.exception()
                if exc is None:
                    step.state = State.done
                    emit(step, task.result())
                else:
                    step.state = State.failed
                    ref = exc.reference if isinstance(exc, ChoreoError) else "error"
                    emit(step, str(exc) or type(exc).__name__, ref)
                    errors.append(exc)
            if not errors:
                start_ready()
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for step in steps:
            if step.state in (State.pending, State.running):
                step.state = State.cancelled
                emit(step)
    if errors:
        raise errors[0]
