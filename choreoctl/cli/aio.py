"""``run``: ``asyncio.run`` for commands, where Ctrl-C always ends in exit 130.

``asyncio.run`` answers the first SIGINT by cancelling the main task. When some library
on the way turns that cancellation into an ordinary error, or a timeout fires in the
same instant and swallows it (asyncio.timeout in Python 3.11), the task carries on and
``asyncio.run`` returns as if nothing happened: an install would finish, a preflight
print its report. Here a SIGINT also marks the run as interrupted, so it ends in
``KeyboardInterrupt`` (exit 130, "interrupted") whatever the task did with the cancel.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion; raise KeyboardInterrupt if SIGINT came meanwhile."""
    interrupted = False

    async def guarded() -> T:
        nonlocal interrupted
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            task.cancel()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (ValueError, RuntimeError, NotImplementedError):
            pass  # not the main thread (tests) or no signal support: asyncio's own way
        try:
            return await main
        finally:
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (ValueError, RuntimeError, NotImplementedError):
                pass

    try:
        result = asyncio.run(guarded())
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    if interrupted:
        raise KeyboardInterrupt
    return result
