"""Name lookups that a silent resolver cannot stall.

``socket.getaddrinfo`` cannot be cancelled, and when a resolver's answer is lost the C
library waits its whole timeout (5 s by default) before asking again. asyncio's own
``loop.getaddrinfo`` runs it in the loop's executor, which ``asyncio.run`` joins on exit,
so one lost packet would hold up a whole preflight long after its check gave up.

Here every lookup runs in a daemon thread (never joined), and a lookup still silent
after a retransmission timeout is asked again in parallel; the first answer wins. The
timeout follows the answers this process has seen, as TCP's does (RFC 6298: smoothed
time plus four deviations, Karn's rule, doubling per resend): a resolver that answers
in a millisecond gets a lost query re-sent after 20 ms, a slow recursive one is not
flooded, and before any answer the first resend waits a quarter of a second.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

AddrInfo = tuple[Any, ...]
Answer = list[AddrInfo] | OSError


class RetransmitTimer:
    """RFC 6298's retransmission timeout, fed by lookups answered on their first send."""

    def __init__(self, initial: float = 0.25, floor: float = 0.02, ceiling: float = 2.0) -> None:
        self.initial, self.floor, self.ceiling = initial, floor, ceiling
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._lock = threading.Lock()  # loops of several threads may share one timer

    def sample(self, rtt: float) -> None:
        """Record the time one unambiguous answer (no resend yet) took."""
        with self._lock:
            if self._srtt is None:
                self._srtt, self._rttvar = rtt, rtt / 2
            else:
                self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
                self._srtt = 0.875 * self._srtt + 0.125 * rtt

    @property
    def timeout(self) -> float:
        """Seconds to wait for an answer before asking again (before any doubling)."""
        if self._srtt is None:
            return self.initial
        return min(self.ceiling, max(self.floor, self._srtt + 4 * self._rttvar))


# One timer per process: the resolver is the machine's, whichever check asks it.
TIMER = RetransmitTimer()


@dataclass(eq=False)  # hashed by identity: kept in a set while unanswered
class _Lookup:
    host: str
    port: int | None
    answer: asyncio.Future[Answer]
    sent: list[float] = field(default_factory=list)  # loop times of every send


def _send(loop: asyncio.AbstractEventLoop, q: _Lookup) -> None:
    """Ask the resolver (again) in a daemon thread; its answer settles ``q.answer``."""

    def settle(result: Answer) -> None:
        if not q.answer.done():
            q.answer.set_result(result)

    def lookup() -> None:
        result: Answer
        try:
            result = list(socket.getaddrinfo(q.host, q.port, type=socket.SOCK_STREAM))
        except OSError as e:
            result = e
        except UnicodeError as e:  # a label too long for IDNA
            result = socket.gaierror(str(e))
        try:
            loop.call_soon_threadsafe(settle, result)
        except RuntimeError:
            pass  # the loop has closed: nobody waits for this answer any more

    q.sent.append(loop.time())
    threading.Thread(target=lookup, name=f"getaddrinfo {q.host}", daemon=True).start()


async def resolve_all(
    hosts: Sequence[str],
    port: int | None = None,
    *,
    timeout: float,
    timer: RetransmitTimer = TIMER,
) -> list[Answer | TimeoutError]:
    """``socket.getaddrinfo(host, port, type=SOCK_STREAM)`` for every host at once.

    One entry per host, in order: the addresses, the :class:`OSError` (usually
    :class:`socket.gaierror`) the resolver gave, or :class:`TimeoutError` when no
    lookup of that host answered within ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    lookups = [_Lookup(h, port, loop.create_future()) for h in hosts]
    for q in lookups:
        _send(loop, q)
    deadline = loop.time() + timeout
    waiting = set(lookups)
    while waiting:
        now = loop.time()
        for q in [q for q in waiting if q.answer.done()]:
            waiting.discard(q)
            if len(q.sent) == 1:  # Karn: a resent lookup's answer says nothing of delay
                timer.sample(now - q.sent[0])
        if not waiting or now >= deadline:
            break
        rto = timer.timeout
        for q in waiting:
            if now + 0.001 >= q.sent[-1] + rto * 2 ** (len(q.sent) - 1):  # due (to a ms)
                _send(loop, q)
        wake = min(q.sent[-1] + rto * 2 ** (len(q.sent) - 1) for q in waiting)
        await asyncio.wait(
            [q.answer for q in waiting],
            timeout=max(0.0, min(wake, deadline) - now),
            return_when=asyncio.FIRST_COMPLETED,
        )
    return [q.answer.result() if q.answer.done() else TimeoutError() for q in lookups]


async def getaddrinfo(
    host: str,
    port: int | None = None,
    *,
    timeout: float,
    timer: RetransmitTimer = TIMER,
) -> list[AddrInfo]:
    """``socket.getaddrinfo(host, port, type=SOCK_STREAM)``, bounded by ``timeout``.

    Raises :class:`socket.gaierror` when the name does not resolve and
    :class:`TimeoutError` when no lookup answered in time.
    """
    (answer,) = await resolve_all([host], port, timeout=timeout, timer=timer)
    if isinstance(answer, BaseException):
        raise answer
    return answer
