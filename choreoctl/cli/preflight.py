"""``choreoctl preflight``, and the check-report view ``doctor`` shares."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer

from choreoctl.cli.options import (
    ContextOption,
    KubeconfigOption,
    SetOption,
    TopologyOption,
    ValuesOption,
    load,
)
from choreoctl.cli.output import OutputFormat, OutputOption, emit

if TYPE_CHECKING:
    from rich.console import Console

    from choreoctl.checks.framework import Report
    from choreoctl.topology.model import Topology

MARKS = {
    "pass": ("√", "green"),
    "warn": ("‼", "yellow"),
    "fail": ("×", "red"),
    "skip": ("-", "dim"),
}

WaitOption = Annotated[
    str,
    typer.Option("--wait", help="Retry failing checks until they pass or this time is up (2m)."),
]
TimeoutOption = Annotated[str, typer.Option("--timeout", help="Time limit of each check.")]
StrictOption = Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show details of passing checks too.")
]


def draw_report(out: Console, report: Report, verbose: bool = False) -> None:
    """The grouped report for people: one block per cluster, categories, √ ‼ × marks.

    Plain text without colour when stdout is not a terminal (rich decides).
    """
    from rich.markup import escape

    for cluster in report.clusters():
        results = [r for r in report.results if r.cluster == cluster]
        title = f"cluster {cluster}" if cluster else "workstation"
        out.print(f"[bold]{escape(title)}[/]", soft_wrap=True)
        category = None
        blocked = [r for r in results if r.blocked_by]
        results = [r for r in results if not r.blocked_by]
        for r in results:
            if r.category != category:
                category = r.category
                out.print(f"  [bold]{escape(str(category))}[/]", soft_wrap=True)
            mark, colour = MARKS[str(r.status)]
            reason = f" [dim]({escape(r.reason)})[/]" if r.reason else ""
            out.print(f"    [{colour}]{mark}[/] {escape(r.description)}{reason}", soft_wrap=True)
            if r.status.value in ("fail", "warn") or verbose:
                for line in r.details[:20]:
                    out.print(f"        {escape(line)}", soft_wrap=True)
                if len(r.details) > 20:
                    out.print(f"        … and {len(r.details) - 20} more", soft_wrap=True)
            if r.status.value in ("fail", "warn"):
                out.print(f"        [bold]hint[/]: {escape(r.hint)}", soft_wrap=True)
                out.print(f"        see {escape(r.docs)}", soft_wrap=True)
        if blocked:
            out.print(
                f"  [red]×[/] {len(blocked)} further check(s) not run: the cluster is unreachable",
                soft_wrap=True,
            )
        out.print()
    c = report.counts()
    verdict = "[red]failed[/]" if report.failed else "[green]ok[/]"
    out.print(
        f"{report.command} {verdict}: {c['pass']} passed, {c['warn']} warning(s), "
        f"{c['fail']} failed, {c['skip']} skipped ({report.duration_s:.1f}s"
        + (f", {report.attempts} attempts)" if report.attempts > 1 else ")"),
        soft_wrap=True,
    )


def check_kubeconfig(kubeconfig: str | None) -> None:
    """A kubeconfig path that was given must exist (bad input, exit 2, otherwise)."""
    import os

    from choreoctl.errors import InputError

    for path in (kubeconfig or "").split(os.pathsep):
        if path and not os.path.isfile(os.path.expanduser(path)):
            raise InputError(
                f"kubeconfig {path} does not exist",
                hint="pass --kubeconfig PATH (or set KUBECONFIG) to an existing kubeconfig file",
            )


def with_context(topo: Topology, context: str | None) -> Topology:
    """``topo`` with every cluster's kubeconfig context replaced by ``context``."""
    if not context:
        return topo
    clusters = tuple(dataclasses.replace(c, context=context) for c in topo.clusters)
    return dataclasses.replace(topo, clusters=clusters)


def check_input(
    topology: str,
    values: list[str] | None,
    sets: list[str] | None,
    kubeconfig: str | None,
    context: str | None,
    wait: str,
    timeout: str,
) -> tuple[Topology, float, float]:
    """What preflight and doctor check: the topology (``--context`` applied), and the
    ``--wait`` and ``--timeout`` durations in seconds; every input error before any check."""
    from choreoctl.checks.runner import parse_duration

    wait_s, timeout_s = parse_duration(wait), parse_duration(timeout)
    check_kubeconfig(kubeconfig)
    return with_context(load(topology, values, sets), context), wait_s, timeout_s


def finish(report: Report, output: OutputFormat, strict: bool, verbose: bool) -> None:
    """Print the report and exit with its code (0 ok, 1 a failure / warning with --strict)."""
    emit(report.to_dict(), output, lambda c: draw_report(c, report, verbose))
    raise typer.Exit(report.exit_code(strict))


def register(app: typer.Typer) -> None:
    """Add ``preflight`` to the app."""

    @app.command()
    def preflight(
        topology: TopologyOption = "single-cluster",
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        probe: Annotated[
            bool,
            typer.Option(
                "--probe",
                help="Create short-lived probe objects (LoadBalancer Service, Pod) in a "
                "scratch namespace; they are always removed.",
            ),
        ] = False,
        wait: WaitOption = "0s",
        timeout: TimeoutOption = "10s",
        strict: StrictOption = False,
        verbose: VerboseOption = False,
        skip: Annotated[
            list[str] | None,
            typer.Option(
                "--skip",
                metavar="CHECK",
                help="Report this check as skipped instead of running it (repeatable; "
                "IDs as in -o json, e.g. dns).",
            ),
        ] = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Check every cluster of a topology before installing it.

        Kubernetes version, nodes and free capacity against the topology's requests,
        storage, permissions, LoadBalancer, cert-manager, local tools, domains, TLS
        files and gateway reachability. Exit 0 when all pass (warnings too, unless
        --strict), 1 when a check fails, 2 on bad input.

        Examples:
            choreoctl preflight --topology multi-region
            choreoctl preflight -t single-cluster --context kind-dev --probe
            choreoctl preflight -t my-topology.yaml -o json
            choreoctl preflight -t multi-region --skip dns --skip helm
        """
        from choreoctl.checks.preflight import run_preflight, skippable
        from choreoctl.cli import aio
        from choreoctl.errors import InputError

        unknown = sorted(set(skip or ()) - set(skippable()))
        if unknown:
            raise InputError(
                f"--skip: no check named {', '.join(unknown)}",
                hint="valid: " + ", ".join(sorted(skippable())),
            )
        topo, wait_s, timeout_s = check_input(
            topology, values, sets, kubeconfig, context, wait, timeout
        )
        report = aio.run(
            run_preflight(
                topo, kubeconfig, probe=probe, timeout=timeout_s, wait=wait_s, skip=skip or ()
            )
        )
        finish(report, output, strict, verbose)
