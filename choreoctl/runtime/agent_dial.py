"""How the agent reaches the gateway: TLS identity, HTTP CONNECT proxies, clear failures.

The TLS context is rebuilt for every dial, so a certificate renewed on disk (cert-manager
rotates ``cluster-agent-tls``) is used at the next reconnect without a restart.
``HTTPS_PROXY``/``NO_PROXY`` are honoured for the ``wss://`` URL. When the gateway's
certificate does not hold the name dialed (the most common set-up mistake), the error
names the names it does hold.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import ssl
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from choreoctl import pki
from choreoctl.errors import ChoreoError, RuntimeFailure, TrustError
from choreoctl.runtime import protocol as p

_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
_IP_MISMATCH = 64  # X509_V_ERR_IP_ADDRESS_MISMATCH


def client_context(cert: str, key: str, server_ca: str | None) -> ssl.SSLContext:
    """TLS ≥ 1.2 client context with the agent certificate, trusting ``server_ca``."""
    try:
        ctx = ssl.create_default_context(cafile=server_ca or None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        leaf = pki.load_certs(Path(cert).read_bytes(), cert)[0]
    except FileNotFoundError as e:
        raise RuntimeFailure(
            f"missing TLS file: {e.filename}",
            hint="mount Secret cluster-agent-tls and ConfigMap cluster-gateway-ca, "
            "or fix --client-cert/--client-key/--server-ca",
        ) from e
    except (OSError, ssl.SSLError) as e:
        raise TrustError(
            f"cannot load the agent TLS files ({cert}, {key}, {server_ca}): {e}",
            hint="the files must be PEM; the key must match the certificate",
        ) from e
    expired = pki.not_after(leaf)
    if expired < dt.datetime.now(dt.UTC):
        raise TrustError(
            f"the agent certificate {cert} expired at {expired:%Y-%m-%dT%H:%M:%SZ}",
            hint="renew it (cert-manager renews Certificate cluster-agent-tls on its own; "
            "check that cert-manager runs in this cluster)",
        )
    return ctx


def proxy_for(url: str) -> str | None:
    """The HTTP CONNECT proxy for ``url`` from HTTPS_PROXY/https_proxy, unless NO_PROXY matches."""
    host = (urlsplit(url).hostname or "").lower()
    if _bypassed(host, os.environ.get("NO_PROXY", os.environ.get("no_proxy", ""))):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get("https") or proxies.get("wss") or None


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether NO_PROXY (names, ``.suffix``, ``*``, IPs and CIDRs) exempts ``host``."""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
            continue
        except ValueError:
            pass
        name = entry.lstrip(".").split(":")[0]
        if host == name or host.endswith("." + name):
            return True
    return False


async def _peer_names(host: str, port: int, timeout: float = 5.0) -> list[str]:
    """The names in the certificate the server at host:port presents (unverified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    async with asyncio.timeout(timeout):
        _, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    try:
        obj = writer.get_extra_info("ssl_object")
        der = obj.getpeercert(binary_form=True) if obj is not None else None
        return pki.cert_names(pki.load_der(der)) if der else []
    finally:
        writer.close()


async def explain_cert_error(
    url: str, err: ssl.SSLCertVerificationError, proxied: bool
) -> ChoreoError:
    """A :class:`TrustError` that says why the gateway's certificate was refused."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    if err.verify_code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
        names: list[str] = []
        if not proxied:
            try:
                names = await _peer_names(host, port)
            except (OSError, TimeoutError, ssl.SSLError, ChoreoError):
                names = []
        held = ", ".join(names) if names else "(could not read them)"
        return TrustError(
            f"the gateway certificate is not valid for {host!r}; it holds: {held}",
            hint="dial one of those names (--server-url), or add this name to the gateway "
            "certificate (topology gateway.externalHost / gateway.extraSANs)",
        )
    return TrustError(
        f"cannot verify the gateway certificate at {host}:{port}: {err.verify_message or err}",
        hint="--server-ca must hold the gateway CA (ConfigMap cluster-gateway-ca, written "
        "by 'choreoctl trust')",
    )


async def dial(
    session: aiohttp.ClientSession,
    url: str,
    plane_type: str,
    plane_id: str,
    ctx: ssl.SSLContext,
    timeout: float,
) -> aiohttp.ClientWebSocketResponse:
    """Open the agent WebSocket; every failure becomes a ChoreoError that says what to fix."""
    proxy = proxy_for(url)
    try:
        async with asyncio.timeout(timeout):
            return await session.ws_connect(
                url,
                params={"planeType": plane_type, "planeID": plane_id},
                headers={p.EXTENSION_HEADER: p.EXTENSION_VERSION, p.BINARY_HEADER: "1"},
                ssl=ctx,
                proxy=proxy,
                autoping=False,
                max_msg_size=p.MAX_FRAME,
                compress=0,
            )
    except aiohttp.WSServerHandshakeError as e:
        hint = {
            400: "check --plane-type and --plane-id",
            401: "register the plane: its CR's spec.clusterAgent.clientCA must hold the CA "
            "that issued this agent's certificate, and spec.planeID must match --plane-id",
            503: "the gateway is restarting; the agent retries",
        }.get(e.status, "see the gateway logs")
        raise RuntimeFailure(
            f"the gateway refused the agent: HTTP {e.status} {e.message}", hint=hint
        ) from e
    except aiohttp.ClientConnectorCertificateError as e:
        cert_err = e.certificate_error
        if isinstance(cert_err, ssl.SSLCertVerificationError):
            raise await explain_cert_error(url, cert_err, proxy is not None) from e
        raise TrustError(f"TLS with the gateway failed: {cert_err}") from e
    except aiohttp.ClientSSLError as e:
        raise TrustError(
            f"TLS with the gateway failed: {e.os_error if hasattr(e, 'os_error') else e}",
            hint="the gateway refused this agent's certificate (unknown CA, expired, or not "
            "a client certificate); check Secret cluster-agent-tls",
        ) from e
    except aiohttp.ServerDisconnectedError as e:
        raise TrustError(
            f"the gateway at {url} hung up during the handshake",
            hint="it most likely refused this agent's certificate: its CA is not in any "
            "plane CR's spec.clusterAgent.clientCA, or it expired (see the gateway log)",
        ) from e
    except (aiohttp.ClientError, OSError) as e:
        via = f" via proxy {proxy}" if proxy else ""
        if isinstance(e, aiohttp.ClientConnectorError):
            e = e.os_error  # its own text repeats the SSL context's repr
        raise RuntimeFailure(
            f"cannot reach the gateway at {url}{via}: {e}",
            hint="check --server-url, DNS, the network path and HTTPS_PROXY/NO_PROXY",
        ) from e
    except TimeoutError as e:
        raise RuntimeFailure(
            f"the gateway at {url} did not complete the handshake within {timeout:g}s",
            hint="check the network path to the gateway",
        ) from e


def files_present(*paths: str) -> None:
    """Fail at start-up, naming the flag's file, when a TLS file is missing."""
    missing = [x for x in paths if x and not os.path.isfile(x)]
    if missing:
        raise RuntimeFailure(
            f"missing TLS file(s): {', '.join(missing)}",
            hint="mount Secret cluster-agent-tls and ConfigMap cluster-gateway-ca",
        )
