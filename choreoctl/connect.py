"""Connections to a host by name, for anything that dials outside aiohttp and httpx.

The name resolves through :mod:`choreoctl.dns` (a lost DNS answer cannot stall the
process), then each address is tried in resolver order until one accepts. Used by the
typed verbs' HTTP client (:mod:`choreoctl.kube.http1`) and the gateway probe
(:mod:`choreoctl.runtime.probe`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from typing import Any


async def addresses(host: str, port: int, timeout: float) -> list[str]:
    """``host``'s addresses in resolver order, each once (an IP address is its own)."""
    from choreoctl.dns import getaddrinfo

    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        infos = await getaddrinfo(host, port, timeout=timeout)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def open_connection(
    host: str, port: int, *, timeout: float, **kwargs: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` to the first of ``host``'s addresses that accepts,
    all within ``timeout`` seconds (``kwargs``: ``ssl``, ``server_hostname``, ``limit``).

    Raises :class:`TimeoutError`, :class:`socket.gaierror` (the name does not resolve),
    :class:`ssl.SSLError` at once (another address will not fix TLS), or the last
    address's :class:`OSError`.
    """
    async with asyncio.timeout(timeout):
        failure: OSError = OSError(f"no address of {host} to connect to")
        for address in await addresses(host, port, timeout):
            try:
                return await asyncio.open_connection(address, port, **kwargs)
            except ssl.SSLError:
                raise
            except OSError as e:
                failure = e
        raise failure


async def close(writer: asyncio.StreamWriter) -> None:
    """Close ``writer`` and wait for it; a peer already gone is not an error."""
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):
        pass
