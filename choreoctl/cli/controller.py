"""``choreoctl controller run``: keeps plane and Environment status current."""

from __future__ import annotations

from typing import Annotated

import typer

from choreoctl.cli.options import ContextOption, LogLevelOption

controller_app = typer.Typer(help="The plane status controller.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``controller run`` to the app."""
    app.add_typer(controller_app, name="controller")


@controller_app.command("run")
def run(
    gateway_url: Annotated[
        str,
        typer.Option(
            "--gateway-url",
            envvar="GATEWAY_URL",
            help="The gateway's internal API (https://…:8444).",
        ),
    ],
    client_cert: Annotated[
        str, typer.Option("--client-cert", envvar="CLIENT_CERT", help="Client certificate (PEM).")
    ] = "/etc/controller-manager/tls/tls.crt",
    client_key: Annotated[
        str, typer.Option("--client-key", envvar="CLIENT_KEY", help="Client key (PEM).")
    ] = "/etc/controller-manager/tls/tls.key",
    server_ca: Annotated[
        str, typer.Option("--server-ca", envvar="SERVER_CA", help="The gateway CA (PEM).")
    ] = "/etc/controller-manager/tls/ca.crt",
    health_port: Annotated[
        int, typer.Option("--health-port", envvar="HEALTH_PORT", help="/health and /ready; 0: off.")
    ] = 8081,
    resync: Annotated[
        str, typer.Option("--resync", envvar="RESYNC", help="Re-list CRs at least this often.")
    ] = "10s",
    kubeconfig: Annotated[
        str | None,
        typer.Option("--kubeconfig", help="Use this kubeconfig instead of the ServiceAccount."),
    ] = None,
    context: ContextOption = None,
    log_level: LogLevelOption = "info",
) -> None:
    """Keep status.agentConnection and conditions of every plane CR, and Environment
    readiness, in step with the cluster gateway (within about a second of a change).

    Examples:
        choreoctl controller run \\
            --gateway-url https://cluster-gateway.openchoreo-control-plane.svc.cluster.local:8444
    """
    import asyncio

    from choreoctl.runtime import jsonlog
    from choreoctl.runtime.config import kube_client, parse_duration
    from choreoctl.runtime.controller import ControllerConfig
    from choreoctl.runtime.controller import run as run_controller

    jsonlog.setup(log_level)
    config = ControllerConfig(
        gateway_url=gateway_url,
        client_cert=client_cert,
        client_key=client_key,
        server_ca=server_ca,
        health_port=health_port,
        resync=parse_duration(resync, "--resync"),
    )

    async def main() -> None:
        async with kube_client(kubeconfig, context) as kube:
            await run_controller(config, kube)

    asyncio.run(main())
