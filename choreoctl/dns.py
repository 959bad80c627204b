"""Name lookups that a silent resolver cannot stall.

``socket.getaddrinfo`` cannot be cancelled, and when a resolver's answer is lost the C
library waits its whole timeout (5 s by default) before asking again. asyncio's own
``loop.getaddrinfo`` runs it in the loop's executor, which ``asyncio.run`` joins on exit,
so one lost packet would hold up a whole preflight long after its check gave up.

Here every lookup runs in a daemon thread (never joined), and a lookup still silent
after a short delay is asked again in parallel ("hedged"); the first answer wins. A
resolver that drops one packet now costs a quarter of a second, not five.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Sequence
from typing import Any

# Seconds after the start at which a lookup is (re)sent. On this project's test machine
# a quarter to a third of bursts of 8 lookups lost one query (and waited 5 s for it),
# whether they ran one at a time or 8 at once; an answer takes a few milliseconds.
HEDGE_DELAYS = (0.0, 0.25, 1.0, 2.0)

AddrInfo = tuple[Any, ...]


async def getaddrinfo(
    host: str,
    port: int | None = None,
    *,
    timeout: float,
    hedge: Sequence[float] = HEDGE_DELAYS,
) -> list[AddrInfo]:
    """``socket.getaddrinfo(host, port, type=SOCK_STREAM)``, bounded by ``timeout``.

    Raises :class:`socket.gaierror` when the name does not resolve and
    :class:`TimeoutError` when no lookup answered in time.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[list[AddrInfo]] = loop.create_future()

    def settle(result: list[AddrInfo] | BaseException) -> None:
        if answer.done():
            return
        if isinstance(result, BaseException):
            answer.set_exception(result)
        else:
            answer.set_result(result)

    def lookup() -> None:
        result: list[AddrInfo] | BaseException
        try:
            result = list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as e:
            result = e if isinstance(e, OSError) else socket.gaierror(str(e))
        try:
            loop.call_soon_threadsafe(settle, result)
        except RuntimeError:
            pass  # the loop has closed: nobody waits for this answer any more

    def start() -> None:
        if not answer.done():
            threading.Thread(target=lookup, name=f"getaddrinfo {host}", daemon=True).start()

    handles = [loop.call_later(delay, start) for delay in hedge if delay < timeout]
    try:
        return await asyncio.wait_for(answer, timeout)
    finally:
        for handle in handles:
            handle.cancel()
