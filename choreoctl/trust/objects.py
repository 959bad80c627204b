"""Reading and writing the Secrets, ConfigMaps and Namespaces the trust step owns.

Secret values travel base64-encoded in the API; these helpers hand out and take plain
bytes so the rest of the trust code never sees the encoding. Every write is a
server-side apply with field manager ``choreoctl`` so a re-run changes nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from choreoctl.errors import ApiError
from choreoctl.kube.client import KubeClient, Obj

MANAGED_BY = {
    "app.kubernetes.io/managed-by": "choreoctl",
    "app.kubernetes.io/part-of": "openchoreo",
}


async def read_secret(client: KubeClient, namespace: str, name: str) -> dict[str, bytes] | None:
    """The decoded data of a Secret, or None when it does not exist."""
    obj = await client.get("v1", "Secret", name, namespace)
    if obj is None:
        return None
    data: Mapping[str, str] = obj.get("data") or {}
    return {k: base64.b64decode(v) for k, v in data.items()}


async def write_secret(
    client: KubeClient,
    namespace: str,
    name: str,
    data: Mapping[str, bytes],
    *,
    secret_type: str = "kubernetes.io/tls",
) -> Obj:
    """Create or replace a Secret's data (server-side apply, taking ownership)."""
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "type": secret_type,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    return await client.apply(obj, force=True)


async def read_configmap(client: KubeClient, namespace: str, name: str) -> dict[str, str] | None:
    """The data of a ConfigMap, or None when it does not exist."""
    obj = await client.get("v1", "ConfigMap", name, namespace)
    if obj is None:
        return None
    return dict(obj.get("data") or {})


async def write_configmap(
    client: KubeClient, namespace: str, name: str, data: Mapping[str, str]
) -> Obj:
    """Create or replace a ConfigMap's data (server-side apply, taking ownership)."""
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "data": dict(data),
    }
    return await client.apply(obj, force=True)


async def ensure_namespace(client: KubeClient, name: str) -> None:
    """Create ``name`` when missing; an existing namespace is left exactly as it is."""
    if await client.get("v1", "Namespace", name) is not None:
        return
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
    }
    try:
        await client.create(obj)
    except ApiError as e:
        if e.status != 409:  # created meanwhile by someone else: fine
            raise
