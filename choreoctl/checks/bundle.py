"""``doctor --bundle``: a support bundle with every Secret value and token redacted.

The bundle (tar.gz) holds the doctor report, the YAML of the objects in every plane
namespace and the organization's CRs, events, and recent logs of the plane pods.
Redaction happens before anything is written: Secret ``data``/``stringData`` values,
values under sensitive keys (token, password, secret, key …) anywhere, private-key PEM
blocks, bearer tokens and JWTs inside any text.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from choreoctl.checks.framework import Report
from choreoctl.checks.runner import client_for
from choreoctl.errors import ChoreoError, ClusterError, InputError
from choreoctl.kube.client import KubeClient
from choreoctl.topology.model import Topology

REDACTED = "<redacted>"
SENSITIVE_KEY = re.compile(
    r"(token|passw(or)?d|secret|api[-_.]?key|private[-_.]?key|credential|auth|\.key$|^tls\.key$)",
    re.I,
)
_PEM_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_KV = re.compile(
    r"(?i)\b([A-Za-z0-9_.-]*(?:token|password|passwd|secret|api[-_]?key)[A-Za-z0-9_.-]*)"
    r"(\"?\s*[:=]\s*)(\"?)[^\s\",]+"
)
# Keys that merely name or locate a secret (secretName, tokenPath) keep their value.
_REFERENCE_KEY = re.compile(r"(name|ref|path|file)$", re.I)
NAMESPACED_KINDS = (
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Event"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
)
ORG_KINDS = ("Environment", "DataPlane", "BuildPlane", "ObservabilityPlane")


def scrub_text(text: str) -> str:
    """``text`` with private keys, JWTs, bearer tokens and ``secret=…`` values replaced."""
    text = _PEM_KEY.sub(REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _KV.sub(lambda m: m.group(1) + m.group(2) + m.group(3) + REDACTED, text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with sensitive values replaced (recursively)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        env_name = str(value.get("name", "")) if "value" in value else ""
        for k, v in value.items():
            if k == "managedFields":
                continue
            if k == "value" and env_name and SENSITIVE_KEY.search(env_name):
                out[k] = REDACTED
            elif isinstance(v, str) and SENSITIVE_KEY.search(k) and not _REFERENCE_KEY.search(k):
                out[k] = REDACTED
            else:
                out[k] = redact(v, k)
        return out
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def redact_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One API object made safe to share; a Secret keeps its keys, never its values."""
    clean: dict[str, Any] = redact(obj)
    meta = clean.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if obj.get("kind") == "Secret":
        for part in ("data", "stringData"):
            if isinstance(obj.get(part), Mapping):
                clean[part] = {k: f"{REDACTED} ({len(str(v))} chars)" for k, v in obj[part].items()}
    return clean


@dataclass
class Bundle:
    """Files of the bundle (path → text) and notes on what could not be collected."""

    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_yaml(self, path: str, objects: list[dict[str, Any]]) -> None:
        import yaml

        docs = [redact_object(o) for o in objects]
        self.files[path] = yaml.safe_dump_all(docs, sort_keys=False) if docs else ""


async def _collect_cluster(
    bundle: Bundle, topology: Topology, name: str, kc: KubeClient, tail: int
) -> None:
    namespaces = sorted({p.namespace for p in topology.planes if p.cluster == name})
    if topology.control.cluster == name:
        namespaces.append(topology.organization)
        for kind in ORG_KINDS:
            try:
                items = await kc.list("openchoreo.dev/v1alpha1", kind, topology.organization)
            except ClusterError as e:
                bundle.notes.append(f"{name}: {kind}: {e.message}")
                continue
            bundle.add_yaml(f"clusters/{name}/{topology.organization}/{kind.lower()}s.yaml", items)
    try:
        bundle.add_yaml(f"clusters/{name}/nodes.yaml", await kc.list("v1", "Node"))
    except ClusterError as e:
        bundle.notes.append(f"{name}: nodes: {e.message}")
        return
    for ns in namespaces:
        for api_version, kind in NAMESPACED_KINDS:
            try:
                items = await kc.list(api_version, kind, ns)
            except ClusterError as e:
                bundle.notes.append(f"{name}: {ns} {kind}: {e.message}")
                continue
            bundle.add_yaml(f"clusters/{name}/{ns}/{kind.lower()}s.yaml", items)
            if kind == "Pod":
                for pod in items:
                    await _pod_logs(bundle, name, kc, pod, tail)


async def _pod_logs(
    bundle: Bundle, cluster: str, kc: KubeClient, pod: dict[str, Any], tail: int
) -> None:
    meta = pod["metadata"]
    for c in (pod.get("spec") or {}).get("containers", []):
        where = f"clusters/{cluster}/{meta['namespace']}/logs/{meta['name']}.{c['name']}.log"
        try:
            text = await kc.pod_logs(meta["name"], meta["namespace"], c["name"], tail_lines=tail)
        except ClusterError as e:
            bundle.notes.append(
                f"{cluster}: logs of {meta['namespace']}/{meta['name']}: {e.message}"
            )
            continue
        bundle.files[where] = scrub_text(text)


async def collect_bundle(
    topology: Topology,
    kubeconfig: str | None,
    report: Report,
    *,
    timeout: float = 10.0,
    tail: int = 500,
) -> Bundle:
    """Gather the bundle's files from every cluster concurrently (nothing is written)."""
    import yaml

    from choreoctl.topology.loader import topology_to_dict

    bundle = Bundle()
    bundle.files["report.json"] = json.dumps(report.to_dict(), indent=2) + "\n"
    topo_doc = redact(topology_to_dict(topology))
    bundle.files["topology.yaml"] = yaml.safe_dump(topo_doc, sort_keys=False)
    clients: list[KubeClient] = []
    jobs = []
    for cluster in topology.clusters:
        made = client_for(kubeconfig, cluster, timeout)
        if isinstance(made, str):
            bundle.notes.append(f"{cluster.name}: {made}")
            continue
        clients.append(made)
        jobs.append(_collect_cluster(bundle, topology, cluster.name, made, tail))
    try:
        await asyncio.gather(*jobs)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
    bundle.files["notes.txt"] = "".join(f"{n}\n" for n in bundle.notes)
    return bundle


def write_bundle(bundle: Bundle, path: str | Path) -> Path:
    """Write ``bundle`` as a tar.gz at ``path`` (via a temporary file, then renamed)."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target} is a directory", hint="pass a file name like bundle.tar.gz")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    now = time.time()
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for name, text in sorted(bundle.files.items()):
                data = text.encode()
                info = tarfile.TarInfo(f"choreoctl-bundle/{name}")
                info.size, info.mtime, info.mode = len(data), int(now), 0o600
                tar.addfile(info, io.BytesIO(data))
        tmp.replace(target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ChoreoError(
            f"cannot write the bundle {target}: {e.strerror}", hint="check the path"
        ) from e
    return target
