"""A Deployment played as a pod by the test kubelet, and the pure reading of its spec.

:class:`Pod` is the kubelet's record of one played Deployment (files, ports, process,
restart state); the functions here decide which Deployments the kubelet plays and map
what the chart wrote (container ports, mountPaths) to this machine. Nothing here talks to
a cluster, so the unit tests exercise it directly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.testenv.processes import ManagedProcess

REPO = Path(__file__).resolve().parents[2]
CHOREOCTL = str(REPO / ".venv" / "bin" / "choreoctl")


class ClusterLike(Protocol):
    """What the kubelet needs of a test cluster (TestCluster has it)."""

    @property
    def name(self) -> str: ...

    @property
    def server(self) -> str: ...

    @property
    def token(self) -> str: ...

    @property
    def ca_file(self) -> Path | None: ...


@dataclass
class Pod:
    """One Deployment played as a pod: its files, ports, process and state."""

    cluster: str
    namespace: str
    name: str
    dir: Path
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> loopback port
    template_hash: str = ""
    proc: ManagedProcess | None = None
    restarts: int = 0
    crashes: int = 0  # consecutive exits, for the backoff; reset after 30 s of health
    waiting: str = ""  # why it is not started (missing Secret, unresolved Service …)
    next_start: float = 0.0
    started_at: float = 0.0
    token_at: float = 0.0
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # the running process's environment

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.name}"

    @property
    def log(self) -> Path:
        return self.dir / "log"

    @property
    def cri_log(self) -> Path:
        """The CRI-format copy of :attr:`log` that kwok serves as the pod's logs."""
        return self.dir / "cri" / "container.log"

    def state(self) -> dict[str, Any]:
        alive = self.proc is not None and self.proc.alive()
        return {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "deployment": self.name,
            "running": alive,
            "pid": self.proc.pid if alive and self.proc else None,
            "ports": dict(self.ports),
            "restarts": self.restarts,
            "waiting": self.waiting,
            "log": str(self.log),
        }


def runs_choreoctl(deploy: Mapping[str, Any]) -> bool:
    """Whether the Deployment's first container is choreoctl's own image."""
    containers = deploy["spec"]["template"]["spec"].get("containers") or []
    return bool(containers) and (containers[0].get("command") or [])[:1] == ["choreoctl"]


def template_hash(deploy: Mapping[str, Any]) -> str:
    """A hash of the pod template: a change means "new pod", as a ReplicaSet would see it."""
    text = json.dumps(deploy["spec"]["template"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rewrite_ports(values: list[str], ports: Mapping[int, int]) -> list[str]:
    """Map container ports in ``--…port N`` / ``--…port=N`` flags to loopback ports."""
    out = list(values)
    for i, arg in enumerate(out):
        if arg.startswith("--") and "port" in arg and "=" in arg:
            flag, _, val = arg.partition("=")
            if val.isdigit() and int(val) in ports:
                out[i] = f"{flag}={ports[int(val)]}"
        elif i > 0 and out[i - 1].startswith("--") and "port" in out[i - 1] and arg.isdigit():
            if int(arg) in ports:
                out[i] = str(ports[int(arg)])
    return out


def rewrite_mounts(value: str, mounts: Sequence[tuple[str, Path]]) -> str:
    """Replace mountPath prefixes (longest first) with their local directories."""
    for mount_path, local in sorted(mounts, key=lambda m: -len(m[0])):
        base = mount_path.rstrip("/")
        value = re.sub(re.escape(base) + r"(?=/|\b|$)", str(local), value)
    return value
