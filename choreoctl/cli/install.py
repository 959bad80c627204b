"""``choreoctl install``, ``upgrade``, ``diff`` and ``uninstall``.

Progress: a live table of the plan on a terminal, one line per finished step when
output is not a terminal or CI is set, a JSON event stream with ``-o json``.
"""

from __future__ import annotations

import sys
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
from choreoctl.cli.output import OutputFormat, OutputOption, console, emit
from choreoctl.cli.progress import Progress, interactive, json_line
from choreoctl.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from rich.console import Console

    from choreoctl.install.engine import Event
    from choreoctl.install.manifests import Rendered
    from choreoctl.install.options import InstallOptions
    from choreoctl.kube.client import KubeClient
    from choreoctl.topology.model import Topology

    # The engine call of install or upgrade: clients, the event callback, the preflight gate.
    Runner = Callable[
        [Mapping[str, KubeClient], Callable[[Event], None], Callable[[], Awaitable[None]] | None],
        Awaitable[Any],
    ]

DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Server-side dry run: checked by the API servers, nothing persisted."
    ),
]
OnlyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--only", help="Install only this plane (name or kind, repeatable).", metavar="PLANE"
    ),
]
SkipOption = Annotated[
    list[str] | None,
    typer.Option(
        "--skip", help="Leave this plane out (name or kind, repeatable).", metavar="PLANE"
    ),
]
SkipPreflightOption = Annotated[
    bool, typer.Option("--skip-preflight", help="Do not run preflight checks first.")
]
ForceOption = Annotated[
    bool,
    typer.Option("--force-conflicts", help="Take over fields another field manager owns."),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds each readiness wait may take.")
]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Do not wait for readiness (CRDs are still waited for).")
]
NoWaitAgentsOption = Annotated[
    bool,
    typer.Option("--no-wait-agents", help="Register planes without waiting for their agents."),
]
DeleteDataOption = Annotated[
    bool, typer.Option("--delete-data", help="Also delete PersistentVolumeClaims (data).")
]


def _context_topology(topo: Topology, context: str | None) -> Topology:
    if context and len(topo.clusters) > 1:
        raise InputError(
            f"--context works only for a topology with one cluster; {topo.name} has "
            f"{len(topo.clusters)}",
            hint="set each cluster's context in the topology (or with --set "
            "spec.clusters[N].context=…) instead",
        )
    from choreoctl.cli.preflight import with_context

    return with_context(topo, context)


def _prepare(
    topology: str, values: list[str] | None, sets: list[str] | None, context: str | None
) -> tuple[Topology, Rendered]:
    """Load, validate and render everything before any cluster is touched."""
    from choreoctl.install.manifests import render_for_install

    topo = _context_topology(load(topology, values, sets), context)
    return topo, render_for_install(topo)


def _options(
    dry_run: bool,
    force: bool,
    timeout: float,
    no_wait: bool,
    no_wait_agents: bool,
    only: list[str] | None,
    skip: list[str] | None,
    topo: Topology,
) -> InstallOptions:
    from choreoctl.install.options import InstallOptions

    return InstallOptions.checked(
        topo,
        only=only or (),
        skip=skip or (),
        timeout=timeout,
        dry_run=dry_run,
        force_conflicts=force,
        wait=not no_wait,
        wait_agents=not no_wait_agents,
    )


def _apply(
    topo: Topology,
    kubeconfig: str | None,
    output: OutputFormat,
    title: str,
    preflight: bool,
    run: Runner,
    draw: Callable[[Console, Mapping[str, Any]], None],
) -> None:
    """Run install or upgrade behind the progress view, then print its result.

    ``preflight`` runs the preflight checks first (the gate fails the run on a failed
    check); the result is drawn for people or ends the JSON event stream.
    """
    from choreoctl.install.session import preflight_gate

    check = (lambda: preflight_gate(topo, kubeconfig)) if preflight else None
    with Progress(output, title) as progress:
        result = with_clients(
            topo, kubeconfig, None, lambda clients: run(clients, progress.on_event, check)
        )
    data = result.as_dict()
    if output is OutputFormat.table:
        draw(console(), data)
    else:
        sys.stdout.write(json_line({"event": "result", **data}))


def _summary(out: Console, data: Mapping[str, Any], verb: str) -> None:
    steps = data["steps"]
    done = sum(1 for s in steps.values() if s == "done")
    if data["dryRun"]:
        out.print(
            f"dry run of {data['topology']}: nothing persisted; {data['applied']} object(s) "
            f"accepted by the API servers",
            soft_wrap=True,
        )
        if data["skipped"]:
            out.print(
                f"  {len(data['skipped'])} object(s) could not be checked yet: their "
                "namespace or CRD does not exist before the install",
                soft_wrap=True,
            )
        return
    out.print(
        f"{verb} {data['topology']}: {done}/{len(steps)} step(s) done, {data['applied']} "
        f"object(s) applied in {data['seconds']:.1f}s (apply {data['applySeconds']:.1f}s, "
        f"waits {data['waitSeconds']:.1f}s); record: {data['record'].get('objects', 0)} "
        "object(s)",
        soft_wrap=True,
    )


def _draw_diff(out: Console, diffs: list[dict[str, Any]]) -> None:
    from rich.markup import escape

    colours = {"create": "green", "update": "yellow", "conflict": "red", "prune": "magenta"}
    for d in diffs:
        if d["action"] == "unchanged":
            continue
        where = f"{d['namespace']}/" if d["namespace"] else ""
        colour = colours.get(d["action"], "")
        out.print(
            f"[{colour}]{d['action']:8}[/] {escape(d['cluster'])}: {d['kind']} "
            f"{escape(where + d['name'])}"
            + (f" [dim]({escape(d['note'])})[/]" if d["note"] else ""),
            soft_wrap=True,
        )
        if d["action"] == "update":
            for line in d["diff"].splitlines():
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                out.print(
                    f"    [{style}]{escape(line)}[/]" if style else f"    {escape(line)}",
                    soft_wrap=True,
                )
    counts: dict[str, int] = {}
    for d in diffs:
        counts[d["action"]] = counts.get(d["action"], 0) + 1
    out.print(", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "nothing rendered")


def register(app: typer.Typer) -> None:
    """Add ``install``, ``upgrade``, ``diff`` and ``uninstall`` to the app."""

    @app.command()
    def install(
        topology: TopologyOption = "single-cluster",
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        dry_run: DryRunOption = False,
        only: OnlyOption = None,
        skip: SkipOption = None,
        skip_preflight: SkipPreflightOption = False,
        force_conflicts: ForceOption = False,
        timeout: TimeoutOption = 300.0,
        no_wait: NoWaitOption = False,
        no_wait_agents: NoWaitAgentsOption = False,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Install a topology: control plane → trust → observability → data → build.

        Everything is validated and rendered before the first write. Each plane is
        server-side applied (field manager choreoctl), waited for and registered; data
        planes of several regions run at the same time. Running it again changes
        nothing; an interrupted install is completed by running the same command again.
        The record of what was applied is kept in the control plane namespace
        (ConfigMap choreoctl-install-record). -o json prints one JSON event per line.

        Examples:
            choreoctl install --topology single-cluster --context kind-dev
            choreoctl install -t multi-region -f prod-values.yaml
            choreoctl install -t my-topology.yaml --dry-run
            choreoctl install -t multi-region --only data-plane --skip-preflight
        """
        from choreoctl.install.session import run_install

        topo, rendered = _prepare(topology, values, sets, context)
        opts = _options(
            dry_run, force_conflicts, timeout, no_wait, no_wait_agents, only, skip, topo
        )
        _apply(
            topo,
            kubeconfig,
            output,
            f"{'dry run: ' if dry_run else ''}install {topo.name}",
            not (skip_preflight or dry_run),
            lambda clients, on_event, check: run_install(
                rendered, clients, opts, on_event, preflight=check
            ),
            lambda out, data: _summary(out, data, "installed"),
        )

    @app.command()
    def upgrade(
        topology: TopologyOption = "single-cluster",
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        dry_run: DryRunOption = False,
        skip_preflight: SkipPreflightOption = False,
        force_conflicts: ForceOption = False,
        timeout: TimeoutOption = 300.0,
        no_wait: NoWaitOption = False,
        no_wait_agents: NoWaitAgentsOption = False,
        delete_data: DeleteDataOption = False,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Re-render with this choreoctl version and the (changed) topology, apply, prune.

        Like install, then deletes what the previous install created that the new
        render no longer contains (PVCs only with --delete-data). Run `choreoctl diff`
        first to see what changes.

        Examples:
            choreoctl upgrade --topology multi-region
            choreoctl upgrade -t my-topology.yaml --set spec.images.tag=0.2.0
        """
        from choreoctl.install.upgrade import run_upgrade

        topo, rendered = _prepare(topology, values, sets, context)
        opts = _options(
            dry_run, force_conflicts, timeout, no_wait, no_wait_agents, None, None, topo
        )

        def draw(out: Console, data: Mapping[str, Any]) -> None:
            _summary(out, data, "upgraded")
            pruned = data["pruned"]
            out.print(
                f"pruned {len(pruned['deleted'])} object(s) no longer rendered; kept "
                f"{len(pruned['kept'])}",
                soft_wrap=True,
            )

        _apply(
            topo,
            kubeconfig,
            output,
            f"upgrade {topo.name}",
            not (skip_preflight or dry_run),
            lambda clients, on_event, check: run_upgrade(
                rendered, clients, opts, on_event, delete_data=delete_data, preflight=check
            ),
            draw,
        )

    @app.command()
    def diff(
        topology: TopologyOption = "single-cluster",
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        force_conflicts: ForceOption = False,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Show what install (or upgrade) would change, object by object.

        Each rendered object is applied as a server-side dry run and compared with the
        live object (server-owned fields stripped). Objects the last install created
        that are no longer rendered are listed as prune. Exit 0 when nothing would
        change, 1 when something would (like kubectl diff).

        Examples:
            choreoctl diff --topology single-cluster --context kind-dev
            choreoctl diff -t multi-region --set spec.images.tag=0.2.0 -o json
        """
        from choreoctl.install.diff import run_diff
        from choreoctl.install.inventory import RecordStore

        topo, rendered = _prepare(topology, values, sets, context)

        async def work(clients: Mapping[str, KubeClient]) -> list[Any]:
            control = topo.control
            record = await RecordStore(clients[control.cluster], control.namespace).load()
            return await run_diff(rendered, clients, record=record, force_conflicts=force_conflicts)

        diffs = [d.as_dict() for d in with_clients(topo, kubeconfig, None, work)]
        emit(diffs, output, lambda c: _draw_diff(c, diffs))
        if any(d["action"] != "unchanged" for d in diffs):
            raise typer.Exit(1)

    @app.command()
    def uninstall(
        topology: TopologyOption = "single-cluster",
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        delete_data: DeleteDataOption = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Only list what would be deleted.")
        ] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Remove exactly what the install record lists, in reverse order.

        Only objects choreoctl created are deleted (each delete is conditional on the
        recorded uid); PVCs are kept unless --delete-data; a namespace goes only when
        nothing foreign is left in it. Interrupted? Run it again.

        Examples:
            choreoctl uninstall --topology single-cluster --context kind-dev
            choreoctl uninstall -t multi-region --delete-data --yes
        """
        from choreoctl.install.uninstall import run_uninstall

        topo = _context_topology(load(topology, values, sets), context)
        if not (yes or dry_run) and sys.stdin.isatty() and interactive():
            what = " and its data (PVCs)" if delete_data else ""
            typer.confirm(f"Uninstall {topo.name}{what}?", abort=True)
        out = console()

        def report(message: str) -> None:
            if output is OutputFormat.table and not interactive():
                out.print(message, soft_wrap=True, markup=False, highlight=False)

        result = with_clients(
            topo,
            kubeconfig,
            None,
            lambda clients: run_uninstall(
                topo, clients, delete_data=delete_data, dry_run=dry_run, report=report
            ),
        )
        data = result.as_dict()

        def draw(c: Console) -> None:
            verb = "would delete" if dry_run else "deleted"
            c.print(
                f"{verb} {len(data['deleted'])} object(s); kept {len(data['kept'])}; "
                f"{len(data['alreadyGone'])} already gone",
                soft_wrap=True,
            )
            for k in data["kept"]:
                c.print(f"  kept {k['object']}: {k['reason']}", soft_wrap=True, markup=False)

        emit(data, output, draw)
