"""Ctrl-C always ends a command's event loop in KeyboardInterrupt (exit 130)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from choreoctl.cli import aio


async def interrupt_soon() -> None:
    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)


def test_a_plain_run_returns_its_result() -> None:
    async def work() -> int:
        await asyncio.sleep(0)
        return 7

    assert aio.run(work()) == 7


def test_ctrl_c_cancels_the_work() -> None:
    reached: list[str] = []

    async def work() -> None:
        await interrupt_soon()
        try:
            await asyncio.sleep(10)
        finally:
            reached.append("cleanup")

    with pytest.raises(KeyboardInterrupt):
        aio.run(work())
    assert reached == ["cleanup"]


def test_ctrl_c_is_not_lost_when_the_work_swallows_the_cancel() -> None:
    async def work() -> str:
        await interrupt_soon()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # what a library that turns cancellation into an error amounts to
        return "finished anyway"

    with pytest.raises(KeyboardInterrupt):
        aio.run(work())
