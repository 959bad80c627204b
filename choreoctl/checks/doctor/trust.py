"""Trust checks: planes hold the gateway's current CA, certificates are valid and not
near expiry, agent certificates verify against their plane's clientCA, and the gateway
serves every name agents dial."""

from __future__ import annotations

from typing import Any

from choreoctl import pki
from choreoctl.checks.doctor.common import (
    agent_planes_here,
    gateway_ca,
    is_control_cluster,
    plane_cr,
)
from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    failed,
    judged,
    passed,
    skipped,
)
from choreoctl.checks.tlsinspect import expiry_findings
from choreoctl.errors import TrustError
from choreoctl.topology.model import TLSIssuer
from choreoctl.trust.names import (
    AGENT_CA_SECRET,
    AGENT_TLS_SECRET,
    CA_CONFIGMAP,
    CA_KEY,
    CONTROLLER_TLS_SECRET,
    GATEWAY_CA_SECRET,
    GATEWAY_TLS_SECRET,
    gateway_sans,
)
from choreoctl.trust.objects import read_configmap, read_secret


async def check_ca_match(ctx: CheckContext) -> Outcome:
    planes = agent_planes_here(ctx)
    if not planes:
        return skipped("no agent plane on this cluster")
    current = {pki.fingerprint(c) for c in await gateway_ca(ctx)}
    problems: list[str] = []
    for plane in planes:
        data = await read_configmap(ctx.kc, plane.namespace, CA_CONFIGMAP)
        if data is None or not data.get(CA_KEY):
            problems.append(f"{plane.name}: ConfigMap {plane.namespace}/{CA_CONFIGMAP} is missing")
            continue
        held = {pki.fingerprint(c) for c in pki.load_certs(data[CA_KEY], f"{plane.name} CA")}
        if not held & current:
            problems.append(
                f"{plane.name}: holds CA {sorted(held)[0][:23]}…, the gateway's is "
                f"{sorted(current)[0][:23]}…"
            )
    return judged(problems, ok=f"{len(planes)} plane(s) hold the gateway's current CA")


def _wanted_secrets(ctx: CheckContext) -> list[tuple[str, str, bool]]:
    """``(namespace, secret, required)`` whose certificates this cluster holds."""
    out: list[tuple[str, str, bool]] = []
    if is_control_cluster(ctx):
        ns = ctx.topology.control.namespace
        out += [(ns, GATEWAY_CA_SECRET, True), (ns, GATEWAY_TLS_SECRET, True)]
        out.append((ns, CONTROLLER_TLS_SECRET, True))
    for plane in agent_planes_here(ctx):
        out.append((plane.namespace, AGENT_TLS_SECRET, True))
        out.append((plane.namespace, AGENT_CA_SECRET, False))
    for plane in ctx.planes:
        if plane.tls.issuer is TLSIssuer.byo and plane.tls.secret_name:
            out.append((plane.namespace, plane.tls.secret_name, True))
    return out


async def check_cert_expiry(ctx: CheckContext) -> Outcome:
    wanted = _wanted_secrets(ctx)
    if not wanted:
        return skipped("no certificate on this cluster")
    errors: list[str] = []
    warnings: list[str] = []
    checked = 0
    for ns, name, required in wanted:
        data = await read_secret(ctx.kc, ns, name)
        if data is None:
            if required:
                errors.append(f"Secret {ns}/{name} does not exist")
            continue
        pem = data.get("tls.crt") or data.get(CA_KEY)
        if not pem:
            errors.append(f"Secret {ns}/{name} holds no certificate")
            continue
        checked += 1
        for f in expiry_findings(pki.load_certs(pem, f"{ns}/{name}")[0], f"{ns}/{name}"):
            (errors if f.fatal else warnings).append(f.message)
    return judged(errors, warnings, f"{checked} certificate(s) valid for more than 30 days")


async def _client_ca(ctx: CheckContext, cr: dict[str, Any]) -> bytes:
    ref = ((cr.get("spec") or {}).get("clusterAgent") or {}).get("clientCA") or {}
    if ref.get("value"):
        return str(ref["value"]).encode()
    key_ref = ref.get("secretKeyRef") or {}
    if key_ref.get("name"):
        ns = key_ref.get("namespace") or cr["metadata"]["namespace"]
        data = await read_secret(ctx.peer(ctx.topology.control.cluster), ns, key_ref["name"])
        value = (data or {}).get(key_ref.get("key", CA_KEY))
        if value:
            return value
        raise TrustError(
            f"clientCA secretKeyRef {ns}/{key_ref['name']} has no {key_ref.get('key')}"
        )
    raise TrustError("spec.clusterAgent.clientCA is empty")


async def check_agent_certs(ctx: CheckContext) -> Outcome:
    planes = agent_planes_here(ctx)
    if not planes:
        return skipped("no agent plane on this cluster")
    problems: list[str] = []
    for plane in planes:
        data = await read_secret(ctx.kc, plane.namespace, AGENT_TLS_SECRET)
        if data is None or not data.get("tls.crt"):
            problems.append(f"{plane.name}: Secret {plane.namespace}/{AGENT_TLS_SECRET} is missing")
            continue
        cr = await plane_cr(ctx, plane)
        if cr is None:
            problems.append(f"{plane.name}: no plane CR to hold its clientCA")
            continue
        try:
            bundle = pki.load_certs(await _client_ca(ctx, cr), f"{plane.name} clientCA")
            leaf = pki.load_certs(data["tls.crt"], f"{plane.namespace}/{AGENT_TLS_SECRET}")[0]
            pki.verify_client_cert(leaf, bundle)
        except TrustError as e:
            problems.append(f"{plane.name}: {e.message}")
    return judged(
        problems, ok=f"{len(planes)} agent certificate(s) verify against their plane's clientCA"
    )


async def check_gateway_sans(ctx: CheckContext) -> Outcome:
    if not is_control_cluster(ctx):
        return skipped("the gateway runs in the control plane's cluster")
    ns = ctx.topology.control.namespace
    data = await read_secret(ctx.kc, ns, GATEWAY_TLS_SECRET)
    if data is None or not data.get("tls.crt"):
        return failed(f"Secret {ns}/{GATEWAY_TLS_SECRET} is missing")
    cert = pki.load_certs(data["tls.crt"], f"{ns}/{GATEWAY_TLS_SECRET}")[0]
    dns, ips = gateway_sans(ctx.topology)
    names = set(pki.cert_names(cert))
    missing = [n for n in dns if not pki.hostname_matches(cert, n)] + [
        i for i in ips if i not in names
    ]
    if missing:
        return failed(f"the gateway certificate lacks {', '.join(missing)}", sorted(names))
    return passed(f"the gateway certificate covers {len(dns) + len(ips)} name(s) agents dial")


CHECKS: tuple[Check, ...] = (
    Check(
        "gateway-ca-match",
        Category.trust,
        "every plane holds the gateway's current CA",
        "redistribute the CA: choreoctl trust distribute --topology TOPOLOGY",
        check_ca_match,
    ),
    Check(
        "cert-expiry",
        Category.trust,
        "certificates are valid and not within 30 days of expiry",
        "renew: cert-manager renews on its own (check `kubectl get certificates -A`); "
        "with trust.issuer choreoctl run `choreoctl trust rotate`",
        check_cert_expiry,
    ),
    Check(
        "agent-client-cert",
        Category.trust,
        "agent client certificates verify against their plane's clientCA",
        "re-register the plane so spec.clusterAgent.clientCA holds the agent CA: "
        "choreoctl plane register",
        check_agent_certs,
    ),
    Check(
        "gateway-sans",
        Category.trust,
        "the gateway's serving certificate covers every name agents dial",
        "add the name to gateway.externalHost / gateway.extraSANs and re-run the install",
        check_gateway_sans,
    ),
)
