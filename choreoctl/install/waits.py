"""Readiness per kind: what "ready" means for each object the charts create.

Each check reads the live object and answers ready or not, plus a short account of what
it saw, so a timeout can say what it waited for and what it saw last (the most useful
line when an install hangs). Checks poll with a growing interval: cheap for the
already-ready objects of a re-run, gentle on the API server for the slow ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from choreoctl.errors import Problem, WaitTimeout
from choreoctl.install.objects import Obj, ObjectRef
from choreoctl.kube.client import KubeClient


@dataclass(frozen=True)
class Readiness:
    """One look at an object: ready or not, and what was seen."""

    ready: bool
    seen: str
    live: Obj | None = field(default=None, compare=False, repr=False)  # what was looked at


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _cond_text(cond: Mapping[str, Any] | None, name: str) -> str:
    if cond is None:
        return f"no {name} condition yet"
    text = f"{name}={cond.get('status')}"
    reason = cond.get("reason") or ""
    message = cond.get("message") or ""
    if reason:
        text += f" ({reason}{': ' + message if message else ''})"
    return text


def _generation_seen(obj: Mapping[str, Any]) -> bool:
    gen = (obj.get("metadata") or {}).get("generation", 0)
    return int((obj.get("status") or {}).get("observedGeneration", 0)) >= int(gen)


def crd_ready(obj: Obj) -> Readiness:
    """A CRD is usable once Established (its kind is served)."""
    cond = _condition(obj, "Established")
    return Readiness(bool(cond and cond.get("status") == "True"), _cond_text(cond, "Established"))


def deployment_ready(obj: Obj) -> Readiness:
    """Available, with the current generation observed and every replica updated."""
    want = int((obj.get("spec") or {}).get("replicas", 1))
    status = obj.get("status") or {}
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    cond = _condition(obj, "Available")
    seen = f"{available}/{want} available, {updated} updated, {_cond_text(cond, 'Available')}"
    if not _generation_seen(obj):
        return Readiness(False, "the controller has not seen the latest spec yet; " + seen)
    if want == 0:
        return Readiness(True, "scaled to 0")
    ok = bool(cond and cond.get("status") == "True") and updated >= want and available >= want
    return Readiness(ok, seen)


def statefulset_ready(obj: Obj) -> Readiness:
    """Every replica ready and on the current revision."""
    want = int((obj.get("spec") or {}).get("replicas", 1))
    status = obj.get("status") or {}
    ready = int(status.get("readyReplicas", 0))
    seen = f"{ready}/{want} ready"
    if not _generation_seen(obj):
        return Readiness(False, "the controller has not seen the latest spec yet; " + seen)
    return Readiness(ready >= want, seen)


def daemonset_ready(obj: Obj) -> Readiness:
    """Every scheduled pod ready."""
    status = obj.get("status") or {}
    want = int(status.get("desiredNumberScheduled", 0))
    ready = int(status.get("numberReady", 0))
    return Readiness(_generation_seen(obj) and ready >= want, f"{ready}/{want} ready")


def service_ready(obj: Obj) -> Readiness:
    """A LoadBalancer Service needs an address; other Services are ready at once."""
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return Readiness(True, "not a LoadBalancer")
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [i.get("ip") or i.get("hostname") for i in ingress]
    if addresses:
        return Readiness(True, "address " + ", ".join(str(a) for a in addresses))
    return Readiness(False, "no load balancer address assigned yet")


async def _pvc_ready(client: KubeClient, obj: Obj, classes: dict[str, Obj | None]) -> Readiness:
    phase = (obj.get("status") or {}).get("phase", "")
    if phase == "Bound":
        return Readiness(True, "Bound")
    name = (obj.get("spec") or {}).get("storageClassName")
    sc: Obj | None
    if name is None:
        if "" not in classes:
            default: Obj | None = None
            for item in await client.list("storage.k8s.io/v1", "StorageClass"):
                ann = (item.get("metadata") or {}).get("annotations") or {}
                if ann.get("storageclass.kubernetes.io/is-default-class") == "true":
                    default = item
            classes[""] = default
        sc = classes[""]
    else:
        if name not in classes:
            classes[name] = await client.get("storage.k8s.io/v1", "StorageClass", name)
        sc = classes[name]
    if sc is None:
        return Readiness(True, f"{phase or 'Pending'}; no storage class to bind it (not waited)")
    mode = sc.get("volumeBindingMode", "Immediate")
    if mode != "Immediate":
        return Readiness(True, f"{phase or 'Pending'}; class binds {mode} (not waited)")
    return Readiness(False, f"{phase or 'Pending'}, class {sc['metadata']['name']} binds Immediate")


async def _certificate_ready(client: KubeClient, obj: Obj) -> Readiness:
    cond = _condition(obj, "Ready")
    if not (cond and cond.get("status") == "True"):
        return Readiness(False, _cond_text(cond, "Ready"))
    secret = (obj.get("spec") or {}).get("secretName", "")
    ns = (obj.get("metadata") or {}).get("namespace")
    if secret and await client.get("v1", "Secret", secret, ns) is None:
        return Readiness(False, f"Ready=True but Secret {secret} is missing")
    return Readiness(True, f"Ready, Secret {secret} present")


_SYNC_CHECKS: Mapping[str, Callable[[Obj], Readiness]] = {
    "CustomResourceDefinition": crd_ready,
    "Deployment": deployment_ready,
    "StatefulSet": statefulset_ready,
    "DaemonSet": daemonset_ready,
    "Service": service_ready,
}
_ASYNC_KINDS = frozenset({"PersistentVolumeClaim", "Certificate"})

_WAITED_FOR: Mapping[str, str] = {
    "CustomResourceDefinition": "Established",
    "Deployment": "Available",
    "StatefulSet": "all replicas ready",
    "DaemonSet": "all pods ready",
    "Service": "a LoadBalancer address",
    "PersistentVolumeClaim": "Bound",
    "Certificate": "Ready and its Secret present",
}

_HINTS: Mapping[str, str] = {
    "Service": "no LoadBalancer controller answered: install one (cloud provider, MetalLB, "
    "kube-vip), or give the plane a loadBalancer.address your network routes",
    "Deployment": "look at the pods: kubectl -n NS describe deploy NAME; image pulls, "
    "missing Secrets and resource requests are the usual causes",
    "StatefulSet": "look at the pods and their PVCs: kubectl -n NS describe sts NAME",
    "PersistentVolumeClaim": "the storage class provisioner did not bind the claim: "
    "check the provisioner pods and kubectl -n NS describe pvc NAME",
    "Certificate": "check cert-manager: kubectl -n NS describe certificate NAME "
    "(and its CertificateRequest); is cert-manager running?",
    "CustomResourceDefinition": "the API server rejected or has not served the CRD yet",
}


def waits_for(obj: Obj) -> bool:
    """Whether install waits for this kind of object at all."""
    kind = str(obj.get("kind", ""))
    if kind == "Certificate":
        return str(obj.get("apiVersion", "")).startswith("cert-manager.io/")
    return kind in _SYNC_CHECKS or kind in _ASYNC_KINDS


async def check(
    client: KubeClient, obj: Obj, classes: dict[str, Obj | None], live: Obj | None = None
) -> Readiness:
    """Look once at the live object behind manifest ``obj`` (``live``: already fetched)."""
    ref = ObjectRef.of(obj)
    if live is None:
        live = await client.get(ref.api_version, ref.kind, ref.name, ref.namespace or None)
    if live is None:
        return Readiness(False, "the object does not exist")
    if ref.kind == "PersistentVolumeClaim":
        seen = await _pvc_ready(client, live, classes)
    elif ref.kind == "Certificate":
        seen = await _certificate_ready(client, live)
    else:
        seen = _SYNC_CHECKS[ref.kind](live)
    return Readiness(seen.ready, seen.seen, live)


async def poll_until(
    probe: Callable[[], Awaitable[Readiness]],
    deadline: float,
    *,
    first: float = 0.2,
    longest: float = 2.0,
) -> Readiness:
    """Call ``probe`` until it says ready or ``deadline`` (monotonic) passes; last answer."""
    interval = first
    while True:
        seen = await probe()
        if seen.ready or time.monotonic() >= deadline:
            return seen
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(longest, interval * 1.5)


async def wait_objects(
    client: KubeClient,
    objs: Sequence[Obj],
    *,
    timeout: float,
    on_ready: Callable[[ObjectRef, Readiness], None] | None = None,
    known: Mapping[ObjectRef, Obj] | None = None,
) -> dict[ObjectRef, Obj]:
    """Wait until every waitable object of ``objs`` is ready; WaitTimeout names the rest.

    All objects are watched at once, against one deadline. ``known`` holds objects as
    the server just returned them (the apply response): the first look uses those, so
    a re-run of an installed topology costs no extra request per object. Returns the
    objects as last seen (ready).
    """
    deadline = time.monotonic() + timeout
    classes: dict[str, Obj | None] = {}
    todo = [o for o in objs if waits_for(o)]

    async def one(obj: Obj) -> tuple[ObjectRef, Readiness]:
        ref = ObjectRef.of(obj)
        first = (known or {}).get(ref)

        async def probe() -> Readiness:
            nonlocal first
            live, first = first, None
            return await check(client, obj, classes, live)

        seen = await poll_until(probe, deadline)
        if seen.ready and on_ready is not None:
            on_ready(ref, seen)
        return ref, seen

    results = await asyncio.gather(*(one(o) for o in todo))
    late = [(ref, seen) for ref, seen in results if not seen.ready]
    last = {ref: seen.live for ref, seen in results if seen.live is not None}
    if late:
        raise WaitTimeout(
            f"{client.name}: {len(late)} object(s) not ready after {timeout:g}s",
            hint=f"each object below says where to look; if the cluster is only slow, "
            f"raise --timeout (now {timeout:g}s) and run the same command again",
            problems=tuple(
                Problem(
                    f"waited for {_WAITED_FOR[ref.kind]}; last seen: {seen.seen}",
                    where=str(ref),
                    hint=_HINTS.get(ref.kind, "")
                    .replace("NS", ref.namespace or "-n")
                    .replace("NAME", ref.name),
                )
                for ref, seen in late
            ),
        )
    return last
