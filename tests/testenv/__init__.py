"""Real Kubernetes test clusters built from Go modules (see README "Testing").

    from tests.testenv import ClusterSpec, start_clusters
    cs = start_clusters([ClusterSpec("alpha", region="us")])
    cs["alpha"].kubectl("get", "nodes")
    cs.stop()

In pytest use the fixtures of ``tests.testenv.pytest_plugin`` (``clusters``, ``cluster``,
``make_clusters``, ``kubeconfig``) instead.
"""

from __future__ import annotations

from tests.testenv.binaries import K8S_VERSION, Binaries, locate
from tests.testenv.cluster import KubectlFailed, TestCluster
from tests.testenv.clusterset import ClusterSet, start_clusters
from tests.testenv.errors import (
    BinariesMissing,
    CertManagerUnavailable,
    ClusterEnvError,
    ClusterStartFailed,
)
from tests.testenv.spec import ClusterSpec, default_specs

__all__ = [
    "K8S_VERSION",
    "Binaries",
    "BinariesMissing",
    "CertManagerUnavailable",
    "ClusterEnvError",
    "ClusterSet",
    "ClusterSpec",
    "ClusterStartFailed",
    "KubectlFailed",
    "TestCluster",
    "default_specs",
    "locate",
    "start_clusters",
]
