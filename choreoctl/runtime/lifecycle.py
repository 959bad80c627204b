"""Process lifecycle shared by the gateway, agent and controller."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from choreoctl.errors import RuntimeFailure

if TYPE_CHECKING:
    from aiohttp import web


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """An event (``stop`` or a new one) that SIGTERM and SIGINT set, for a graceful exit.

    Outside the main thread (or on platforms without loop signal handlers) the
    handlers cannot be installed; the caller's own ``stop`` still works.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    return stop


async def serve_plain(
    routes: Mapping[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    host: str,
    port: int,
) -> web.AppRunner:
    """A plain-HTTP listener (health, readiness, metrics) with these GET routes.

    A port someone else holds is a :class:`RuntimeFailure` naming ``--health-port``.
    """
    from aiohttp import web

    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        raise RuntimeFailure(
            f"cannot listen on {host}:{port}: {e.strerror or e}",
            hint="another process holds the port; choose another with --health-port",
        ) from e
    return runner
