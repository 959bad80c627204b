"""``choreoctl doctor``: troubleshoot an installed topology, optionally into a bundle."""

from __future__ import annotations

from typing import Annotated

import typer

from choreoctl.cli.options import (
    ContextOption,
    KubeconfigOption,
    SetOption,
    TopologyOption,
    ValuesOption,
)
from choreoctl.cli.output import OutputFormat, OutputOption
from choreoctl.cli.preflight import (
    StrictOption,
    TimeoutOption,
    VerboseOption,
    WaitOption,
    check_input,
    finish,
)


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the app."""

    @app.command()
    def doctor(
        topology: TopologyOption = "single-cluster",
        values: ValuesOption = None,
        sets: SetOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        bundle: Annotated[
            str | None,
            typer.Option(
                "--bundle",
                help="Also write a support bundle (tar.gz): results, object YAML, events, "
                "logs; Secret values and tokens redacted.",
            ),
        ] = None,
        wait: WaitOption = "0s",
        timeout: TimeoutOption = "10s",
        strict: StrictOption = False,
        verbose: VerboseOption = False,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Diagnose an installed topology: agents, planes, environments, trust, workloads.

        Exit 0 when all checks pass (warnings too, unless --strict), 1 when one fails,
        2 on bad input. --wait retries failing checks, e.g. right after an install.

        Examples:
            choreoctl doctor --topology multi-region
            choreoctl doctor -t single-cluster --context kind-dev --wait 2m
            choreoctl doctor -t multi-cluster --bundle support.tar.gz
        """
        import sys

        from choreoctl.checks.doctor import run_doctor
        from choreoctl.checks.framework import Report
        from choreoctl.cli import aio

        topo, wait_s, timeout_s = check_input(
            topology, values, sets, kubeconfig, context, wait, timeout
        )

        async def main() -> Report:
            report = await run_doctor(topo, kubeconfig, timeout=timeout_s, wait=wait_s)
            if bundle:
                from choreoctl.checks.bundle import collect_bundle, write_bundle

                files = await collect_bundle(topo, kubeconfig, report, timeout=timeout_s)
                path = write_bundle(files, bundle)
                sys.stderr.write(f"support bundle written to {path} ({len(files.files)} files)\n")
            return report

        finish(aio.run(main()), output, strict, verbose)
