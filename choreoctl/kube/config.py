"""Where a cluster is and how to authenticate to it: kubeconfig contexts and in-cluster.

The ``kubernetes`` package reads kubeconfig files (merging ``$KUBECONFIG`` lists, exec
plugins, embedded certificates); this module turns its result into a small
:class:`Endpoint` that :class:`choreoctl.kube.client.KubeClient` dials with httpx.
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


def _kubeconfig_files(kubeconfig: str | None) -> str:
    if kubeconfig:
        return kubeconfig
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def list_contexts(kubeconfig: str | None = None) -> tuple[list[str], str | None]:
    """Every context name in the kubeconfig, and the current one."""
    from kubernetes.config import ConfigException, list_kube_config_contexts

    files = _kubeconfig_files(kubeconfig)
    try:
        contexts, current = list_kube_config_contexts(config_file=files)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as e:
        raise InputError(
            f"cannot read kubeconfig {files}: {e}",
            hint="pass --kubeconfig PATH or set KUBECONFIG to a readable kubeconfig file",
        ) from e
    return [c["name"] for c in contexts], (current or {}).get("name")


def endpoint_from_kubeconfig(kubeconfig: str | None, context: str | None) -> Endpoint:
    """Resolve ``context`` (or the current one) of a kubeconfig into an :class:`Endpoint`."""
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, load_kube_config

    files = _kubeconfig_files(kubeconfig)
    cfg = Configuration()
    try:
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=files, context=context, client_configuration=cfg, persist_config=False
        )
    except (ConfigException, OSError, ValueError, KeyError) as e:
        what = f"context {context!r}" if context else "the current context"
        raise InputError(
            f"cannot load {what} from kubeconfig {files}: {e}",
            hint="list contexts with `kubectl config get-contexts`; pass --context NAME",
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
        name=context or "",
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
