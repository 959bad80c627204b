"""``choreoctl gateway serve``: the cluster gateway of the control plane."""

from __future__ import annotations

from typing import Annotated

import typer

from choreoctl.cli.options import ContextOption, LogLevelOption

gateway_app = typer.Typer(
    help="The cluster gateway every plane's agent dials.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``gateway serve`` to the app."""
    app.add_typer(gateway_app, name="gateway")


@gateway_app.command("serve")
def serve(
    tls_cert: Annotated[
        str, typer.Option("--tls-cert", envvar="TLS_CERT", help="Server certificate (PEM).")
    ] = "/etc/cluster-gateway/tls/tls.crt",
    tls_key: Annotated[
        str, typer.Option("--tls-key", envvar="TLS_KEY", help="Server key (PEM).")
    ] = "/etc/cluster-gateway/tls/tls.key",
    client_ca: Annotated[
        str,
        typer.Option(
            "--client-ca",
            envvar="CLIENT_CA",
            help="CA of the internal port's clients (the gateway CA).",
        ),
    ] = "/etc/cluster-gateway/tls/ca.crt",
    port: Annotated[
        int, typer.Option("--port", envvar="PORT", help="Agent WebSocket port (wss).")
    ] = 8443,
    internal_port: Annotated[
        int, typer.Option("--internal-port", envvar="INTERNAL_PORT", help="Internal mTLS API port.")
    ] = 8444,
    health_port: Annotated[
        int,
        typer.Option(
            "--health-port", envvar="HEALTH_PORT", help="Plain-HTTP /health, /ready, /metrics."
        ),
    ] = 8080,
    host: Annotated[
        str, typer.Option("--host", envvar="HOST", help="Address to listen on.")
    ] = "0.0.0.0",
    heartbeat_interval: Annotated[
        str,
        typer.Option(
            "--heartbeat-interval",
            envvar="HEARTBEAT_INTERVAL",
            help="Ping agents this often (Go duration).",
        ),
    ] = "30s",
    heartbeat_timeout: Annotated[
        str,
        typer.Option(
            "--heartbeat-timeout",
            envvar="HEARTBEAT_TIMEOUT",
            help="Drop an agent silent this long.",
        ),
    ] = "90s",
    request_timeout: Annotated[
        str,
        typer.Option("--request-timeout", envvar="REQUEST_TIMEOUT", help="Answer 502 after this."),
    ] = "30s",
    drain_timeout: Annotated[
        str,
        typer.Option(
            "--drain-timeout",
            envvar="DRAIN_TIMEOUT",
            help="Wait this long for in-flight requests on SIGTERM.",
        ),
    ] = "20s",
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig",
            help="Read plane CRs with this kubeconfig instead of the ServiceAccount.",
        ),
    ] = None,
    context: ContextOption = None,
    log_level: LogLevelOption = "info",
) -> None:
    """Serve agents (--port), the control plane's proxy (--internal-port) and health.

    Agents are authorized per plane CR (DataPlane, BuildPlane, ObservabilityPlane) by
    verifying their client certificate against the CR's spec.clusterAgent.clientCA.
    SIGTERM drains in-flight requests, then asks agents to reconnect.

    Examples:
        choreoctl gateway serve --port 8443 --internal-port 8444 --health-port 8080
        choreoctl gateway serve --kubeconfig ~/.kube/config \\
            --tls-cert gw.crt --tls-key gw.key --client-ca ca.crt
    """
    import asyncio

    from choreoctl.runtime import jsonlog
    from choreoctl.runtime.config import kube_client, parse_duration
    from choreoctl.runtime.gateway.auth import KubePlaneSource
    from choreoctl.runtime.gateway.server import GatewayConfig
    from choreoctl.runtime.gateway.server import serve as serve_gateway

    jsonlog.setup(log_level)
    config = GatewayConfig(
        tls_cert=tls_cert,
        tls_key=tls_key,
        client_ca=client_ca,
        host=host,
        port=port,
        internal_port=internal_port,
        health_port=health_port,
        heartbeat_interval=parse_duration(heartbeat_interval, "--heartbeat-interval"),
        heartbeat_timeout=parse_duration(heartbeat_timeout, "--heartbeat-timeout"),
        request_timeout=parse_duration(request_timeout, "--request-timeout"),
        drain_timeout=parse_duration(drain_timeout, "--drain-timeout"),
    )

    async def main() -> None:
        async with kube_client(kubeconfig, context) as kube:
            await serve_gateway(config, KubePlaneSource(kube))

    asyncio.run(main())
