"""Where a cluster is and how to authenticate to it: kubeconfig contexts and in-cluster.

Static credentials are read by :mod:`choreoctl.kube.kubeconfig`; contexts that need a
credential plugin (exec, auth-provider) go through the ``kubernetes`` package's loader.
Either way the result is a small :class:`Endpoint` that
:class:`choreoctl.kube.client.KubeClient` dials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from choreoctl.errors import ClusterError, InputError

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class Endpoint:
    """One API server and the credentials to use with it."""

    server: str
    token: str | None = None
    ca_file: str | None = None
    client_cert: tuple[str, str] | None = None  # (certificate file, key file)
    verify: bool = True
    name: str = ""  # context name, or "in-cluster"
    token_file: str | None = None  # re-read now and then: projected tokens rotate


def list_contexts(kubeconfig: str | None = None) -> tuple[list[str], str | None]:
    """Every context name in the kubeconfig (merged as kubectl does), and the current one."""
    from choreoctl.kube.kubeconfig import read_kubeconfig

    cfg = read_kubeconfig(kubeconfig)
    return list(cfg.contexts), cfg.current


def endpoint_from_kubeconfig(kubeconfig: str | None, context: str | None) -> Endpoint:
    """Resolve ``context`` (or the current one) of a kubeconfig into an :class:`Endpoint`."""
    from choreoctl.kube.kubeconfig import read_kubeconfig, resolve

    cfg = read_kubeconfig(kubeconfig)
    creds = resolve(cfg, context)
    if creds.needs_plugin:
        return _endpoint_with_plugin(os.pathsep.join(cfg.files), creds.context)
    return Endpoint(
        server=creds.server,
        token=creds.token,
        ca_file=creds.ca_file,
        client_cert=creds.client_cert,
        verify=creds.verify,
        name=creds.context,
        token_file=creds.token_file,
    )


def _endpoint_with_plugin(files: str, context: str) -> Endpoint:
    """Contexts whose user runs an exec or auth-provider plugin: the kubernetes loader."""
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, load_kube_config

    cfg = Configuration()
    try:
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=files, context=context, client_configuration=cfg, persist_config=False
        )
    except (ConfigException, OSError, ValueError, KeyError) as e:
        raise InputError(
            f"cannot load context {context!r} from kubeconfig {files}: {e}",
            hint="check the credential plugin of this context with `kubectl --context "
            f"{context} version`",
        ) from e
    token = None
    auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
    if auth:
        token = auth.removeprefix("Bearer ").strip()
    client_cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
    return Endpoint(
        server=cfg.host.rstrip("/"),
        token=token,
        ca_file=cfg.ssl_ca_cert or None,
        client_cert=client_cert,
        verify=bool(cfg.verify_ssl),
        name=context,
    )


def endpoint_in_cluster() -> Endpoint:
    """The API server of the cluster this process runs in, with its ServiceAccount.

    The token directory can be moved with ``CHOREOCTL_SERVICEACCOUNT_DIR`` so the test
    kubelet can run the real binaries outside a pod.
    """
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ClusterError(
            "not running in a cluster: KUBERNETES_SERVICE_HOST is not set",
            hint="run inside a pod, or set KUBERNETES_SERVICE_HOST/PORT and "
            "CHOREOCTL_SERVICEACCOUNT_DIR",
        )
    sa_dir = Path(os.environ.get("CHOREOCTL_SERVICEACCOUNT_DIR", SERVICEACCOUNT_DIR))
    token_file = sa_dir / "token"
    try:
        token = token_file.read_text().strip()
    except OSError as e:
        raise ClusterError(
            f"cannot read the ServiceAccount token {token_file}: {e}",
            hint="mount the ServiceAccount token (automountServiceAccountToken: true)",
        ) from e
    ca = sa_dir / "ca.crt"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return Endpoint(
        server=f"https://{host}:{port}",
        token=token,
        ca_file=str(ca) if ca.is_file() else None,
        verify=ca.is_file(),
        name="in-cluster",
        token_file=str(token_file),
    )
