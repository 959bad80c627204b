"""The typed verbs' HTTP/1.1 client (choreoctl/kube/http1.py) against a loopback server
that answers with exactly the bytes each test gives it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from choreoctl.errors import ClusterError, ClusterUnreachable
from choreoctl.kube.http1 import MAX_CONNECTIONS, Http1Client

# How the server answers one request: the raw bytes to send, then whether to close.
Answer = Callable[[bytes], tuple[bytes, bool]]


@dataclass
class Server:
    """A loopback HTTP server whose answers are raw bytes; it records what it received."""

    answer: Answer
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                data, close = self.answer(request)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


ServeFn = Callable[[Answer], Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[ServeFn]:
    """Start servers on loopback ports; all are closed after the test."""
    listeners: list[asyncio.Server] = []

    async def start(answer: Answer) -> Server:
        server = Server(answer)
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        listeners.append(listener)
        server.port = listener.sockets[0].getsockname()[1]
        return server

    yield start
    for listener in listeners:
        listener.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def client(server: Server, timeout: float = 5.0) -> Http1Client:
    return Http1Client(f"http://127.0.0.1:{server.port}", False, timeout, "test")


async def test_content_length_and_keep_alive_reuse_one_connection(serve: ServeFn) -> None:
    server = await serve(lambda req: (ok(b'{"a":1}'), False))
    c = client(server)
    for _ in range(3):
        status, headers, body = await c.exchange("GET", "/x?y=1", {"Accept": "a/b"}, None, 5)
        assert (status, body) == (200, b'{"a":1}')
        assert ("Content-Length", "7") in headers
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nAccept: a/b\r\n" in first
    await c.aclose()


async def test_chunked_body_with_extensions_and_trailers(serve: ServeFn) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    server = await serve(lambda req: (chunked, False))
    c = client(server)
    for _ in range(2):  # the connection stays usable after the trailers
        assert (await c.exchange("GET", "/", {}, None, 5))[2] == b"Wikipedia"
    assert server.connections == 1
    await c.aclose()


async def test_post_sends_its_body_and_interim_responses_are_skipped(serve: ServeFn) -> None:
    server = await serve(lambda req: (b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"made"), False))
    c = client(server)
    status, _, body = await c.exchange("POST", "/p", {"Content-Type": "x/y"}, b"abc", 5)
    assert (status, body) == (200, b"made")
    assert server.requests[0].endswith(b"Content-Length: 3\r\n\r\nabc")
    await c.aclose()


async def test_a_close_framed_body_ends_the_connection(serve: ServeFn) -> None:
    server = await serve(
        lambda req: (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", True)
    )
    c = client(server)
    assert (await c.exchange("GET", "/", {}, None, 5))[2] == b"all of it"
    assert (await c.exchange("GET", "/", {}, None, 5))[2] == b"all of it"
    assert server.connections == 2
    await c.aclose()


async def test_a_kept_alive_connection_closed_while_idle_is_retried_for_get_only(
    serve: ServeFn,
) -> None:
    # The server answers, keeps the connection and then drops it without a word when the
    # next request comes: the race of a server closing an idle connection.
    seen = {"n": 0}

    def answer(req: bytes) -> tuple[bytes, bool]:
        seen["n"] += 1
        return (ok(b"one"), False) if seen["n"] % 2 else (b"", True)

    server = await serve(answer)
    c = client(server)
    assert (await c.exchange("GET", "/", {}, None, 5))[2] == b"one"
    assert (await c.exchange("GET", "/", {}, None, 5))[2] == b"one"  # retried on a new one
    assert server.connections == 2
    with pytest.raises(ClusterUnreachable, match="closed the connection without answering"):
        await c.exchange("POST", "/", {}, b"{}", 5)  # not idempotent: never sent twice
    await c.aclose()


async def test_a_silent_server_times_out_as_unreachable(serve: ServeFn) -> None:
    server = await serve(lambda req: (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", False))
    c = client(server)
    with pytest.raises(ClusterUnreachable, match="no answer from .*ReadTimeout"):
        await c.exchange("GET", "/", {}, None, 0.3)
    await c.aclose()


async def test_garbage_and_cut_off_bodies_are_broken_off_responses(serve: ServeFn) -> None:
    server = await serve(lambda req: (b"SSH-2.0-OpenSSH\r\n\r\n", True))
    with pytest.raises(ClusterUnreachable, match="broke off the response"):
        await client(server).exchange("GET", "/", {}, None, 5)
    cut = await serve(lambda req: (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", True))
    with pytest.raises(ClusterUnreachable, match="broke off the response"):
        await client(cut).exchange("GET", "/", {}, None, 5)


async def test_refused_connection_and_header_injection_are_clear_errors() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    c = Http1Client(f"http://127.0.0.1:{port}", False, 5, "gone")
    with pytest.raises(ClusterUnreachable, match="gone: cannot reach http://127.0.0.1"):
        await c.exchange("GET", "/", {}, None, 5)
    with pytest.raises(ClusterError, match="line break"):
        await c.exchange("GET", "/", {"Authorization": "Bearer a\r\nX-Evil: 1"}, None, 5)
    with pytest.raises(ClusterError, match="'€' cannot go into an HTTP header"):
        await c.exchange("GET", "/", {"Authorization": "Bearer €"}, None, 5)


async def test_a_host_name_is_resolved_and_its_addresses_tried_in_turn(serve: ServeFn) -> None:
    # localhost may resolve to ::1 first, where nothing listens: 127.0.0.1 is next.
    server = await serve(lambda req: (ok(b"here"), False))
    c = Http1Client(f"http://localhost:{server.port}", False, 5, "test")
    assert (await c.exchange("GET", "/", {}, None, 5))[2] == b"here"
    assert server.requests[0].startswith(b"GET / HTTP/1.1\r\nHost: localhost:")
    await c.aclose()


async def test_requests_beyond_the_connection_cap_wait_for_a_free_connection(
    serve: ServeFn,
) -> None:
    server = await serve(lambda req: (ok(b"x"), False))
    c = client(server)
    many = MAX_CONNECTIONS + 8
    got = await asyncio.gather(*(c.exchange("GET", f"/{i}", {}, None, 5) for i in range(many)))
    assert [g[2] for g in got] == [b"x"] * many
    assert server.connections == MAX_CONNECTIONS  # the 8 late ones reused freed connections
    await c.aclose()
