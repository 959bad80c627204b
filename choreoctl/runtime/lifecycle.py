"""Process lifecycle shared by the gateway, agent and controller."""

from __future__ import annotations

import asyncio
import signal


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
