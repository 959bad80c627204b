"""``choreoctl status``: the one-screen health of a topology, once or live."""

from __future__ import annotations

from collections.abc import Mapping
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
    from rich.console import Console, RenderableType

    from choreoctl.topology.model import Topology


def escape(text: str) -> str:
    """Rich markup escaping (imported lazily)."""
    from rich.markup import escape as _escape

    return _escape(text)


def _mark(ok: bool) -> str:
    return "[green]✓[/]" if ok else "[red]×[/]"


def status_view(data: Mapping[str, Any]) -> list[RenderableType]:
    """The one-screen status for people, as rich renderables (printed or live-updated)."""
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = []
    head = "[green]healthy[/]" if data["healthy"] else "[red]unhealthy[/]"
    parts.append(Text.from_markup(f"[bold]topology {data['topology']}[/]: {head}"))
    t = Table("cluster", "context", "reachable", "version", box=None, pad_edge=False)
    for c in data["clusters"]:
        t.add_row(c["name"], c["context"], _mark(c["reachable"]), c.get("version", ""))
    parts.append(t)
    t = Table("plane", "kind", "cluster", "workloads", "agent", "heartbeat", box=None)
    for p in data["planes"]:
        ready = sum(1 for w in p["workloads"] if w["healthy"])
        work = f"{ready}/{len(p['workloads'])} ready"
        agent = ""
        if "connected" in p:
            agent = f"{_mark(p['connected'])} {p['agents']}" if p["registered"] else "unregistered"
        t.add_row(p["name"], p["kind"], p["cluster"], work, agent, p.get("lastHeartbeat", ""))
    parts.append(t)
    trust = data.get("trust")
    if trust:
        t = Table("trust", "CA fingerprint", "expires", "match", box=None)
        for ca in trust["gateway"]["ca"]:
            t.add_row("gateway CA", ca["fingerprint"][:23] + "…", ca["notAfter"], "")
        for row in trust["planes"]:
            fp = row["gatewayCA"][0]["fingerprint"][:23] + "…" if row["gatewayCA"] else "-"
            exp = row["agentCert"]["notAfter"] if row["agentCert"] else "-"
            t.add_row(f"{row['plane']} ({row['kind']})", fp, exp, _mark(row["gatewayCAMatches"]))
        parts.append(t)
    if data["environments"]:
        t = Table("environment", "data plane", "dns prefix", "production", "ready", box=None)
        for e in data["environments"]:
            t.add_row(e["name"], e["dataPlane"], e["dnsPrefix"], str(e["production"]), e["ready"])
        parts.append(t)
    for p in data["problems"]:
        parts.append(Text.from_markup(f"  [red]•[/] {escape(p)}"))
    return parts


def draw_status(data: Mapping[str, Any], out: Console) -> None:
    """Print :func:`status_view` once."""
    for part in status_view(data):
        out.print(part)


def register(app: typer.Typer) -> None:
    """Add ``status`` to the app."""

    @app.command()
    def status(
        topology: TopologyOption,
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        output: OutputOption = OutputFormat.table,
        watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
        interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
    ) -> None:
        """Show clusters, planes, agents, CA fingerprints and environments of a topology.

        Exits 1 when anything is unhealthy (so scripts can wait on it).

        Examples:
            choreoctl status --topology multi-region
            choreoctl status -t single-cluster --context kind-openchoreo -o json
            choreoctl status -t multi-region --watch
        """
        from choreoctl.status import collect_status

        topo = load(topology, values, sets)
        if watch:
            _watch(topo, kubeconfig, context, interval, output)
            return
        used = {c.name: context or c.context for c in topo.clusters}
        data = with_clients(topo, kubeconfig, context, lambda cl: collect_status(topo, cl, used))
        emit(data, output, lambda c: draw_status(data, c))
        if not data["healthy"]:
            raise typer.Exit(1)


def _watch(
    topo: Topology,
    kubeconfig: str | None,
    context: str | None,
    interval: float,
    output: OutputFormat,
) -> None:
    """Redraw the status every ``interval`` seconds until interrupted.

    For people the screen is updated in place; with ``-o json`` every refresh is one
    JSON document on its own line (JSON Lines), for tools that follow the stream.
    """
    import asyncio
    import json
    import sys

    from rich.console import Group
    from rich.live import Live

    from choreoctl.cli import aio
    from choreoctl.cli.output import console
    from choreoctl.planes.clients import cluster_clients
    from choreoctl.status import collect_status

    out = console()
    used = {c.name: context or c.context for c in topo.clusters}

    async def main() -> None:
        async with cluster_clients(topo, kubeconfig, context=context) as clients:
            if output is not OutputFormat.table:
                while True:
                    data = await collect_status(topo, clients, used)
                    sys.stdout.write(json.dumps(data, default=str) + "\n")
                    sys.stdout.flush()
                    await asyncio.sleep(interval)
            with Live(console=out, auto_refresh=False) as live:
                while True:
                    data = await collect_status(topo, clients, used)
                    live.update(Group(*status_view(data)), refresh=True)
                    await asyncio.sleep(interval)

    aio.run(main())
