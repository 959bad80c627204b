"""How the test kubelet builds a pod's process: argv, environment, mounted files, token.

The container's args and env as the chart wrote them, with the Secrets and ConfigMaps it
mounts written to files (the mountPath prefix in args/env rewritten to that directory),
env ``valueFrom`` resolved, container ports mapped to the pod's loopback ports, Service
URLs rewritten to the process behind the Service (:class:`ServiceDns`), and the cluster's
API address and a real ServiceAccount token (TokenRequest) in
``CHOREOCTL_SERVICEACCOUNT_DIR``. So a wrong flag, mount or RBAC rule in a chart fails the
test that runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from choreoctl.errors import ChoreoError
from choreoctl.kube.client import KubeClient
from tests.testenv.podspec import ClusterLike, Pod, rewrite_mounts, rewrite_ports
from tests.testenv.servicedns import ServiceDns


class PodCommands(ServiceDns):
    """Builds and refreshes what a pod's process is given, from its cluster's objects.

    A part of :class:`~tests.testenv.kubelet.Kubelet`, which sets these attributes.
    """

    clusters: dict[str, ClusterLike]
    clients: dict[str, KubeClient]
    choreoctl: str

    async def _command(self, pod: Pod, deploy: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        mounts = await self._refresh_mounts(pod, deploy, write=True)
        automount = deploy["spec"]["template"]["spec"].get("automountServiceAccountToken", True)
        sa_dir = await self._refresh_token(pod, deploy, max_age=0) if automount else None
        client = self.clients[pod.cluster]
        args = [rewrite_mounts(a, mounts) for a in container.get("args") or []]
        args = [self._rewrite_urls(pod, a) for a in rewrite_ports(args, pod.ports)]
        env: dict[str, str] = {
            k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ
        }
        for var in container.get("env") or []:
            value = await self._env_value(pod, var)
            if value is None:
                continue
            value = rewrite_mounts(value, mounts)
            if var["name"].endswith("PORT") and value.isdigit() and int(value) in pod.ports:
                value = str(pod.ports[int(value)])
            env[var["name"]] = self._rewrite_urls(pod, value)
        server = urlsplit(client.server)
        env["KUBERNETES_SERVICE_HOST"] = server.hostname or "127.0.0.1"
        env["KUBERNETES_SERVICE_PORT"] = str(server.port or 443)
        if sa_dir is not None:
            env["CHOREOCTL_SERVICEACCOUNT_DIR"] = str(sa_dir)
        command = [self.choreoctl, *container["command"][1:]]
        return command + args, env

    async def _env_value(self, pod: Pod, var: Mapping[str, Any]) -> str | None:
        if "value" in var:
            return str(var["value"])
        src = var.get("valueFrom") or {}
        client = self.clients[pod.cluster]
        for kind, ref_key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if ref_key in src:
                ref = src[ref_key]
                data = await self._object_data(client, kind, pod.namespace, ref["name"])
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        return None
                    raise ChoreoError(
                        f"env {var['name']}: {kind} {ref['name']}/{ref['key']} missing"
                    )
                return data[ref["key"]].decode()
        if "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            return {
                "metadata.namespace": pod.namespace,
                "metadata.name": f"{pod.name}-kubelet",
                "status.podIP": "127.0.0.1",
                "spec.nodeName": "kubelet",
            }.get(path, "")
        return None

    async def _object_data(
        self, client: KubeClient, kind: str, namespace: str, name: str
    ) -> dict[str, bytes] | None:
        import base64

        obj = await client.get("v1", kind, name, namespace)
        if obj is None:
            return None
        if kind == "Secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        return {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}

    async def _refresh_mounts(
        self, pod: Pod, deploy: Mapping[str, Any], *, write: bool
    ) -> list[tuple[str, Path]]:
        """Write every mounted Secret/ConfigMap to files; return (mountPath, dir) pairs."""
        spec = deploy["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        client = self.clients[pod.cluster]
        mounts: list[tuple[str, Path]] = []
        for vm in spec["containers"][0].get("volumeMounts") or []:
            vol = volumes.get(vm["name"], {})
            local = pod.dir / "volumes" / vm["name"]
            local.mkdir(parents=True, exist_ok=True)
            mounts.append((vm["mountPath"], local))
            for kind, field_name, name_key in (
                ("Secret", "secret", "secretName"),
                ("ConfigMap", "configMap", "name"),
            ):
                if field_name not in vol:
                    continue
                src = vol[field_name]
                data = await self._object_data(client, kind, pod.namespace, src[name_key])
                if data is None:
                    if src.get("optional"):
                        continue
                    raise ChoreoError(f"volume {vm['name']}: {kind} {src[name_key]} not found")
                items = src.get("items")
                files = {i["path"]: data[i["key"]] for i in items} if items else data
                for fname, content in files.items():
                    path = local / fname
                    if write and pod.files.get(str(path)) != content:
                        tmp = path.with_name(f".{path.name}.tmp")
                        tmp.parent.mkdir(parents=True, exist_ok=True)
                        tmp.write_bytes(content)
                        tmp.chmod(0o600)
                        tmp.replace(path)
                        pod.files[str(path)] = content
        return mounts

    async def _refresh_token(self, pod: Pod, deploy: Mapping[str, Any], *, max_age: float) -> Path:
        """A real token of the Deployment's ServiceAccount (TokenRequest), plus the CA."""
        loop = asyncio.get_running_loop()
        sa_dir = pod.dir / "serviceaccount"
        if max_age and loop.time() - pod.token_at < max_age:
            return sa_dir
        spec = deploy["spec"]["template"]["spec"]
        sa = spec.get("serviceAccountName") or "default"
        client = self.clients[pod.cluster]
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        }
        path = f"/api/v1/namespaces/{pod.namespace}/serviceaccounts/{sa}/token"
        resp = await client.request(
            "POST",
            path,
            headers={"Content-Type": "application/json"},
            content=json.dumps(body).encode(),
        )
        if resp.status_code >= 300:
            raise ChoreoError(
                f"TokenRequest for ServiceAccount {sa}: {resp.status_code} {resp.text[:200]}"
            )
        sa_dir.mkdir(parents=True, exist_ok=True)
        (sa_dir / "token").write_text(resp.json()["status"]["token"])
        (sa_dir / "namespace").write_text(pod.namespace)
        ca = self.clusters[pod.cluster].ca_file
        if ca:
            (sa_dir / "ca.crt").write_bytes(Path(ca).read_bytes())
        else:  # no CA file: the client then skips verification (test servers only)
            (sa_dir / "ca.crt").unlink(missing_ok=True)
        pod.token_at = loop.time()
        return sa_dir
