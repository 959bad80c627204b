"""Reconnect delays: exponential backoff with full jitter, capped, reset after a healthy period.

Full jitter (a uniform draw in ``[0, min(cap, base·2ⁿ)]``) spreads a reconnect storm
after a gateway restart over the whole window instead of synchronised waves; the
reference agent waits a fixed 5 s, which makes every agent of a region retry at once.

Right after a connection that was fine goes away (a gateway restart or crash, the common
case), a short window keeps the ceiling low (:meth:`brief`), so agents find the new
gateway within a couple of seconds of it listening instead of sleeping through a long
backoff they built up while it was starting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """Delays for successive failed attempts; :meth:`connected`/:meth:`disconnected` reset it."""

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        healthy_after: float = 60.0,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base
        self.cap = cap
        self.healthy_after = healthy_after
        self.attempt = 0
        self._rng = rng
        self._clock = clock
        self._connected_at: float | None = None
        self._brief_until = 0.0
        self._brief_cap = cap

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        cap = self.cap if self._clock() >= self._brief_until else min(self.cap, self._brief_cap)
        return float(min(cap, self.base * (2 ** min(self.attempt, 62))))

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts as one more failure."""
        delay = self._rng() * self.ceiling()
        self.attempt += 1
        return delay

    def connected(self) -> None:
        """A connection came up: remember when, to judge whether it was healthy."""
        self._connected_at = self._clock()

    def disconnected(self) -> bool:
        """The connection went down: reset if it lasted ``healthy_after`` seconds (returns
        whether it did)."""
        healthy = self._connected_at is not None and (
            self._clock() - self._connected_at >= self.healthy_after
        )
        if healthy:
            self.attempt = 0
        self._connected_at = None
        return healthy

    def brief(self, cap: float = 2.0, window: float = 30.0) -> None:
        """Keep the ceiling at ``cap`` for the next ``window`` seconds (a restart is under way)."""
        self.attempt = 0
        self._brief_cap = cap
        self._brief_until = self._clock() + window

    def reset(self) -> None:
        """Start over (e.g. the gateway asked for a prompt reconnect)."""
        self.attempt = 0
