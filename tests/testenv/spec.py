"""What a test asks for: the options of one cluster, and the default sets."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")

# Names and regions used by `up --clusters N` and the default session set, in order.
NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
REGIONS = ("us", "eu", "apac", "sa", "af", "me", "ca", "in")


@dataclass(frozen=True)
class ClusterSpec:
    """One cluster: its name (= kubeconfig context) and the options tests vary.

    ``cpu``/``memory`` are per node (capacity = allocatable). ``storage_class`` creates a
    default StorageClass ``standard`` whose PVCs kwok binds to PVs; ``load_balancer`` runs the
    allocator that gives ``type: LoadBalancer`` Services a loopback address; ``own_etcd``
    gives the cluster its own etcd (so a test can kill it) instead of a prefix in the shared one.
    """

    name: str
    nodes: int = 3
    cpu: str = "4"
    memory: str = "8Gi"
    region: str = ""
    storage_class: bool = True
    load_balancer: bool = True
    cert_manager: bool = False
    own_etcd: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"cluster name {self.name!r} must be a DNS label of up to 32 chars")
        if self.nodes < 0:
            raise ValueError(f"cluster {self.name}: nodes must be >= 0, not {self.nodes}")

    @property
    def effective_region(self) -> str:
        return self.region or "local"


def default_specs(count: int, cert_manager_on_first: bool = False) -> list[ClusterSpec]:
    """``count`` clusters named alpha, beta, … with regions us, eu, apac, …."""
    if not 1 <= count <= len(NAMES):
        raise ValueError(f"between 1 and {len(NAMES)} clusters, not {count}")
    return [
        ClusterSpec(name=NAMES[i], region=REGIONS[i], cert_manager=cert_manager_on_first and i == 0)
        for i in range(count)
    ]
