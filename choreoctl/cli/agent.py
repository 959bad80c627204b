"""``choreoctl agent run`` (the cluster agent of a data, build or observability plane) and
``choreoctl agent probe`` (preflight's in-cluster reachability test, same image)."""

from __future__ import annotations

from typing import Annotated

import typer

from choreoctl.cli.options import ContextOption, LogLevelOption

agent_app = typer.Typer(help="The cluster agent that dials the gateway.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``agent run`` and ``agent probe`` to the app."""
    app.add_typer(agent_app, name="agent")


@agent_app.command("run")
def run(
    server_url: Annotated[
        str, typer.Option("--server-url", envvar="SERVER_URL", help="wss://<gateway>:8443/ws")
    ],
    plane_id: Annotated[
        str, typer.Option("--plane-id", envvar="PLANE_ID", help="This plane's planeID.")
    ],
    plane_type: Annotated[
        str,
        typer.Option(
            "--plane-type",
            envvar="PLANE_TYPE",
            help="dataplane, buildplane (alias workflowplane) or observabilityplane.",
        ),
    ] = "dataplane",
    client_cert: Annotated[
        str, typer.Option("--client-cert", envvar="CLIENT_CERT", help="Agent certificate (PEM).")
    ] = "/etc/cluster-agent/tls/tls.crt",
    client_key: Annotated[
        str, typer.Option("--client-key", envvar="CLIENT_KEY", help="Agent key (PEM).")
    ] = "/etc/cluster-agent/tls/tls.key",
    server_ca: Annotated[
        str, typer.Option("--server-ca", envvar="SERVER_CA", help="The gateway CA (PEM).")
    ] = "/etc/cluster-agent/gateway-ca/ca.crt",
    health_port: Annotated[
        int,
        typer.Option(
            "--health-port", envvar="HEALTH_PORT", help="/health, /ready, /metrics; 0: off."
        ),
    ] = 8080,
    heartbeat_interval: Annotated[
        str,
        typer.Option(
            "--heartbeat-interval", envvar="HEARTBEAT_INTERVAL", help="Ping the gateway this often."
        ),
    ] = "15s",
    heartbeat_timeout: Annotated[
        str,
        typer.Option(
            "--heartbeat-timeout",
            envvar="HEARTBEAT_TIMEOUT",
            help="Reconnect when nothing arrived for this long.",
        ),
    ] = "45s",
    max_concurrent: Annotated[
        int, typer.Option("--max-concurrent", envvar="MAX_CONCURRENT", help="Requests run at once.")
    ] = 64,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig", help="Serve this kubeconfig's cluster instead of the in-cluster API."
        ),
    ] = None,
    context: ContextOption = None,
    log_level: LogLevelOption = "info",
) -> None:
    """Dial the cluster gateway and serve its requests against this cluster's API server.

    Requests run with the agent's own ServiceAccount. HTTPS_PROXY/NO_PROXY are honoured.
    Reconnects back off exponentially with full jitter; SIGTERM stops the agent.

    Examples:
        choreoctl agent run --server-url wss://gateway.example.com:8443/ws \\
            --plane-type dataplane --plane-id eu-1
    """
    import asyncio

    from choreoctl.runtime import jsonlog
    from choreoctl.runtime.agent import AgentConfig
    from choreoctl.runtime.agent import run as run_agent
    from choreoctl.runtime.agent_exec import Executor
    from choreoctl.runtime.config import kube_client, parse_duration
    from choreoctl.runtime.config import plane_type as canonical_type

    jsonlog.setup(log_level)
    config = AgentConfig(
        server_url=server_url,
        plane_type=canonical_type(plane_type),
        plane_id=plane_id,
        client_cert=client_cert,
        client_key=client_key,
        server_ca=server_ca,
        health_port=health_port,
        heartbeat_interval=parse_duration(heartbeat_interval, "--heartbeat-interval"),
        heartbeat_timeout=parse_duration(heartbeat_timeout, "--heartbeat-timeout"),
        max_concurrent=max_concurrent,
    )

    async def main() -> None:
        async with kube_client(kubeconfig, context) as kube:
            await run_agent(config, Executor(kube))

    asyncio.run(main())


@agent_app.command("probe")
def probe(
    host: Annotated[str, typer.Argument(help="The gateway's host (gateway.externalHost).")],
    port: Annotated[int, typer.Argument(help="The gateway's port (gateway.port).", min=1)],
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds for the connect and TLS handshake.")
    ] = 5.0,
) -> None:
    """Test from here whether an agent could reach the gateway; print one JSON line.

    A TCP connect and, when the port is open, a TLS handshake (unverified) that reads the
    certificate's DNS/IP names and says whether they cover HOST. Prints
    {"verdict": "open|refused|unresolved|timeout", "detail": ..., "certNames": [...]}.
    Exit 0 when the network path works (open, or refused: the host answers but nothing
    listens yet, as before an install), 1 otherwise. Preflight runs it in a probe Pod
    (`choreoctl preflight --probe`).

    Examples:
        choreoctl agent probe gateway.example.com 8443 --timeout 3
    """

    from choreoctl.cli import aio
    from choreoctl.runtime.probe import probe as run_probe

    result = aio.run(run_probe(host, port, timeout))
    typer.echo(result.to_json())
    raise typer.Exit(0 if result.reachable else 1)
