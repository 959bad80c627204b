"""Flag values shared by the runtime commands: Go-style durations and plane types."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from choreoctl.errors import InputError

if TYPE_CHECKING:
    from choreoctl.kube.client import KubeClient

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")

# OpenChoreo's plane types in the ``planeType`` query; ``workflowplane`` is the newer
# name of the build plane and maps to it.
PLANE_TYPES: dict[str, str] = {
    "dataplane": "dataplane",
    "buildplane": "buildplane",
    "workflowplane": "buildplane",
    "observabilityplane": "observabilityplane",
}
PLANE_KINDS: dict[str, str] = {
    "dataplane": "DataPlane",
    "buildplane": "BuildPlane",
    "observabilityplane": "ObservabilityPlane",
}
API_VERSION = "openchoreo.dev/v1alpha1"


def parse_duration(text: str, flag: str = "duration") -> float:
    """Seconds from a Go duration (``30s``, ``1m30s``, ``250ms``) or a plain number of seconds."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _PART.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(value) or not value:
        raise InputError(
            f"{flag}: {text!r} is not a duration",
            hint="use a Go duration such as 30s, 1m30s or 250ms",
        )
    return total


def plane_type(text: str, flag: str = "--plane-type") -> str:
    """The canonical plane type for a flag or query value (``workflowplane`` → ``buildplane``)."""
    canonical = PLANE_TYPES.get(text.strip().lower())
    if canonical is None:
        raise InputError(
            f"{flag}: unknown plane type {text!r}",
            hint="use one of dataplane, buildplane (or workflowplane), observabilityplane",
        )
    return canonical


def kube_client(kubeconfig: str | None, context: str | None) -> KubeClient:
    """A client for this process's own cluster: the kubeconfig if given, else in-cluster
    (KUBERNETES_SERVICE_HOST/PORT and the ServiceAccount in $CHOREOCTL_SERVICEACCOUNT_DIR)."""
    from choreoctl.kube.client import KubeClient

    if kubeconfig:
        return KubeClient.from_kubeconfig(kubeconfig, context)
    return KubeClient.in_cluster()
