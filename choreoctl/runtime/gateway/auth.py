"""Who may connect: plane CRs, their ``clientCA`` bundles, and the TLS contexts of the ports.

The identity of an agent is not its certificate's name. As in OpenChoreo, the gateway
takes every plane CR of the requested type whose effective planeID (``spec.planeID``,
else ``metadata.name``) matches, and verifies the client certificate against each CR's
``spec.clusterAgent.clientCA``; the connection is authorized for exactly the CRs whose
bundle verifies it.

Python's ``ssl`` has no verify callback, so the agent port cannot "request a certificate
and verify it later" as Go does. Its context instead trusts the union of every CA seen in
any plane CR (it only grows while the process runs); the per-CR check above is the
authorization. A certificate from a CA no CR names therefore fails the TLS handshake,
one from a known CA but for another plane's CR gets 401.

A ``clientCA`` held in a Secret (``secretKeyRef``) changes without its CR changing, e.g.
when a CA is rotated. The gateway re-reads each such Secret by name every
``secret_poll`` seconds and re-validates live connections when its data changed. It does
not watch Secrets: its Role may only ``get`` them, so it cannot list or watch the
namespace's other Secrets (see templates/control-plane/cluster-gateway.yaml.j2).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from choreoctl import pki
from choreoctl.errors import ChoreoError, RuntimeFailure, TrustError
from choreoctl.runtime.config import API_VERSION, PLANE_KINDS
from choreoctl.runtime.jsonlog import fields

if TYPE_CHECKING:
    from cryptography import x509

    from choreoctl.kube.client import KubeClient

log = logging.getLogger("choreoctl.gateway.auth")

CRKey = tuple[str, str]  # (namespace, name)
ChangeCallback = Callable[[str, str], None]  # (plane type, plane ID)


@dataclass
class PlaneCR:
    """The part of a plane CR the gateway needs, with its clientCA bundle resolved."""

    plane_type: str
    namespace: str
    name: str
    plane_id: str
    bundle: list[x509.Certificate] = field(default_factory=list)
    problem: str = ""  # why the bundle could not be resolved, if it could not

    @property
    def key(self) -> CRKey:
        return (self.namespace, self.name)


def effective_plane_id(obj: dict[str, Any]) -> str:
    """``spec.planeID``, else ``metadata.name`` (OpenChoreo's rule)."""
    return str((obj.get("spec") or {}).get("planeID") or obj["metadata"]["name"])


def authorize(cert: x509.Certificate, crs: list[PlaneCR]) -> tuple[set[CRKey], list[str]]:
    """The CRs whose bundle verifies ``cert``, and one reason per CR that does not."""
    granted: set[CRKey] = set()
    reasons: list[str] = []
    for cr in crs:
        if cr.problem:
            reasons.append(f"{cr.namespace}/{cr.name}: {cr.problem}")
            continue
        try:
            pki.verify_client_cert(cert, cr.bundle)
        except TrustError as e:
            reasons.append(f"{cr.namespace}/{cr.name}: {e.message}")
            continue
        granted.add(cr.key)
    return granted, reasons


def server_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A TLS ≥ 1.2 server context; with ``client_ca`` client certificates are required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.load_verify_locations(cafile=client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise TrustError(
            f"cannot load the gateway TLS files ({cert}, {key}, {client_ca}): {e}",
            hint="check --tls-cert, --tls-key and --client-ca (Secret cluster-gateway-tls)",
        ) from e
    return ctx


class AgentTrust:
    """The agent port's TLS context: client certificates optional, trusting every CR CA."""

    def __init__(self, cert: str, key: str) -> None:
        self.context = server_context(cert, key)
        self.context.verify_mode = ssl.CERT_OPTIONAL
        self._known: set[str] = set()

    def add(self, certs: list[x509.Certificate]) -> None:
        """Trust ``certs`` for the TLS handshake from now on (new connections)."""
        new = [c for c in certs if pki.fingerprint(c) not in self._known]
        if new:
            self.context.load_verify_locations(cadata=pki.bundle_pem(new).decode())
            self._known.update(pki.fingerprint(c) for c in new)


class PlaneSource:
    """Plane CRs held in memory; subclasses fill it from a cluster.

    Used as is by tests and benchmarks that run a gateway without Kubernetes. Every
    change calls the subscribers with (plane type, plane ID) so live connections are
    re-validated.
    """

    def __init__(self) -> None:
        self.crs: dict[tuple[str, CRKey], PlaneCR] = {}
        self._by_plane: dict[tuple[str, str], dict[CRKey, PlaneCR]] = {}
        self.subscribers: list[ChangeCallback] = []
        self.trust: AgentTrust | None = None

    def put(self, cr: PlaneCR) -> None:
        """Add or replace a CR."""
        old = self.crs.get((cr.plane_type, cr.key))
        if old is not None:
            self._by_plane.get((old.plane_type, old.plane_id), {}).pop(old.key, None)
        self.crs[(cr.plane_type, cr.key)] = cr
        self._by_plane.setdefault((cr.plane_type, cr.plane_id), {})[cr.key] = cr
        if self.trust is not None and cr.bundle:
            self.trust.add(cr.bundle)
        if old is not None and old.plane_id != cr.plane_id:
            self._changed(cr.plane_type, old.plane_id)
        self._changed(cr.plane_type, cr.plane_id)

    def remove(self, plane_type: str, key: CRKey) -> None:
        """Drop a CR."""
        old = self.crs.pop((plane_type, key), None)
        if old is not None:
            self._by_plane.get((plane_type, old.plane_id), {}).pop(key, None)
            self._changed(plane_type, old.plane_id)

    def _changed(self, plane_type: str, plane_id: str) -> None:
        for cb in self.subscribers:
            cb(plane_type, plane_id)

    async def planes(self, plane_type: str, plane_id: str) -> list[PlaneCR]:
        """Every CR of ``plane_type`` whose effective planeID is ``plane_id``."""
        return list(self._by_plane.get((plane_type, plane_id), {}).values())

    async def refresh(self, plane_type: str) -> None:
        """Re-read CRs of one type now (a notify arrived); nothing to do in memory."""

    async def start(self) -> None:
        """Begin following the source."""

    async def stop(self) -> None:
        """Stop following the source."""


SecretRef = tuple[str, str, str]  # (namespace, name, key)


def secret_ref(obj: dict[str, Any]) -> SecretRef | None:
    """Where a plane CR's clientCA lives when it is a ``secretKeyRef``, else None."""
    ca = ((obj.get("spec") or {}).get("clusterAgent") or {}).get("clientCA") or {}
    ref = ca.get("secretKeyRef") or {}
    if ca.get("value") or not (ref.get("name") and ref.get("key")):
        return None
    namespace = ref.get("namespace") or obj["metadata"].get("namespace", "")
    return (str(namespace), str(ref["name"]), str(ref["key"]))


@dataclass
class _FromSecret:
    """A CR whose clientCA is a Secret's key, and that key's data when last read."""

    obj: dict[str, Any]
    ref: SecretRef
    data: str | None


class KubePlaneSource(PlaneSource):
    """Plane CRs from the control plane's API server: list, then watch, per kind."""

    def __init__(self, kube: KubeClient, resync: float = 300.0, secret_poll: float = 15.0) -> None:
        super().__init__()
        self.kube = kube
        self.resync = resync
        self.secret_poll = secret_poll
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listed: set[str] = set()
        self._from_secret: dict[tuple[str, CRKey], _FromSecret] = {}

    async def _secret_data(self, ref: SecretRef) -> tuple[str | None, str]:
        """The base64 data of the ref's key, or None and why not."""
        namespace, name, key = ref
        secret = await self.kube.get("v1", "Secret", name, namespace)
        if secret is None:
            return None, f"Secret {namespace}/{name} not found"
        data = (secret.get("data") or {}).get(key)
        if not data:
            return None, f"Secret {namespace}/{name} has no key {key}"
        return str(data), ""

    async def _bundle(
        self, obj: dict[str, Any], ref: SecretRef | None
    ) -> tuple[list[x509.Certificate], str, str | None]:
        """The CR's clientCA bundle, why it is empty, and the Secret data it came from."""
        ca = ((obj.get("spec") or {}).get("clusterAgent") or {}).get("clientCA") or {}
        data: str | None = None
        try:
            if ca.get("value"):
                certs = pki.load_certs(str(ca["value"]), "spec.clusterAgent.clientCA.value")
                return certs, "", None
            if ref is None:
                return [], "spec.clusterAgent.clientCA is not set", None
            data, problem = await self._secret_data(ref)
            if data is None:
                return [], problem, None
            import base64

            return pki.load_certs(base64.b64decode(data), f"Secret {ref[1]}"), "", data
        except ChoreoError as e:
            return [], e.message, data

    async def _upsert(self, plane_type: str, obj: dict[str, Any]) -> None:
        ref = secret_ref(obj)
        bundle, problem, data = await self._bundle(obj, ref)
        md = obj["metadata"]
        cr = PlaneCR(plane_type, md.get("namespace", ""), md["name"], effective_plane_id(obj))
        cr.bundle, cr.problem = bundle, problem
        if ref is None:
            self._from_secret.pop((plane_type, cr.key), None)
        else:
            self._from_secret[(plane_type, cr.key)] = _FromSecret(obj, ref, data)
        self.put(cr)

    def remove(self, plane_type: str, key: CRKey) -> None:
        self._from_secret.pop((plane_type, key), None)
        super().remove(plane_type, key)

    async def recheck_secrets(self) -> int:
        """Re-read every Secret a clientCA points at; re-admit or drop agents of the CRs
        whose Secret data changed. Returns how many CRs changed."""
        by_ref: dict[SecretRef, list[tuple[str, CRKey]]] = {}
        for user, held in self._from_secret.items():
            by_ref.setdefault(held.ref, []).append(user)
        changed = 0
        for ref, users in by_ref.items():
            data, _ = await self._secret_data(ref)
            for plane_type, key in users:
                now = self._from_secret.get((plane_type, key))
                if now is not None and now.data != data:
                    await self._upsert(plane_type, now.obj)
                    changed += 1
        return changed

    async def _poll_secrets(self) -> None:
        while True:
            await asyncio.sleep(self.secret_poll)
            try:
                changed = await self.recheck_secrets()
            except ChoreoError as e:
                log.warning("cannot re-read clientCA Secrets", extra=fields(error=e.message))
                continue
            if changed:
                log.info("clientCA Secret changed", extra=fields(crs=changed))

    async def refresh(self, plane_type: str) -> None:
        kind = PLANE_KINDS[plane_type]
        items = await self.kube.list(API_VERSION, kind)
        seen = set()
        for obj in items:
            await self._upsert(plane_type, obj)
            seen.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
        for t, key in list(self.crs):
            if t == plane_type and key not in seen:
                self.remove(t, key)

    async def _follow(self, plane_type: str) -> None:
        from choreoctl.runtime.backoff import Backoff

        backoff = Backoff(base=1.0, cap=30.0, healthy_after=30.0)
        kind = PLANE_KINDS[plane_type]
        while True:
            try:
                await self.refresh(plane_type)
                self._listed.add(plane_type)
                if self._listed == set(PLANE_KINDS):
                    self.ready.set()
                backoff.connected()
                deadline = time.monotonic() + self.resync
                async for etype, obj in self.kube.watch(
                    API_VERSION, kind, timeout_seconds=int(self.resync)
                ):
                    if etype in ("ADDED", "MODIFIED"):
                        await self._upsert(plane_type, obj)
                    elif etype == "DELETED":
                        md = obj["metadata"]
                        self.remove(plane_type, (md.get("namespace", ""), md["name"]))
                    if time.monotonic() > deadline:
                        break
                backoff.disconnected()
            except asyncio.CancelledError:
                raise
            except ChoreoError as e:
                backoff.disconnected()
                delay = backoff.next_delay()
                log.warning(
                    "cannot follow plane CRs",
                    extra=fields(kind=kind, error=e.message, retryIn=round(delay, 2)),
                )
                await asyncio.sleep(delay)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._follow(t)) for t in PLANE_KINDS]
        self._tasks.append(asyncio.create_task(self._poll_secrets()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


def require_files(*paths: str) -> None:
    """Fail early, with the flag to fix, when a TLS file is missing."""
    import os

    missing = [p for p in paths if p and not os.path.isfile(p)]
    if missing:
        raise RuntimeFailure(
            f"missing TLS file(s): {', '.join(missing)}",
            hint="mount the certificate Secret, or point the flags at existing files",
        )
