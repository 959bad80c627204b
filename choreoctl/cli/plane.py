"""``choreoctl plane register|list|unregister``: add a plane to a running topology."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from choreoctl.cli.options import (
    ContextOption,
    KubeconfigOption,
    OrgOption,
    with_clients,
    with_control,
)
from choreoctl.cli.output import OutputFormat, OutputOption, emit

if TYPE_CHECKING:
    from rich.console import Console


class PlaneType(enum.StrEnum):
    """``--type``: the plane CR kind to register."""

    data = "data"
    build = "build"
    observability = "observability"


TypeOption = Annotated[PlaneType, typer.Option("--type", help="Plane type.")]
NameOption = Annotated[str, typer.Option("--name", help="Plane CR name (default planeID).")]


def _draw_planes(rows: list[dict[str, Any]], out: Console) -> None:
    from rich.table import Table

    t = Table("type", "name", "planeID", "cluster", "connected", "agents", "heartbeat", "CA expiry")
    for r in rows:
        ok = "[green]yes[/]" if r["connected"] else "[red]no[/]"
        t.add_row(
            r["type"],
            r["name"],
            r["planeID"],
            r["cluster"],
            ok,
            str(r["agents"]),
            r["lastHeartbeat"],
            r["caExpiry"],
        )
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add the ``plane`` group to the app."""
    plane = typer.Typer(help="Register, list and unregister planes.", no_args_is_help=True)
    app.add_typer(plane, name="plane")

    @plane.command("register")
    def register_cmd(
        plane_type: TypeOption,
        name: NameOption,
        cluster: Annotated[
            str, typer.Option("--cluster", help="Kubeconfig context of the plane's cluster.")
        ],
        namespace: Annotated[
            str | None, typer.Option(help="Plane namespace (default: the plane type's).")
        ] = None,
        plane_id: Annotated[str, typer.Option("--plane-id", help="planeID (default: name).")] = "",
        observability_plane: Annotated[
            str, typer.Option("--observability-plane", help="ObservabilityPlane to reference.")
        ] = "",
        public_virtual_host: Annotated[
            str, typer.Option("--public-virtual-host", help="Data plane public host (unique).")
        ] = "",
        secret_store: Annotated[
            str, typer.Option("--secret-store", help="ClusterSecretStore (data planes).")
        ] = "",
        observer_url: Annotated[
            str, typer.Option("--observer-url", help="Observer API URL (observability).")
        ] = "",
        organization: OrgOption = "default-organization",
        control_namespace: Annotated[
            str, typer.Option(help="Control plane namespace.")
        ] = "openchoreo-control-plane",
        kubeconfig: KubeconfigOption = None,
        context: Annotated[
            str | None, typer.Option("--context", help="Kubeconfig context of the control plane.")
        ] = None,
        wait: Annotated[bool, typer.Option(help="Wait until the agent is connected.")] = True,
        timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 120.0,
        gateway_url: Annotated[
            str, typer.Option(help="Gateway internal API URL to notify (port 8444).")
        ] = "",
        client_cert: Annotated[
            str, typer.Option(help="Client certificate for --gateway-url.")
        ] = "",
        client_key: Annotated[str, typer.Option(help="Client key for --gateway-url.")] = "",
        server_ca: Annotated[str, typer.Option(help="Gateway CA for --gateway-url.")] = "",
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Register a plane with the control plane and wait for its agent.

        Reads the agent CA (ca.crt of Secret cluster-agent-tls) from the plane cluster,
        validates references (ObservabilityPlane exists, publicVirtualHost unique),
        writes the plane CR and waits until the gateway reports the agent connected.

        Examples:
            choreoctl plane register --type data --name ap-south --cluster ap-south \\
                --public-virtual-host ap-south.apps.example.com --observability-plane default
            choreoctl plane register --type build --name default --cluster build --no-wait
        """
        from choreoctl.errors import InputError
        from choreoctl.planes.crs import TYPE_NAMES
        from choreoctl.planes.register import GatewayAccess, register_plane
        from choreoctl.topology.defaults import COMPONENTS, NAMESPACES
        from choreoctl.topology.model import Cluster, Plane, PlaneKind, Topology, TopologyType

        kind = TYPE_NAMES[plane_type.value]
        control_ctx = context or ""
        same = bool(control_ctx) and control_ctx == cluster
        domains = {"observer": observer_url.split("://", 1)[-1]} if observer_url else {}
        target = Plane(
            kind=kind,
            name=name,
            cluster="control" if same else "plane",
            namespace=namespace or NAMESPACES[kind],
            plane_id=plane_id,
            domains=domains,
            public_virtual_host=public_virtual_host,
            observability_plane=observability_plane,
            secret_store=secret_store,
            components=COMPONENTS[kind],
        )
        clusters = [Cluster("control", control_ctx)]
        if not same:
            clusters.append(Cluster("plane", cluster))
        control_plane = Plane(PlaneKind.control, "control-plane", "control", control_namespace)
        topo = Topology(
            name="plane-register",
            type=TopologyType.multi_cluster,
            clusters=tuple(clusters),
            planes=(control_plane, target),
            organization=organization,
        )
        notify = None
        if gateway_url:
            if not (client_cert and client_key and server_ca):
                raise InputError(
                    "--gateway-url needs --client-cert, --client-key and --server-ca",
                    hint="use the controller-manager-tls certificate of the control plane",
                )
            notify = GatewayAccess(gateway_url, client_cert, client_key, server_ca)

        result = with_clients(
            topo,
            kubeconfig,
            None,
            lambda clients: register_plane(
                topo, target, clients, wait_connected=wait, timeout=timeout, notify=notify
            ),
        )

        def table(c: Console) -> None:
            conn = result["agentConnection"]
            state = "connected" if conn and conn.get("connected") else "registered"
            c.print(
                f"[green]✓[/] {result['kind']} {result['namespace']}/{result['name']} "
                f"(planeID {result['planeID']}) {state}"
            )

        emit(result, output, table)

    @plane.command("list")
    def list_cmd(
        organization: OrgOption = "default-organization",
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """List every registered plane with its agent connection and CA expiry.

        Examples:
            choreoctl plane list --context control
            choreoctl plane list -o json
        """
        from choreoctl.planes.list import list_planes

        rows = with_control(kubeconfig, context, lambda control: list_planes(control, organization))
        emit(rows, output, lambda c: _draw_planes(rows, c))

    @plane.command("unregister")
    def unregister_cmd(
        plane_type: TypeOption,
        name: NameOption,
        force: Annotated[
            bool, typer.Option("--force", help="Unregister even while Environments use it.")
        ] = False,
        organization: OrgOption = "default-organization",
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Remove a plane CR (refused while Environments reference a DataPlane).

        Examples:
            choreoctl plane unregister --type data --name ap-south
            choreoctl plane unregister --type data --name old --force
        """
        from choreoctl.planes.crs import TYPE_NAMES
        from choreoctl.planes.unregister import unregister_plane

        kind = TYPE_NAMES[plane_type.value]
        deleted = with_control(
            kubeconfig,
            context,
            lambda control: unregister_plane(control, organization, kind, name, force=force),
        )
        data = {"type": plane_type.value, "name": name, "deleted": deleted}
        msg = "unregistered" if deleted else "was not registered"
        emit(data, output, lambda c: c.print(f"{plane_type.value} plane {name} {msg}"))
