"""Re-sent, never-joined name lookups (choreoctl/dns.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest

from choreoctl import dns


async def test_a_real_name_resolves_and_a_reserved_one_does_not() -> None:
    infos = await dns.getaddrinfo("localhost", 443, timeout=10)
    assert any(info[4][1] == 443 for info in infos)
    with pytest.raises((socket.gaierror, TimeoutError)):
        await dns.getaddrinfo("no-such-host.invalid", timeout=10)


class Resolver:
    """A resolver that loses the first query for each name in ``lossy`` (it blocks until
    released); every other query is answered at once."""

    def __init__(self, lossy: set[str]) -> None:
        self.calls: dict[str, int] = {}
        self.lossy = lossy
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, host: str, port: Any, *args: Any, **kw: Any) -> list[Any]:
        with self.lock:
            self.calls[host] = self.calls.get(host, 0) + 1
            lost = host in self.lossy and self.calls[host] == 1
        if lost:
            self.release.wait(30)
            raise socket.gaierror("lost")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0))]


async def test_a_lost_query_is_asked_again_and_the_answer_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = Resolver({"gateway.example.com"})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    timer = dns.RetransmitTimer(initial=0.1)
    try:
        infos = await dns.getaddrinfo("gateway.example.com", timeout=20, timer=timer)
        assert infos[0][4][0] == "192.0.2.7"
        assert resolver.calls == {"gateway.example.com": 2}
        # Karn's rule: the answer to a re-sent lookup teaches the timer nothing
        assert timer.timeout == 0.1
    finally:
        resolver.release.set()


@pytest.mark.timeout(30)
async def test_answers_to_other_names_shorten_the_wait_for_a_lost_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before any answer the timer would wait 60 s, past the 20 s timeout; the other
    # names' prompt answers teach it the resolver's pace, so the lost query is re-sent.
    names = ["api.example.com", "console.example.com", "lost.example.com"]
    resolver = Resolver({"lost.example.com"})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    timer = dns.RetransmitTimer(initial=60.0, floor=0.01)
    try:
        answers = await dns.resolve_all(names, 443, timeout=20, timer=timer)
        assert all(isinstance(a, list) and a[0][4][0] == "192.0.2.7" for a in answers)
        assert resolver.calls == {n: 1 + (n == "lost.example.com") for n in names}
        assert timer.timeout < 60.0
    finally:
        resolver.release.set()


def test_the_timer_follows_rfc_6298_within_its_bounds() -> None:
    timer = dns.RetransmitTimer(initial=0.25, floor=0.02, ceiling=2.0)
    assert timer.timeout == 0.25
    timer.sample(0.1)  # srtt 0.1, rttvar 0.05: 0.1 + 4 * 0.05
    assert timer.timeout == pytest.approx(0.3)
    timer.sample(0.1)  # rttvar 0.0375, srtt 0.1
    assert timer.timeout == pytest.approx(0.25)
    fast = dns.RetransmitTimer(floor=0.02)
    fast.sample(0.0003)
    assert fast.timeout == 0.02
    slow = dns.RetransmitTimer(ceiling=2.0)
    slow.sample(5.0)
    assert slow.timeout == 2.0


@pytest.mark.timeout(10)
def test_a_silent_resolver_neither_outlives_the_timeout_nor_holds_up_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def silent(*args: Any, **kw: Any) -> list[Any]:
        release.wait(60)
        raise socket.gaierror("late")

    monkeypatch.setattr(socket, "getaddrinfo", silent)
    try:
        with pytest.raises(TimeoutError):
            asyncio.run(dns.getaddrinfo("gateway.example.com", timeout=0.3))
        # asyncio.run returned while the lookup thread is still blocked: it is a daemon
        # thread, not the loop's executor, which asyncio.run would have joined.
        assert any(
            t.name.startswith("getaddrinfo ") and t.is_alive() for t in threading.enumerate()
        )
    finally:
        release.set()
