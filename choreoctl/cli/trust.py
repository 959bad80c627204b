"""``choreoctl trust extract|distribute|status|rotate``: the gateway CA across the planes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from choreoctl.cli.options import (
    ContextOption,
    KubeconfigOption,
    SetOption,
    TopologyOption,
    ValuesOption,
    load,
    with_clients,
)
from choreoctl.cli.output import OutputFormat, OutputOption, emit

if TYPE_CHECKING:
    from rich.console import Console


def _draw_status(data: dict[str, Any], out: Console) -> None:
    from rich.markup import escape
    from rich.table import Table

    gw = data["gateway"]
    for ca in gw["ca"]:
        out.print(
            f"[bold]gateway CA[/] {ca['fingerprint']}  expires {ca['notAfter']} "
            f"({ca['daysLeft']} days)  [dim]{gw['cluster']}/{gw['namespace']}[/]"
        )
    if gw["serving"]:
        s = gw["serving"]
        out.print(f"[bold]serving cert[/] expires {s['notAfter']}; names: {', '.join(s['names'])}")
    t = Table("plane", "cluster/namespace", "gateway CA held", "match", "agent cert expires")
    for row in data["planes"]:
        held = ", ".join(c["fingerprint"][:17] + "…" for c in row["gatewayCA"]) or "-"
        ok = "[green]✓[/]" if row["gatewayCAMatches"] else "[red]×[/]"
        exp = row["agentCert"]["notAfter"] if row["agentCert"] else "-"
        t.add_row(
            f"{row['plane']} ({row['kind']})", f"{row['cluster']}/{row['namespace']}", held, ok, exp
        )
    out.print(t)
    problems = [f"gateway: {p}" for p in gw["problems"]]
    problems += [f"{r['plane']} ({r['kind']}): {p}" for r in data["planes"] for p in r["problems"]]
    for p in problems:
        out.print(f"  [red]×[/] {escape(p)}")
    if not problems:
        out.print("[green]√ every plane trusts the gateway CA[/]")


def register(app: typer.Typer) -> None:
    """Add the ``trust`` group to the app."""
    trust = typer.Typer(
        help="Extract, distribute, check and rotate the cluster gateway CA.",
        no_args_is_help=True,
    )
    app.add_typer(trust, name="trust")

    @trust.command()
    def extract(
        topology: TopologyOption,
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Write the PEM to this file, not stdout.")
        ] = None,
    ) -> None:
        """Print (or write) the gateway CA certificate of the control plane.

        Only the public certificate is read: the CA's private key never leaves the
        control plane cluster.

        Examples:
            choreoctl trust extract -t multi-region > gateway-ca.crt
            choreoctl trust extract -t multi-region --out gateway-ca.crt
        """
        import sys

        from choreoctl.trust.distribute import client_for, extract_ca

        topo = load(topology, values, sets)
        pem = with_clients(
            topo,
            kubeconfig,
            context,
            lambda cl: extract_ca(topo, client_for(cl, topo.control.cluster)),
        )
        if out is None:
            sys.stdout.write(pem.decode())
        else:
            out.write_bytes(pem)

    @trust.command()
    def distribute(
        topology: TopologyOption,
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Write the gateway CA as ConfigMap cluster-gateway-ca into every plane namespace.

        Examples:
            choreoctl trust distribute -t multi-region
            choreoctl trust distribute -t my-topology.yaml -o json
        """
        from choreoctl.kube.client import KubeClient
        from choreoctl.trust.distribute import client_for, distribute_ca, extract_ca

        topo = load(topology, values, sets)

        async def work(cl: Mapping[str, KubeClient]) -> list[dict[str, Any]]:
            pem = await extract_ca(topo, client_for(cl, topo.control.cluster))
            return await distribute_ca(topo, cl, pem)

        rows = with_clients(topo, kubeconfig, context, work)

        def table(c: Console) -> None:
            for r in rows:
                c.print(
                    f"[green]✓[/] {r['plane']}: {r['cluster']}/{r['namespace']} "
                    f"← {', '.join(r['fingerprints'])}"
                )

        emit(rows, output, table)

    @trust.command()
    def status(
        topology: TopologyOption,
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Show which plane holds which CA fingerprint, expiry dates and mismatches.

        Exits 1 when a plane holds a different CA, a certificate expires within 30
        days, or the serving certificate lacks a name agents dial.

        Examples:
            choreoctl trust status -t multi-region
            choreoctl trust status -t multi-region -o json
        """
        from choreoctl.trust.status import trust_status

        topo = load(topology, values, sets)
        data = with_clients(topo, kubeconfig, context, lambda cl: trust_status(topo, cl))
        emit(data, output, lambda c: _draw_status(data, c))
        if not data["ok"]:
            raise typer.Exit(1)

    @trust.command()
    def rotate(
        topology: TopologyOption,
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        timeout: Annotated[
            float, typer.Option(help="Seconds to wait for agents at each step.")
        ] = 300.0,
        propagation_wait: Annotated[
            float,
            typer.Option(help="Seconds for kubelets to update mounted ConfigMaps (~60-90 s)."),
        ] = 90.0,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Replace the gateway CA without cutting agents off.

        The new CA is distributed next to the old one, the gateway's serving and
        controller certificates are re-issued from it, every agent is verified to be
        connected again, and only then is the old CA removed.

        Examples:
            choreoctl trust rotate -t my-lab.yaml
        """
        from choreoctl.trust.rotate import rotate_gateway_ca

        topo = load(topology, values, sets)
        data = with_clients(
            topo,
            kubeconfig,
            context,
            lambda cl: rotate_gateway_ca(topo, cl, timeout=timeout, propagation=propagation_wait),
        )

        def table(c: Console) -> None:
            for step in data["steps"]:
                c.print(f"[green]✓[/] {step}")
            c.print(f"old CA {data['old']}\nnew CA {data['new']}")

        emit(data, output, table)
