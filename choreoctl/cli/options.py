"""The options the commands share, declared once so a flag reads and completes alike everywhere.

Use these types for every command that takes a topology (``-t/-f/--set``) or talks to a
cluster (``--kubeconfig/--context``); :func:`load` and :func:`with_clients` turn their
values into a validated topology and one client per cluster.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from choreoctl.kube.client import KubeClient
    from choreoctl.topology.model import Topology

T = TypeVar("T")


def complete_topology(incomplete: str) -> list[str]:
    """Shell completion for ``--topology``: the built-in names starting with ``incomplete``."""
    from choreoctl.topology.builtin import builtin_names

    return [name for name in builtin_names() if name.startswith(incomplete)]


TopologyOption = Annotated[
    str,
    typer.Option(
        "--topology",
        "-t",
        help="Built-in topology name (single-cluster, multi-cluster, multi-region) or file.",
        metavar="NAME|FILE",
        autocompletion=complete_topology,
    ),
]
ValuesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--values",
        "-f",
        help="YAML values file deep-merged over the topology (repeatable).",
        metavar="FILE",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override one field, e.g. spec.gateway.port=9443 (repeatable).",
        metavar="PATH=VALUE",
    ),
]
KubeconfigOption = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig",
        help="Path to the kubeconfig file (default: $KUBECONFIG).",
        envvar="KUBECONFIG",
        metavar="FILE",
    ),
]
ContextOption = Annotated[
    str | None, typer.Option("--context", help="Kubeconfig context to use.", metavar="CONTEXT")
]
LogLevelOption = Annotated[
    str,
    typer.Option(
        "--log-level", envvar="LOG_LEVEL", help="debug, info, warning or error.", metavar="LEVEL"
    ),
]
OrgOption = Annotated[
    str,
    typer.Option(
        "--organization",
        help="Organization (its namespace holds the planes and environments).",
        metavar="NAME",
    ),
]


def load(topology: str, values: list[str] | None, sets: list[str] | None) -> Topology:
    """The validated topology (TopologyError on bad input)."""
    from choreoctl.topology.loader import load_topology

    return load_topology(topology, values or (), sets or ())


def with_clients(
    topo: Topology,
    kubeconfig: str | None,
    context: str | None,
    work: Callable[[Mapping[str, KubeClient]], Awaitable[T]],
) -> T:
    """Run ``work`` with one client per topology cluster, in one event loop."""
    from choreoctl.cli import aio
    from choreoctl.planes.clients import cluster_clients

    async def main() -> T:
        async with cluster_clients(topo, kubeconfig, context=context) as clients:
            return await work(clients)

    return aio.run(main())


def with_control(
    kubeconfig: str | None,
    context: str | None,
    work: Callable[[KubeClient], Awaitable[T]],
) -> T:
    """Run ``work`` with a client for the control plane cluster (``--context``)."""
    from choreoctl.cli import aio
    from choreoctl.kube.client import KubeClient

    async def main() -> T:
        async with KubeClient.from_kubeconfig(kubeconfig, context) as control:
            return await work(control)

    return aio.run(main())
