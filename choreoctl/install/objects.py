"""Object identity and ordering for the install engine.

An applied object is known by its :class:`ObjectRef` (apiVersion, kind, namespace,
name) in one cluster. Kinds are ranked so that what others depend on goes first
(Namespaces and CRDs before anything that lives in or uses them) and uninstall walks
the same ranks backwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

# Applied first (and waited for): everything else may live in a Namespace or be a CR.
FOUNDATION_KINDS = frozenset({"Namespace", "CustomResourceDefinition"})

_RANK: Mapping[str, int] = {
    "Namespace": 0,
    "CustomResourceDefinition": 0,
    "ServiceAccount": 1,
    "ClusterRole": 1,
    "Role": 1,
    "ConfigMap": 1,
    "Secret": 1,
    "StorageClass": 1,
    "ClusterRoleBinding": 2,
    "RoleBinding": 2,
    "PersistentVolumeClaim": 2,
    "Issuer": 2,
    "ClusterIssuer": 2,
    "Service": 3,
    "Certificate": 3,
    "Deployment": 4,
    "StatefulSet": 4,
    "DaemonSet": 4,
    "Job": 4,
    "CronJob": 4,
}
_CUSTOM_RANK = 5  # CRs of our own and unknown kinds come after the workloads they need


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Where one object lives in a cluster; ``namespace`` is "" for cluster-scoped ones."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The ref of a manifest or of a live object."""
        meta = obj.get("metadata") or {}
        return cls(
            str(obj.get("apiVersion", "")),
            str(obj.get("kind", "")),
            str(meta.get("namespace") or ""),
            str(meta.get("name", "")),
        )

    @property
    def rank(self) -> int:
        """Apply rank of the kind (lower first); uninstall goes from high to low."""
        return _RANK.get(self.kind, _CUSTOM_RANK)

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    def as_dict(self) -> dict[str, str]:
        """The JSON form kept in the install record."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectRef:
        """Inverse of :meth:`as_dict`."""
        return cls(
            str(data["apiVersion"]),
            str(data["kind"]),
            str(data.get("namespace") or ""),
            str(data["name"]),
        )


def by_rank(objs: Iterable[Obj]) -> list[list[Obj]]:
    """``objs`` grouped by apply rank, lowest first; order inside a group is kept."""
    groups: dict[int, list[Obj]] = {}
    for obj in objs:
        groups.setdefault(ObjectRef.of(obj).rank, []).append(obj)
    return [groups[r] for r in sorted(groups)]


def strip_server_fields(obj: Mapping[str, Any]) -> Obj:
    """A copy of a live object without what the server owns (for diffs).

    Removed: status, managedFields, resourceVersion, uid, generation,
    creationTimestamp and the last-applied annotation.
    """
    out: Obj = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp"):
        meta.pop(key, None)
    annotations = dict(meta.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out
