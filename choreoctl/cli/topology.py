"""``choreoctl topology list|show|validate|init``: inspect, check and create topologies."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from choreoctl.cli.options import SetOption, ValuesOption, complete_topology, load
from choreoctl.cli.output import OutputFormat, OutputOption, emit
from choreoctl.errors import InputError, Problem

if TYPE_CHECKING:
    from rich.console import Console

    from choreoctl.topology.model import Topology
    from choreoctl.topology.scaffold import InitAnswers

RefArgument = Annotated[
    str,
    typer.Argument(
        help="A built-in topology name or a topology file.",
        metavar="NAME|FILE",
        autocompletion=complete_topology,
    ),
]
TYPES = ("single-cluster", "multi-cluster", "multi-region")


def _summary(t: Topology) -> list[dict[str, Any]]:
    return [
        {
            "plane": f"{p.kind.name}/{p.name}",
            "cluster": f"{p.cluster} ({t.cluster(p.cluster).context})",
            "namespace": p.namespace,
            "hosts": ", ".join(h for h in [*p.domains.values(), p.public_virtual_host] if h) or "-",
        }
        for p in t.planes
    ]


def _table(rows: list[dict[str, Any]], title: str = "") -> Any:
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", box=None, pad_edge=False)
    for column in rows[0] if rows else []:
        table.add_column(column.upper(), overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    return table


def register(app: typer.Typer) -> None:
    """Add the ``topology`` command group to the app."""
    group = typer.Typer(
        name="topology",
        help="Inspect, validate and create topology files.",
        no_args_is_help=True,
    )
    app.add_typer(group)

    @group.command("list")
    def list_(output: OutputOption = OutputFormat.table) -> None:
        """List the built-in topologies.

        Examples:
            choreoctl topology list
            choreoctl topology list -o json
        """
        from choreoctl.topology.loader import builtin_names, load_parsed

        rows = []
        for name in builtin_names():
            parsed = load_parsed(name)
            t = parsed.topology
            rows.append(
                {
                    "name": name,
                    "planes": len(t.planes),
                    "clusters": len(t.clusters),
                    "description": parsed.description,
                }
            )
        emit(rows, output, lambda c: c.print(_table(rows)))

    @group.command()
    def show(
        ref: RefArgument,
        sets: SetOption = None,
        values: ValuesOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Show a topology with every default filled in.

        Table output lists the planes; yaml and json print the normalised document,
        which is itself a valid topology file.

        Examples:
            choreoctl topology show multi-region
            choreoctl topology show ./prod.yaml -f prod-values.yaml -o yaml
            choreoctl topology show multi-cluster --set spec.gateway.externalHost=gw.acme.io -o json
        """
        from choreoctl.topology.loader import topology_to_dict

        t = load(ref, values, sets)

        def table(c: Console) -> None:
            c.print(f"{t.name} ({t.type.value}), organization {t.organization}")
            c.print(_table(_summary(t)))

        emit(topology_to_dict(t), output, table)

    @group.command()
    def validate(
        ref: RefArgument,
        sets: SetOption = None,
        values: ValuesOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Validate a topology and print every problem at once.

        Exit code 0 when it is valid, 2 when it is not (each problem with
        file:line:column, field path, what was expected and a hint).

        Examples:
            choreoctl topology validate ./my-topology.yaml
            choreoctl topology validate multi-region \\
                --set spec.planes.data[0].publicVirtualHost=us.acme.io
            choreoctl topology validate ./t.yaml -f overrides.yaml
        """
        t = load(ref, values, sets)
        result = {
            "valid": True,
            "name": t.name,
            "type": t.type.value,
            "planes": len(t.planes),
            "clusters": len(t.clusters),
        }
        emit(
            result,
            output,
            lambda c: c.print(
                f"[green]✓[/] {ref}: valid {t.type.value} topology, "
                f"{len(t.planes)} planes in {len(t.clusters)} cluster(s)"
            ),
        )

    @group.command()
    def init(
        output_file: Annotated[
            str | None, typer.Option("--output", "-o", help="File to write.")
        ] = None,
        type_: Annotated[
            str | None,
            typer.Option("--type", help="single-cluster, multi-cluster or multi-region."),
        ] = None,
        domain: Annotated[
            str | None, typer.Option("--domain", help="Base domain, e.g. example.com.")
        ] = None,
        name: Annotated[
            str, typer.Option("--name", help="metadata.name (default: the type).")
        ] = "",
        context_prefix: Annotated[
            str, typer.Option("--context-prefix", help="Prefix of kubeconfig context names.")
        ] = "",
        regions: Annotated[
            str,
            typer.Option("--regions", help="multi-region: comma-separated regions."),
        ] = "us-east-1,eu-west-1,ap-southeast-1",
        build: Annotated[
            bool, typer.Option("--build/--no-build", help="Add a build plane.")
        ] = True,
        observability: Annotated[
            bool,
            typer.Option("--observability/--no-observability", help="Add an observability plane."),
        ] = True,
        no_input: Annotated[
            bool, typer.Option("--no-input", help="Never prompt; take everything from flags.")
        ] = False,
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    ) -> None:
        """Create a topology file, interactively or from flags.

        On a terminal it asks for the type, domain, kubeconfig contexts, regions and
        optional planes; with --no-input (or without a terminal) it takes them from
        flags. The file is written only once it validates, and never over an existing
        one without --force.

        Examples:
            choreoctl topology init
            choreoctl topology init --type multi-region --domain example.com \\
                --context-prefix gke- --output topology.yaml --no-input
            choreoctl topology init --type single-cluster --domain acme.dev --no-build -o t.yaml
        """
        from choreoctl.topology.model import TopologyType
        from choreoctl.topology.scaffold import InitAnswers, write_topology

        if not no_input and sys.stdin.isatty():
            answers, output_file = wizard(type_, domain, output_file)
        else:
            missing = [
                flag
                for flag, value in (
                    ("--type", type_),
                    ("--domain", domain),
                    ("--output", output_file),
                )
                if not value
            ]
            if missing:
                raise InputError(
                    f"missing {', '.join(missing)} (no terminal to ask on)",
                    hint="pass them as flags, e.g. --type multi-cluster --domain example.com "
                    "--output topology.yaml",
                )
            if type_ not in TYPES:
                raise InputError(
                    f"--type {type_!r} is not a topology type",
                    problems=(Problem(f"{type_!r}", where="--type", expected=" | ".join(TYPES)),),
                )
            answers = InitAnswers(
                type=TopologyType(type_),
                domain=str(domain),
                name=name,
                context_prefix=context_prefix,
                regions=tuple(r.strip() for r in regions.split(",") if r.strip()),
                build=build,
                observability=observability,
            )
        assert output_file is not None  # both branches set it
        write_topology(answers, output_file, force=force)
        sys.stdout.write(
            f"wrote {output_file} ({answers.type.value}); "
            f"check it with: choreoctl topology validate {output_file}\n"
        )


def wizard(
    type_: str | None, domain: str | None, output_file: str | None
) -> tuple[InitAnswers, str]:
    """Ask for the answers with questionary; flags already given are not asked again."""
    import questionary

    from choreoctl.topology import checks
    from choreoctl.topology.model import TopologyType
    from choreoctl.topology.scaffold import DEFAULT_REGIONS, InitAnswers

    def domain_ok(text: str) -> bool | str:
        return True if "." in text and not checks.dns_name(text) else "a DNS name like example.com"

    kind = TopologyType(
        type_ or questionary.select("Topology type:", choices=list(TYPES)).unsafe_ask()
    )
    base = (
        domain
        or questionary.text("Base domain:", default="example.com", validate=domain_ok).unsafe_ask()
    )
    prefix = questionary.text("Kubeconfig context prefix (may be empty):").unsafe_ask()
    regions: tuple[str, ...] = DEFAULT_REGIONS
    if kind is TopologyType.multi_region:
        text = questionary.text(
            "Regions (comma-separated, one data plane each):", default=",".join(DEFAULT_REGIONS)
        ).unsafe_ask()
        regions = tuple(r.strip() for r in text.split(",") if r.strip())
    build = questionary.confirm("Add a build plane?", default=True).unsafe_ask()
    observability = questionary.confirm("Add an observability plane?", default=True).unsafe_ask()
    path = output_file or questionary.text("Write to:", default="topology.yaml").unsafe_ask()
    answers = InitAnswers(
        type=kind,
        domain=base,
        context_prefix=prefix,
        regions=regions,
        build=build,
        observability=observability,
    )
    return answers, path
