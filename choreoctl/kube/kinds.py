"""Where built-in kinds live in the API, known without asking the server.

Why: resolving a kind through discovery costs a request per API group and cluster
(``/api/v1`` alone is ~11 KB of JSON), and preflight across many clusters pays it on
its critical path. The core kinds below have had these paths since long before the
oldest Kubernetes choreoctl supports (1.32), which is why client-go's typed clients
hard-code them too. Every other kind (CRDs above all) goes through discovery.
``tests/integration/test_kube_client.py`` checks this table against a live server.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceInfo:
    """Where a kind lives in the API: its plural name and whether it is namespaced."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool


_TABLE: tuple[tuple[str, str, str, bool], ...] = (
    ("v1", "ConfigMap", "configmaps", True),
    ("v1", "Event", "events", True),
    ("v1", "Namespace", "namespaces", False),
    ("v1", "Node", "nodes", False),
    ("v1", "PersistentVolume", "persistentvolumes", False),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    ("v1", "Pod", "pods", True),
    ("v1", "Secret", "secrets", True),
    ("v1", "Service", "services", True),
    ("v1", "ServiceAccount", "serviceaccounts", True),
    ("apps/v1", "DaemonSet", "daemonsets", True),
    ("apps/v1", "Deployment", "deployments", True),
    ("apps/v1", "ReplicaSet", "replicasets", True),
    ("apps/v1", "StatefulSet", "statefulsets", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False),
    ("coordination.k8s.io/v1", "Lease", "leases", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", True),
    ("storage.k8s.io/v1", "CSIStorageCapacity", "csistoragecapacities", True),
    ("storage.k8s.io/v1", "StorageClass", "storageclasses", False),
)

BUILTIN: dict[tuple[str, str], ResourceInfo] = {
    (api_version, kind): ResourceInfo(api_version, kind, plural, namespaced)
    for api_version, kind, plural, namespaced in _TABLE
}
