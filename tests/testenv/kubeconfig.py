"""Kubeconfig files: one merged file for a ClusterSet (a context per cluster, plus a
``<name>-limited`` context for its non-admin user) and a one-cluster file for components."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from tests.testenv.cluster import TestCluster


def render(clusters: Sequence[TestCluster], limited: bool = True) -> dict[str, Any]:
    """The kubeconfig document; the first cluster is the current context."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": clusters[0].context if clusters else "",
        "preferences": {},
    }
    for c in clusters:
        entry: dict[str, Any] = {"server": c.server}
        if c.ca_file is not None:
            entry["certificate-authority"] = str(c.ca_file)
        else:
            entry["insecure-skip-tls-verify"] = True
        doc["clusters"].append({"name": c.name, "cluster": entry})
        doc["users"].append({"name": f"{c.name}-admin", "user": {"token": c.token}})
        doc["contexts"].append(
            {"name": c.context, "context": {"cluster": c.name, "user": f"{c.name}-admin"}}
        )
        if limited:
            doc["users"].append({"name": f"{c.name}-limited", "user": {"token": c.limited_token}})
            doc["contexts"].append(
                {
                    "name": c.limited_context,
                    "context": {"cluster": c.name, "user": f"{c.name}-limited"},
                }
            )
    return doc


def write_kubeconfig(path: Path, clusters: Sequence[TestCluster], limited: bool = True) -> None:
    """Write atomically (readers never see half a file), mode 0600 as kubectl expects."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(render(clusters, limited), sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
