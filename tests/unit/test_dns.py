"""Hedged, never-joined name lookups (choreoctl/dns.py)."""

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
    """A resolver whose first query is lost (blocks until released); later ones answer."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, host: str, port: Any, *args: Any, **kw: Any) -> list[Any]:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            self.release.wait(30)
            raise socket.gaierror("lost")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0))]


async def test_a_lost_query_is_asked_again_and_the_answer_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    try:
        infos = await dns.getaddrinfo("gateway.example.com", timeout=20, hedge=(0.0, 0.1))
        assert infos[0][4][0] == "192.0.2.7"
        assert resolver.calls == 2
    finally:
        resolver.release.set()


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
            asyncio.run(dns.getaddrinfo("gateway.example.com", timeout=0.3, hedge=(0.0,)))
        # asyncio.run returned while the lookup thread is still blocked: it is a daemon
        # thread, not the loop's executor, which asyncio.run would have joined.
        assert any(
            t.name.startswith("getaddrinfo ") and t.is_alive() for t in threading.enumerate()
        )
    finally:
        release.set()
