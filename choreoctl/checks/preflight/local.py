"""Workstation checks: local tools, and the topology's domains (valid names, DNS)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path

from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    Scope,
    failed,
    passed,
    skipped,
    warned,
)
from choreoctl.checks.quantity import version_at_least

MIN_KUBECTL = "1.32.0"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def find_kubectl() -> str | None:
    """kubectl on PATH, else next to this Python (a venv with the kubectl wheel)."""
    found = shutil.which("kubectl")
    if found:
        return found
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


async def _run(*argv: str, timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        try:
            proc.kill()
        except ProcessLookupError:
            pass  # it exited before the cancel arrived; the cancel must still propagate
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


async def check_kubectl(ctx: CheckContext) -> Outcome:
    path = find_kubectl()
    if path is None:
        return failed("kubectl is not on PATH")
    code, out = await _run(path, "version", "--client", "-o", "json", timeout=ctx.timeout)
    if code != 0:
        return failed(f"`{path} version --client` exited {code}", out.splitlines()[-3:])
    try:
        version = str(json.loads(out)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        return failed(f"cannot read the version from `{path} version --client -o json`")
    if version_at_least(version, MIN_KUBECTL):
        return passed(f"{path} {version}")
    return failed(f"{path} is {version}; need ≥ {MIN_KUBECTL}")


async def check_helm(ctx: CheckContext) -> Outcome:
    # choreoctl renders every plane's manifests itself (choreoctl render); no plane
    # of any topology is installed through Helm, so there is nothing to require.
    return skipped("no plane is installed with Helm (choreoctl renders its own manifests)")


def domain_problem(name: str, wildcard: bool) -> str:
    """Why ``name`` is not a valid domain ("" when it is); wildcards only where allowed."""
    host = name.rstrip(".")
    if host.startswith("*."):
        if not wildcard:
            return "a wildcard is not allowed here"
        host = host[2:]
    elif wildcard:
        return "must be a wildcard *.DOMAIN"
    if not host or len(host) > 253:
        return "length must be 1-253"
    labels = host.split(".")
    bad = [lab for lab in labels if not _LABEL.match(lab)]
    if bad:
        return f"label {bad[0]!r} is not a lowercase RFC 1123 label"
    if len(labels) < 2 and host != "localhost":
        return "needs at least two labels"
    return ""


def topology_domains(ctx: CheckContext) -> list[tuple[str, str, bool]]:
    """``(where, name, wildcard allowed)`` for every domain the topology names."""
    out: list[tuple[str, str, bool]] = []
    for plane in ctx.topology.planes:
        for key, name in sorted(plane.domains.items()):
            out.append((f"{plane.name}.domains.{key}", name, key == "apps"))
        if plane.public_virtual_host:
            out.append((f"{plane.name}.publicVirtualHost", plane.public_virtual_host, False))
    if ctx.topology.gateway.external_host:
        out.append(("gateway.externalHost", ctx.topology.gateway.external_host, False))
    return out


async def check_domains(ctx: CheckContext) -> Outcome:
    domains = topology_domains(ctx)
    if not domains:
        return skipped("the topology names no domains")
    bad = [f"{w}: {n!r} {p}" for w, n, wild in domains if (p := domain_problem(n, wild))]
    if bad:
        return failed(f"{len(bad)} invalid domain name(s)", bad)
    return passed(f"{len(domains)} domain name(s) valid")


def probe_name(name: str) -> str:
    """The host to look up for ``name``: a wildcard is tried through one label under it."""
    host = name.rstrip(".")
    return "choreoctl-dns-probe." + host[2:] if host.startswith("*.") else host


async def check_dns(ctx: CheckContext) -> Outcome:
    from choreoctl.dns import resolve_all

    domains = [(w, n) for w, n, wild in topology_domains(ctx) if not domain_problem(n, wild)]
    if not domains:
        return skipped("no valid domain to resolve")
    answers = await resolve_all(
        [probe_name(n) for _, n in domains], timeout=min(3.0, ctx.timeout / 2)
    )
    missing = [
        f"{w}: {n}"
        for (w, n), answer in zip(domains, answers, strict=True)
        if isinstance(answer, BaseException)
    ]
    if missing:
        return warned(f"{len(missing)} of {len(domains)} name(s) do not resolve yet", missing)
    return passed(f"all {len(domains)} name(s) resolve")


LOCAL_CHECKS: tuple[Check, ...] = (
    Check(
        "kubectl",
        Category.tools,
        "kubectl ≥ 1.32 is installed",
        "install kubectl ≥ 1.32 (https://kubernetes.io/docs/tasks/tools/) and put it on PATH",
        check_kubectl,
        scope=Scope.local,
    ),
    Check(
        "helm",
        Category.tools,
        "Helm ≥ 3.12 where a plane uses Helm",
        "install Helm ≥ 3.12",
        check_helm,
        scope=Scope.local,
    ),
    Check(
        "domains",
        Category.dns,
        "every domain is a valid DNS name (data-plane apps domain a wildcard)",
        "fix the names under `domains` in the topology (lowercase RFC 1123; apps: `*.DOMAIN`)",
        check_domains,
        scope=Scope.local,
    ),
    Check(
        "dns",
        Category.dns,
        "the topology's domains resolve",
        "create DNS records pointing at the planes' LoadBalancer addresses "
        "(`dig +short NAME` to verify)",
        check_dns,
        scope=Scope.local,
        fatal=False,
    ),
)
