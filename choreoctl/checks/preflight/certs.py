"""Certificate checks: cert-manager where a plane needs it, and bring-your-own TLS."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from pathlib import Path
from typing import Any

from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    failed,
    judged,
    passed,
    skipped,
    warned,
)
from choreoctl.checks.preflight.needs import needs_cert_manager
from choreoctl.checks.preflight.scratch import scratch_namespace
from choreoctl.checks.quantity import version_at_least
from choreoctl.checks.tlsinspect import inspect_byo
from choreoctl.errors import ChoreoError
from choreoctl.topology.model import Plane, PlaneKind, TLSIssuer, Topology

MIN_CERT_MANAGER = "1.12.0"
# cert-manager's controller elects a leader through this Lease (its default flags).
LEASE_NAME, LEASE_NAMESPACE, LEASE_FRESH_SECONDS = "cert-manager-controller", "kube-system", 120
CERT_MANAGER_CRDS = (
    "certificates.cert-manager.io",
    "issuers.cert-manager.io",
    "clusterissuers.cert-manager.io",
    "certificaterequests.cert-manager.io",
)


def _established(crd: dict[str, Any] | None) -> bool:
    conds = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)


def controller_version(dep: dict[str, Any]) -> str:
    """cert-manager's version from its Deployment: the version label, else the image tag."""
    labels = (dep.get("metadata") or {}).get("labels") or {}
    if labels.get("app.kubernetes.io/version"):
        return str(labels["app.kubernetes.io/version"])
    containers = (
        ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", [])
    )
    for c in containers:
        image = str(c.get("image", "")).split("@")[0]
        if ":" in image.rsplit("/", 1)[-1]:
            return image.rsplit(":", 1)[1]
    return ""


async def find_controller(ctx: CheckContext) -> dict[str, Any] | None:
    """The cert-manager controller Deployment (chart or static-manifest labels)."""
    for selector in (
        "app.kubernetes.io/name=cert-manager,app.kubernetes.io/component=controller",
        "app.kubernetes.io/name=cert-manager",
        "app=cert-manager",
    ):
        found = await ctx.kc.list(
            "apps/v1", "Deployment", label_selector=selector, not_older_than=await ctx.snapshot()
        )
        if found:
            return found[0]
    return None


async def probe_issuance(ctx: CheckContext) -> str:
    """Issue a self-signed Certificate in a scratch namespace: what happened, as text.

    "issued a probe Certificate" when it became Ready, "no …" (with the reason) otherwise.
    """
    async with scratch_namespace(ctx.kc) as ns:
        issuer = {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "probe-selfsigned", "namespace": ns},
            "spec": {"selfSigned": {}},
        }
        cert = {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "probe", "namespace": ns},
            "spec": {
                "secretName": "probe-tls",
                "commonName": "choreoctl-preflight-probe",
                "dnsNames": ["choreoctl-preflight-probe.invalid"],
                "issuerRef": {"name": "probe-selfsigned", "kind": "Issuer"},
            },
        }
        await ctx.kc.create(issuer)
        await ctx.kc.create(cert)
        deadline = time.monotonic() + max(1.0, ctx.timeout * 0.5)
        last = ""
        while time.monotonic() < deadline:
            got = await ctx.kc.get("cert-manager.io/v1", "Certificate", "probe", ns) or {}
            for c in (got.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Ready":
                    if c.get("status") == "True":
                        return "issued a probe Certificate"
                    last = str(c.get("message") or c.get("reason") or "")
            await asyncio.sleep(0.3)
        return f"no Ready Certificate within {max(1.0, ctx.timeout * 0.5):g}s" + (
            f" ({last})" if last else ""
        )


async def leader_lease(ctx: CheckContext) -> str:
    """The holder of cert-manager's leader-election Lease if renewed recently, else ""."""
    lease = await ctx.kc.get(
        "coordination.k8s.io/v1",
        "Lease",
        LEASE_NAME,
        LEASE_NAMESPACE,
        not_older_than=await ctx.snapshot(),
    )
    spec = (lease or {}).get("spec") or {}
    renewed = str(spec.get("renewTime") or "")
    if not renewed:
        return ""
    try:
        when = dt.datetime.fromisoformat(renewed.replace("Z", "+00:00"))
    except ValueError:
        return ""
    age = (dt.datetime.now(dt.UTC) - when).total_seconds()
    return str(spec.get("holderIdentity") or "?") if age < LEASE_FRESH_SECONDS else ""


async def crds_unserved(ctx: CheckContext) -> str:
    """What is wrong with cert-manager's CRDs, or "" when all are Established.

    One discovery request answers the usual case: the API server lists a CRD's kind only
    once it is Established. Only when one is missing are the CRDs read, to say which.
    """
    served = {r.plural for r in await ctx.kc.discover("cert-manager.io/v1")}
    if all(n.split(".", 1)[0] in served for n in CERT_MANAGER_CRDS):
        return ""
    since = await ctx.snapshot()
    found = await asyncio.gather(
        *(
            ctx.kc.get(
                "apiextensions.k8s.io/v1", "CustomResourceDefinition", n, not_older_than=since
            )
            for n in CERT_MANAGER_CRDS
        )
    )
    crds = dict(zip(CERT_MANAGER_CRDS, found, strict=True))
    missing = [n for n, crd in crds.items() if crd is None]
    if missing:
        return f"cert-manager CRDs missing: {', '.join(missing)}"
    pending = [n for n, crd in crds.items() if not _established(crd)]
    return f"cert-manager CRDs not Established: {', '.join(pending)}" if pending else ""


async def check_cert_manager(ctx: CheckContext) -> Outcome:
    why = needs_cert_manager(ctx.topology, ctx.name)
    if not why:
        return skipped("every plane here brings its own certificates and trust.issuer is choreoctl")
    unserved = await crds_unserved(ctx)
    if unserved:
        return failed(unserved, why)
    dep = await find_controller(ctx)
    issued = await probe_issuance(ctx) if ctx.probe else ""
    if issued.startswith("no "):
        return failed(f"cert-manager did not issue a probe Certificate: {issued}", why)
    if dep is None:
        if issued:
            return warned(
                f"{issued}, but cert-manager runs outside a Deployment: version unknown", why
            )
        holder = await leader_lease(ctx)
        if holder:
            return warned(
                f"cert-manager runs outside a Deployment (leader lease held by {holder}); "
                "its version cannot be read",
                why,
            )
        return failed(
            "cert-manager CRDs exist but no controller was found (no Deployment, no leader "
            "lease); --probe tests issuance",
            why,
        )
    meta = dep["metadata"]
    where = f"{meta['namespace']}/{meta['name']}"
    version = controller_version(dep)
    status = dep.get("status") or {}
    if not status.get("availableReplicas"):
        return failed(f"cert-manager controller {where} has no available replica", why)
    if not version:
        return warned(f"cert-manager controller {where} runs; its version is unknown", why)
    if not version_at_least(version, MIN_CERT_MANAGER):
        return failed(f"cert-manager {version} at {where}; need ≥ {MIN_CERT_MANAGER}", why)
    extra = f"; {issued}" if issued else ""
    return passed(f"cert-manager {version} ({where}), CRDs Established{extra}")


def required_domains(plane: Plane) -> list[str]:
    """The names a plane's public certificate must serve."""
    keys = {
        PlaneKind.control: ("console", "api", "identity"),
        PlaneKind.data: ("apps",),
        PlaneKind.observability: ("ingestion",),
        PlaneKind.build: (),
    }[plane.kind]
    return [plane.domains[k] for k in keys if plane.domains.get(k)]


def _path(topology: Topology, name: str) -> Path:
    p = Path(name).expanduser()
    if not p.is_absolute() and topology.source and Path(topology.source).is_file():
        p = Path(topology.source).parent / p
    return p


async def _material(ctx: CheckContext, plane: Plane) -> tuple[bytes, bytes, bytes | None]:
    tls = plane.tls
    if tls.cert_file and tls.key_file:
        try:
            cert = _path(ctx.topology, tls.cert_file).read_bytes()
            key = _path(ctx.topology, tls.key_file).read_bytes()
            ca = _path(ctx.topology, tls.ca_file).read_bytes() if tls.ca_file else None
        except OSError as e:
            raise ChoreoError(f"cannot read {e.filename}: {e.strerror}") from e
        return cert, key, ca
    secret = await ctx.kc.get(
        "v1", "Secret", tls.secret_name, plane.namespace, not_older_than=await ctx.snapshot()
    )
    if secret is None:
        raise ChoreoError(f"Secret {plane.namespace}/{tls.secret_name} does not exist")
    data = secret.get("data") or {}
    if "tls.crt" not in data or "tls.key" not in data:
        raise ChoreoError(f"Secret {plane.namespace}/{tls.secret_name} lacks tls.crt or tls.key")
    ca = base64.b64decode(data["ca.crt"]) if data.get("ca.crt") else None
    return base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]), ca


async def check_byo_tls(ctx: CheckContext) -> Outcome:
    planes = [p for p in ctx.planes if p.tls.issuer is TLSIssuer.byo]
    if not planes:
        return skipped("no plane here brings its own certificate")
    errors: list[str] = []
    warnings: list[str] = []
    for plane in planes:
        try:
            cert, key, ca = await _material(ctx, plane)
            findings = inspect_byo(cert, key, ca, required_domains(plane))
        except ChoreoError as e:
            errors.append(f"{plane.name}: {e.message}")
            continue
        errors += [f"{plane.name}: {f.message}" for f in findings if f.fatal]
        warnings += [f"{plane.name}: {f.message}" for f in findings if not f.fatal]
    names = ", ".join(p.name for p in planes)
    return judged(
        errors, warnings, f"certificates of {names}: key matches, names covered, chain verifies"
    )


CHECKS: tuple[Check, ...] = (
    Check(
        "cert-manager",
        Category.certificates,
        "cert-manager ≥ 1.12 runs and its CRDs are Established",
        "install cert-manager ≥ 1.12 (https://cert-manager.io/docs/installation/), or set "
        "trust.issuer: choreoctl and bring your own certificates",
        check_cert_manager,
    ),
    Check(
        "byo-tls",
        Category.certificates,
        "bring-your-own certificates match their key, domains and CA",
        "issue a certificate whose SANs cover the plane's domains (a wildcard `*.APPS-DOMAIN` "
        "for data planes), valid > 30 days, with its chain and key; see the hint in details",
        check_byo_tls,
    ),
)
