"""A minimal synchronous Kubernetes API client for setting clusters up.

The launcher needs a handful of calls (create Nodes, server-side apply RBAC/StorageClass/CRDs,
poll readiness, patch Service status); httpx with a bearer token does that without making the
test environment depend on the product's own client, which is what it tests.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.testenv.errors import ClusterStartFailed

FIELD_MANAGER = "choreoctl-testenv"

# kind -> (collection path, namespaced) for the kinds the launcher writes.
_PATHS: dict[str, tuple[str, bool]] = {
    "Namespace": ("/api/v1/namespaces", False),
    "Node": ("/api/v1/nodes", False),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1/clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", False),
    "StorageClass": ("/apis/storage.k8s.io/v1/storageclasses", False),
    "CustomResourceDefinition": (
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        False,
    ),
    "Deployment": ("/apis/apps/v1/namespaces/{namespace}/deployments", True),
    "Logs": ("/apis/kwok.x-k8s.io/v1alpha1/namespaces/{namespace}/logs", True),
}


T = TypeVar("T")


class KubeApi:
    """Bearer-token client for one API server, trusting its serving cert bundle."""

    def __init__(self, server: str, token: str, ca_file: Path, timeout: float = 10.0) -> None:
        self.server = server
        context = ssl.create_default_context(cafile=str(ca_file))
        self._http = httpx.Client(
            base_url=server,
            headers={"Authorization": f"Bearer {token}"},
            verify=context,
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KubeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._http.request(method, path, **kwargs)

    def get(self, path: str) -> dict[str, Any] | None:
        """GET a JSON object; None on 404."""
        r = self._http.get(path)
        if r.status_code == 404:
            return None
        _raise_for(r)
        result: dict[str, Any] = r.json()
        return result

    def create(self, obj: dict[str, Any]) -> None:
        """POST an object; an existing one (409) is left as it is."""
        collection, _ = _PATHS[obj["kind"]]
        r = self._http.post(collection, json=obj)
        if r.status_code != 409:
            _raise_for(r)

    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply (forced) of an object of a kind in _PATHS."""
        collection, namespaced = _PATHS[obj["kind"]]
        if namespaced:
            collection = collection.format(namespace=obj["metadata"]["namespace"])
        r = self._http.patch(
            f"{collection}/{obj['metadata']['name']}",
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            json=obj,
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        _raise_for(r)

    def patch_status(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self._http.patch(
            f"{path}/status",
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )


def _raise_for(r: httpx.Response) -> None:
    if r.status_code >= 400:
        raise ClusterStartFailed(
            f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:500]}"
        )


def wait_for(
    what: str,
    probe: Callable[[], bool],
    timeout: float,
    alive: Callable[[], None] = lambda: None,
    interval: float = 0.2,
) -> None:
    """Poll ``probe`` until it is true; ``alive`` raises early if a process died."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        alive()
        try:
            if probe():
                return
        except (httpx.HTTPError, ClusterStartFailed, OSError) as e:
            last_error = f" (last error: {e})"
        if time.monotonic() >= deadline:
            raise ClusterStartFailed(
                f"timed out after {timeout:.0f} s waiting for {what}{last_error}"
            )
        time.sleep(interval)


def poll_until(what: str, check: Callable[[], T], timeout: float = 60.0) -> T:
    """Poll ``check`` every 0.5 s until it returns something truthy, and return that;
    AssertionError naming ``what`` after ``timeout`` seconds (for tests)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
