"""One Kubernetes client per topology cluster, for the commands that span clusters.

The topology names each cluster's kubeconfig context; ``--context`` overrides it for
single-cluster topologies (one cluster, whatever its context is called here).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from choreoctl.kube.client import KubeClient
from choreoctl.topology.model import Topology


@asynccontextmanager
async def cluster_clients(
    topology: Topology,
    kubeconfig: str | None,
    contexts: Mapping[str, str] | None = None,
    context: str | None = None,
) -> AsyncIterator[dict[str, KubeClient]]:
    """Clients keyed by topology cluster name, closed on exit.

    ``contexts`` maps a cluster name to another context; ``context`` replaces every
    cluster's context (useful when the whole topology sits in one cluster).
    """
    clients: dict[str, KubeClient] = {}
    try:
        for c in topology.clusters:
            ctx = context or (contexts or {}).get(c.name) or c.context or None
            client = KubeClient.from_kubeconfig(kubeconfig, ctx)
            client.name = c.name if not ctx else f"{c.name} ({ctx})"
            clients[c.name] = client
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()
