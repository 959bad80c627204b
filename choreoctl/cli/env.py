"""``choreoctl env create|list|delete``: Environments and their (immutable) data plane."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from choreoctl.cli.options import ContextOption, KubeconfigOption, OrgOption, with_control
from choreoctl.cli.output import OutputFormat, OutputOption, emit

if TYPE_CHECKING:
    from rich.console import Console

    from choreoctl.kube.client import KubeClient


def _draw(rows: list[dict[str, Any]], out: Console) -> None:
    from rich.table import Table

    t = Table("name", "data plane", "dns prefix", "production", "ready", "reason")
    for r in rows:
        t.add_row(
            r["name"], r["dataPlane"], r["dnsPrefix"], str(r["production"]), r["ready"], r["reason"]
        )
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add the ``env`` group to the app."""
    env = typer.Typer(help="Create, list and delete Environments.", no_args_is_help=True)
    app.add_typer(env, name="env")

    @env.command()
    def create(
        name: Annotated[str, typer.Argument(help="Environment name.")],
        data_plane: Annotated[str, typer.Option("--data-plane", help="DataPlane to deploy to.")],
        dns_prefix: Annotated[
            str, typer.Option("--dns-prefix", help="Label before the apps domain.")
        ] = "",
        production: Annotated[bool, typer.Option("--production", help="A production stage.")] = (
            False
        ),
        organization: OrgOption = "default-organization",
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Create an Environment, or update it when its data plane stays the same.

        An Environment's data plane cannot change (dataPlaneRef is immutable): such a
        change is refused with the reason; delete and re-create the environment instead.

        Examples:
            choreoctl env create qa --data-plane us --dns-prefix qa
            choreoctl env create prod-eu --data-plane eu --dns-prefix prod --production
        """
        from choreoctl.planes.environments import apply_environment, environment_row
        from choreoctl.topology.model import Environment

        spec = Environment(name, data_plane, dns_prefix or name, production)

        async def work(control: KubeClient) -> dict[str, Any]:
            return environment_row(await apply_environment(control, organization, spec))

        row = with_control(kubeconfig, context, work)
        emit(row, output, lambda c: c.print(f"[green]✓[/] environment {name} → {data_plane}"))

    @env.command("list")
    def list_cmd(
        organization: OrgOption = "default-organization",
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """List Environments with their data plane and readiness.

        Examples:
            choreoctl env list
            choreoctl env list -o yaml
        """
        from choreoctl.planes.environments import list_environments

        rows = with_control(
            kubeconfig, context, lambda control: list_environments(control, organization)
        )
        emit(rows, output, lambda c: _draw(rows, c))

    @env.command()
    def delete(
        name: Annotated[str, typer.Argument(help="Environment name.")],
        organization: OrgOption = "default-organization",
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        """Delete an Environment.

        Examples:
            choreoctl env delete qa
        """
        from choreoctl.planes.environments import delete_environment

        deleted = with_control(
            kubeconfig, context, lambda control: delete_environment(control, organization, name)
        )
        msg = "deleted" if deleted else "did not exist"
        emit({"name": name, "deleted": deleted}, output, lambda c: c.print(f"{name} {msg}"))
