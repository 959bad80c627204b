"""The objects every test cluster starts with: fake Nodes, the limited user's RBAC and the
default StorageClass. Pure functions of the spec, so they are easy to read and to test."""

from __future__ import annotations

from typing import Any

from tests.testenv.spec import ClusterSpec

LIMITED_ROLE = "choreoctl-testenv-limited"
STORAGE_CLASS = "standard"
# kwok's volume Stages (copied by build.sh with the class name "standard") provision and
# bind a PV for every PVC whose class has this provisioner.
KWOK_PROVISIONER = "kwok.x-k8s.io/volume"


def node(spec: ClusterSpec, index: int) -> dict[str, Any]:
    """A fake Node managed by kwok, with capacity = allocatable from the spec.

    The API server keeps ``status`` on Node create (that is how kubelets register), and kwok's
    node-initialize Stage keeps the given capacity while it sets the Ready conditions.
    """
    name = f"{spec.name}-node-{index}"
    region = spec.effective_region
    resources = {
        "cpu": spec.cpu,
        "memory": spec.memory,
        "pods": "110",
        "ephemeral-storage": "100Gi",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "kwok",
                "topology.kubernetes.io/region": region,
                "topology.kubernetes.io/zone": f"{region}-{'abc'[index % 3]}",
                "type": "kwok",
                "choreoctl.dev/testenv": "true",
            },
        },
        "spec": {},
        "status": {"capacity": dict(resources), "allocatable": dict(resources)},
    }


def limited_rbac(user: str) -> list[dict[str, Any]]:
    """Read-only access to pods, namespaces and nodes, nothing else (for permission checks)."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": LIMITED_ROLE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "namespaces", "nodes"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": LIMITED_ROLE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": LIMITED_ROLE,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    ]


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": KWOK_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def cert_manager_deployment(version: str) -> dict[str, Any]:
    """The Deployment a real cert-manager install shows, for the controller we run outside.

    The test clusters run the real cert-manager controller as a local process (kwok
    nodes run no containers), so the API would show no controller at all; this object
    gives the cluster the view of a normal installation (labels and image tag as the
    upstream chart sets them), which is what preflight and doctor read. kwok makes its
    pod Running; the process outside does the work.
    """
    labels = {
        "app": "cert-manager",
        "app.kubernetes.io/name": "cert-manager",
        "app.kubernetes.io/instance": "cert-manager",
        "app.kubernetes.io/component": "controller",
        "app.kubernetes.io/version": version,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cert-manager", "namespace": "cert-manager", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "cert-manager"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "cert-manager-controller",
                            "image": f"jetstack/cert-manager-controller:{version}",
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                        }
                    ]
                },
            },
        },
    }
