"""Can this place reach the gateway? A TCP connect, then the TLS certificate's names.

One implementation for the workstation check (``gateway-reachable``: :func:`tcp_probe`)
and for ``choreoctl agent probe``, which preflight runs in a short-lived Pod of each
plane cluster (``gateway-reachable-in-cluster``): :func:`probe` adds an unverified TLS
handshake when the port is open, to read the certificate's DNS/IP SANs, because the
most common agent failure is a certificate that does not name the host agents dial.
The Pod prints :meth:`ProbeResult.to_json` as one log line; preflight reads it back
with :meth:`ProbeResult.from_log`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from choreoctl.connect import close, open_connection
from choreoctl.errors import ClusterError
from choreoctl.pki import name_covers

VERDICTS = ("open", "refused", "unresolved", "timeout")


@dataclass(frozen=True)
class ProbeResult:
    """What a probe saw: ``verdict`` (one of :data:`VERDICTS`), a sentence, the cert's SANs."""

    verdict: str
    detail: str
    cert_names: tuple[str, ...] = ()

    @property
    def reachable(self) -> bool:
        """The network path works: open, or refused (host answers; nothing listens yet)."""
        return self.verdict in ("open", "refused")

    def to_json(self) -> str:
        """The one JSON line ``choreoctl agent probe`` prints."""
        doc = {"verdict": self.verdict, "detail": self.detail, "certNames": list(self.cert_names)}
        return json.dumps(doc)

    @classmethod
    def from_log(cls, text: str) -> ProbeResult:
        """The last verdict line of a probe Pod's log; :class:`ClusterError` when none."""
        for line in reversed(text.splitlines()):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("verdict") in VERDICTS:
                names = doc.get("certNames") or []
                return cls(str(doc["verdict"]), str(doc.get("detail", "")), tuple(map(str, names)))
        last = text.strip().splitlines()[-1:] or ["(empty log)"]
        raise ClusterError(f"the probe Pod printed no verdict; its log ends: {last[0][:200]}")


def names_cover(names: Sequence[str], host: str) -> bool:
    """Whether SANs ``names`` cover ``host`` as a TLS client checks them (IPs by value,
    ``*.`` wildcards for exactly one label; no common-name fallback)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return any(name_covers(name, host) for name in names)
    return any(_same_ip(name, ip) for name in names)


def _same_ip(name: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(name) == ip
    except ValueError:
        return False


async def _connect(
    host: str, port: int, timeout: float
) -> tuple[asyncio.StreamWriter | None, ProbeResult | None]:
    try:
        _, writer = await open_connection(host, port, timeout=timeout)
    except TimeoutError:
        text = f"no answer from {host}:{port} within {timeout:g}s (firewalled?)"
        return None, ProbeResult("timeout", text)
    except socket.gaierror as e:
        return None, ProbeResult("unresolved", f"{host} does not resolve ({e.strerror})")
    except ConnectionRefusedError:
        return None, ProbeResult("refused", f"{host} answers, nothing listens on {port} yet")
    except OSError as e:
        return None, ProbeResult("timeout", f"cannot reach {host}:{port}: {e.strerror or e}")
    return writer, None


async def tcp_probe(host: str, port: int, timeout: float) -> tuple[str, str]:
    """``(verdict, text)`` of a TCP connect: open, refused, unresolved or timeout."""
    writer, failure = await _connect(host, port, timeout)
    if failure is not None:
        return failure.verdict, failure.detail
    assert writer is not None
    await close(writer)
    return "open", f"{host}:{port} accepts connections"


def _peer_names(der: bytes | None) -> tuple[str, ...]:
    """DNS and IP SANs of a DER certificate (none without a SAN extension)."""
    from cryptography import x509

    if not der:
        return ()
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    return tuple(dns + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)])


async def probe(host: str, port: int, timeout: float) -> ProbeResult:
    """TCP connect to ``host:port``; when open, an unverified TLS handshake reads the
    certificate's SANs and the detail says whether they cover ``host``. Everything
    within ``timeout`` seconds in all."""
    start = time.monotonic()
    writer, failure = await _connect(host, port, timeout)
    if failure is not None:
        return failure
    assert writer is not None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # we only read the names; agents verify for real
    left = max(0.5, timeout - (time.monotonic() - start))
    prefix = f"{host}:{port} accepts connections"
    try:
        await asyncio.wait_for(writer.start_tls(ctx, server_hostname=host), left)
        tls = writer.get_extra_info("ssl_object")
        names = _peer_names(tls.getpeercert(binary_form=True) if tls else None)
    except (TimeoutError, ssl.SSLError, OSError, ValueError) as e:
        writer.transport.abort()
        reason = "no answer" if isinstance(e, TimeoutError) else str(e) or type(e).__name__
        return ProbeResult("open", f"{prefix}, but no TLS handshake ({reason}): not the gateway?")
    await close(writer)
    if not names:
        return ProbeResult("open", f"{prefix}, but its TLS certificate has no SANs")
    shown = ", ".join(names)
    if names_cover(names, host):
        return ProbeResult("open", f"{prefix}; its TLS certificate covers {host}", names)
    text = f"{prefix}, but its TLS certificate names ({shown}) do not cover {host}"
    return ProbeResult("open", text + ": agents will refuse it", names)
