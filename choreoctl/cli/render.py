"""``choreoctl render``: a topology to kustomize directories and an install plan, offline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from choreoctl.cli.options import SetOption, TopologyOption, ValuesOption, load
from choreoctl.cli.output import OutputFormat, OutputOption, emit

if TYPE_CHECKING:
    from rich.console import Console


def _table(summary: dict[str, Any]) -> Any:
    def draw(console: Console) -> None:
        from rich.table import Table

        table = Table(title=None, show_edge=False, pad_edge=False)
        for col in ("CLUSTER", "DIRECTORY", "OBJECTS"):
            table.add_column(col, justify="right" if col == "OBJECTS" else "left")
        for d in summary["directories"]:
            table.add_row(d["cluster"], d["directory"], str(d["objects"]))
        console.print(
            f"Rendered topology [bold]{summary['topology']}[/] into {summary['outputDir']} "
            f"({summary['files']} files)."
        )
        console.print(table)
        console.print(f"Install plan: {summary['plan']}")

    return draw


def register(app: typer.Typer) -> None:
    """Add ``render`` to the app."""

    @app.command()
    def render(
        topology: TopologyOption,
        output_dir: Annotated[
            Path,
            typer.Option("--output-dir", "-d", help="Directory to write; created if missing."),
        ],
        values: ValuesOption = None,
        sets: SetOption = None,
        force: Annotated[
            bool,
            typer.Option(
                "--force", help="Write into a non-empty directory that is not a previous render."
            ),
        ] = False,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Render every plane of a topology into kustomize directories and an install plan.

        Writes DIR/<cluster>/<plane>/ (one file per object and a kustomization.yaml),
        the CRDs into the control plane cluster's DIR/<cluster>/crds/, and DIR/plan.yaml
        with the install order: control, trust, observability, data, build. No cluster
        is contacted. The same input always gives byte-identical files; rendering again
        into a previous render's directory replaces it.

        Examples:
            choreoctl render --topology multi-region --output-dir rendered/
            choreoctl render -t my-topology.yaml -f prod-values.yaml -d out/ -o json
            choreoctl render -t single-cluster --set images.registry=registry.corp:5000 -d out/
        """
        from choreoctl.render import render_topology, write_rendered

        topo = load(topology, values, sets)
        summary = write_rendered(render_topology(topo), output_dir, force=force).to_dict()
        emit(summary, output, _table(summary))
