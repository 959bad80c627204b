"""Rendered Kubernetes objects: the text a chart produced, parsed once, named and ordered.

Each object keeps the exact text its template wrote (comments included: the RBAC rules
explain themselves in the files users read) next to its parsed form, which the plan,
the tests and the install engine use. Output is one file per object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from choreoctl.errors import RenderError

# Apply order within one directory: what others depend on first. kubectl and kustomize
# accept any order, but a person reading kustomization.yaml sees the same dependency order.
KIND_ORDER: tuple[str, ...] = (
    "Namespace",
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Issuer",
    "ClusterIssuer",
    "Certificate",
    "Service",
    "Deployment",
    "StatefulSet",
    "Organization",
    "Environment",
)


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object: the text as written to its file and the parsed object."""

    text: str
    obj: dict[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.obj["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str:
        """The object's namespace, "" for cluster-scoped objects."""
        return str(self.obj["metadata"].get("namespace", ""))

    @property
    def filename(self) -> str:
        """``<kind>-<name>.yaml`` in lower case; unique within a plane directory."""
        return f"{self.kind.lower()}-{self.name}.yaml"

    def sort_key(self) -> tuple[int, str, str]:
        """Apply order: by :data:`KIND_ORDER`, then namespace and name."""
        rank = KIND_ORDER.index(self.kind) if self.kind in KIND_ORDER else len(KIND_ORDER)
        return rank, self.namespace, self.name


def _clean(chunk: str) -> str:
    lines = [line.rstrip() for line in chunk.splitlines()]
    return "\n".join(line for line in lines if line) + "\n"


def split_documents(text: str, source: str) -> list[Manifest]:
    """The objects in a multi-document YAML text; comment-only documents are dropped.

    Blank and trailing-whitespace lines are removed (templates leave them where optional
    blocks are empty), so output does not depend on template whitespace.
    """
    import yaml

    chunks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.rstrip() == "---":
            chunks.append([])
        else:
            chunks[-1].append(line)
    found: list[Manifest] = []
    for lines in chunks:
        chunk = _clean("\n".join(lines))
        try:
            # libyaml's safe loader when built in: the same safe constructors, ~10x faster.
            obj = yaml.load(chunk, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as e:
            raise RenderError(
                f"template {source} produced invalid YAML: {e}",
                hint="this is a chart bug; report it with the topology",
            ) from e
        if obj is None:
            continue
        if not isinstance(obj, dict) or not {"apiVersion", "kind", "metadata"} <= obj.keys():
            raise RenderError(
                f"template {source} produced a document that is not a Kubernetes object",
                hint="this is a chart bug; report it with the topology",
            )
        found.append(Manifest(chunk, obj))
    return found


def order(manifests: list[Manifest], where: str) -> list[Manifest]:
    """``manifests`` in apply order; RenderError if two would share a file name."""
    ordered = sorted(manifests, key=Manifest.sort_key)
    seen: dict[str, Manifest] = {}
    for m in ordered:
        if m.filename in seen:
            raise RenderError(
                f"two objects in {where} would both be written to {m.filename}",
                hint="this is a chart bug; report it with the topology",
            )
        seen[m.filename] = m
    return ordered
