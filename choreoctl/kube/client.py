"""An async Kubernetes API client: the one way choreoctl talks to a cluster.

Why not the ``kubernetes`` package's client: it is synchronous, generated per kind and
slow to import; choreoctl needs a few generic verbs (get, list, watch, server-side
apply, delete, raw requests) for any kind, including CRDs, from asyncio code that runs
many clusters at once. Kinds are resolved to URL paths through API discovery, cached
per client. Every failure becomes a :class:`~choreoctl.errors.ClusterError`.

Requests go through :class:`~choreoctl.kube.transport.ApiTransport` (the token, TLS
and the three transports: a small HTTP/1.1 client for the verbs here, aiohttp for the
agent's relay, httpx for watches).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from choreoctl.errors import ApiError
from choreoctl.kube.config import Endpoint, endpoint_from_kubeconfig, endpoint_in_cluster
from choreoctl.kube.kinds import BUILTIN
from choreoctl.kube.kinds import ResourceInfo as ResourceInfo  # re-exported: its old home
from choreoctl.kube.raw import RawResponse
from choreoctl.kube.transport import ApiTransport, Obj

if TYPE_CHECKING:
    import httpx

__all__ = ["KubeClient", "Obj", "ResourceInfo"]


def _group_path(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


class KubeClient:
    """Generic async verbs against one API server.

    Use ``async with KubeClient.from_kubeconfig(...) as kc:`` or call :meth:`aclose`.
    ``max_in_flight``: see :class:`~choreoctl.kube.transport.ApiTransport`.
    """

    def __init__(
        self,
        server: str,
        token: str | None = None,
        ca_file: str | None = None,
        client_cert: tuple[str, str] | None = None,
        verify: bool = True,
        *,
        name: str = "",
        token_file: str | None = None,
        timeout: float = 30.0,
        max_in_flight: int = 0,
    ) -> None:
        self._api = ApiTransport(
            server,
            token,
            ca_file,
            client_cert,
            verify,
            name=name,
            token_file=token_file,
            timeout=timeout,
            max_in_flight=max_in_flight,
        )
        self.server = self._api.server
        self._resources: dict[tuple[str, str], ResourceInfo] = dict(BUILTIN)
        self._discovering: dict[str, asyncio.Task[list[ResourceInfo]]] = {}

    @property
    def name(self) -> str:
        """How errors name this cluster, e.g. ``data (prod-eu)``; callers may rename it."""
        return self._api.name

    @name.setter
    def name(self, value: str) -> None:
        self._api.name = value

    @classmethod
    def from_endpoint(
        cls, ep: Endpoint, timeout: float = 30.0, max_in_flight: int = 0
    ) -> KubeClient:
        """A client for a resolved :class:`Endpoint` (``max_in_flight``: see ``__init__``)."""
        return cls(
            ep.server,
            ep.token,
            ep.ca_file,
            ep.client_cert,
            ep.verify,
            name=ep.name,
            token_file=ep.token_file,
            timeout=timeout,
            max_in_flight=max_in_flight,
        )

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None, context: str | None) -> KubeClient:
        """A client for a kubeconfig context (``None`` = the current context)."""
        return cls.from_endpoint(endpoint_from_kubeconfig(kubeconfig, context))

    @classmethod
    def in_cluster(cls) -> KubeClient:
        """A client for the cluster this process runs in, with its ServiceAccount."""
        return cls.from_endpoint(endpoint_in_cluster())

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools."""
        await self._api.aclose()

    # -- requests as they are (the gateway, the agent) --------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        stream: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request as-is and return the response, whatever its status
        (:meth:`ApiTransport.request`)."""
        return await self._api.request(
            method,
            path,
            params=params,
            headers=headers,
            content=content,
            stream=stream,
            timeout=timeout,
        )

    async def open_raw(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """Relay one request byte for byte (:meth:`ApiTransport.open_raw`)."""
        return await self._api.open_raw(
            method, url, headers=headers, content=content, timeout=timeout
        )

    # -- discovery ----------------------------------------------------------------------

    async def resource(self, api_version: str, kind: str) -> ResourceInfo:
        """Resolve a kind to its URL path: built-in kinds from :mod:`choreoctl.kube.kinds`,
        the rest through discovery (cached; refreshed on a miss)."""
        key = (api_version, kind)
        if key not in self._resources:
            await self.discover(api_version)
        if key not in self._resources:
            raise ApiError(
                f"{self.name}: the API server does not serve kind {kind} in {api_version}",
                hint="install its CRD first (or check the apiVersion)",
                status=404,
                reason="NotFound",
            )
        return self._resources[key]

    async def discover(self, api_version: str) -> list[ResourceInfo]:
        """Ask the server which kinds ``api_version`` serves ([] when it serves none).

        Concurrent calls for one group share one request; the answer refreshes the cache.
        """
        task = self._discovering.get(api_version)
        if task is None:
            task = asyncio.ensure_future(self._discover(api_version))
            self._discovering[api_version] = task
            task.add_done_callback(lambda _t: self._discovering.pop(api_version, None))
        return await asyncio.shield(task)

    async def _discover(self, api_version: str) -> list[ResourceInfo]:
        data = await self._api.call("GET", _group_path(api_version), ok_missing=True) or {}
        found = []
        for r in data.get("resources", []):
            if "/" in r["name"]:
                continue  # subresources
            info = ResourceInfo(api_version, r["kind"], r["name"], bool(r["namespaced"]))
            self._resources[(api_version, r["kind"])] = info
            found.append(info)
        return found

    async def path(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """The URL path of a collection or an object of ``kind``."""
        info = await self.resource(api_version, kind)
        parts = [_group_path(api_version)]
        if info.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(info.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)

    # -- verbs --------------------------------------------------------------------------

    async def get_path(self, path: str) -> Obj | None:
        """The JSON document at a path that names no object (``/apis``, a group's
        discovery); ``None`` when the server serves nothing there (404)."""
        return await self._api.call("GET", path, ok_missing=True)

    async def server_date(self) -> str:
        """The API server's clock: the ``Date`` header of its answer ("" without one)."""
        return await self._api.server_date()

    async def version(self) -> Obj:
        """``/version`` of the API server (gitVersion, major, minor …)."""
        return await self._api.call("GET", "/version") or {}

    async def snapshot(self) -> str:
        """The cluster's current resourceVersion (from a one-item list read from etcd).

        Reads with ``not_older_than=`` that version see every write finished before this
        call, yet the API server answers them from its watch cache: no etcd read, about
        half its CPU. Point-in-time readers (preflight) take one snapshot per cluster.
        """
        data = await self._api.call("GET", "/api/v1/namespaces", params={"limit": 1}) or {}
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    async def get(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        not_older_than: str = "",
    ) -> Obj | None:
        """One object, or None when it does not exist (``not_older_than``: :meth:`snapshot`)."""
        path = await self.path(api_version, kind, namespace, name)
        params = {"resourceVersion": not_older_than} if not_older_than else None
        return await self._api.call("GET", path, params=params, ok_missing=True)

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        not_older_than: str = "",
    ) -> list[Obj]:
        """Every object of ``kind`` (in ``namespace``, or all), following pagination.

        ``not_older_than``: a :meth:`snapshot` version the list must include.
        """
        path = await self.path(api_version, kind, namespace)
        params: dict[str, Any] = {"limit": 500}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if not_older_than:
            params["resourceVersion"] = not_older_than
            params["resourceVersionMatch"] = "NotOlderThan"
        items: list[Obj] = []
        while True:
            data = await self._api.call("GET", path, params=params) or {}
            items.extend(data.get("items", []))
            cont = data.get("metadata", {}).get("continue")
            if not cont:
                return items
            # the continue token carries the version; the server refuses both
            params.pop("resourceVersion", None)
            params.pop("resourceVersionMatch", None)
            params["continue"] = cont

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
        label_selector: str | None = None,
        bookmarks: bool = False,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Yield ``(event type, object)`` from a watch until the server ends it.

        BOOKMARK events (only a resourceVersion) come only with ``bookmarks=True``; an
        ERROR event (e.g. 410 Gone: the resourceVersion is too old) raises
        :class:`ApiError` so the caller lists again.
        """
        path = await self.path(api_version, kind, namespace)
        params: dict[str, Any] = {"watch": "true"}
        if bookmarks:
            params["allowWatchBookmarks"] = "true"
        if resource_version:
            params["resourceVersion"] = resource_version
        if timeout_seconds:
            params["timeoutSeconds"] = timeout_seconds
        if label_selector:
            params["labelSelector"] = label_selector
        resp = await self.request("GET", path, params=params, stream=True, timeout=None)
        try:
            if resp.status_code >= 400:
                await resp.aread()
                raise self._api.api_error("WATCH", path, resp)
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                etype, obj = str(event.get("type", "")), event.get("object") or {}
                if etype == "ERROR":
                    raise ApiError(
                        f"{self.name}: watch {path}: {obj.get('message', 'error event')}",
                        hint="the watch expired; list again and watch from the new version",
                        status=int(obj.get("code") or 500),
                        reason=str(obj.get("reason") or ""),
                    )
                yield etype, obj
        finally:
            await resp.aclose()

    async def apply(
        self,
        obj: Obj,
        field_manager: str = "choreoctl",
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        """Server-side apply ``obj``; conflicts raise :class:`ApplyConflict` naming the fields."""
        meta = obj.get("metadata", {})
        path = await self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        params: dict[str, Any] = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        out = await self._api.call(
            "PATCH", path, params=params, body=obj, content_type="application/apply-patch+yaml"
        )
        return out or {}

    async def create(self, obj: Obj, dry_run: bool = False) -> Obj:
        """Create ``obj`` (409 AlreadyExists raises :class:`ApiError`)."""
        meta = obj.get("metadata", {})
        path = await self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        params = {"dryRun": "All"} if dry_run else None
        return await self._api.call("POST", path, params=params, body=obj) or {}

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Obj,
        subresource: str | None = None,
    ) -> Obj:
        """JSON merge patch of an object (or of its ``subresource``)."""
        path = await self.path(api_version, kind, namespace, name, subresource)
        return (
            await self._api.call(
                "PATCH", path, body=patch, content_type="application/merge-patch+json"
            )
            or {}
        )

    async def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str | None, patch: Obj
    ) -> Obj:
        """Merge patch on the status subresource."""
        return await self.patch(api_version, kind, name, namespace, patch, "status")

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete an object; False when it was already gone."""
        path = await self.path(api_version, kind, namespace, name)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        out = await self._api.call("DELETE", path, body=body, ok_missing=True)
        return out is not None

    async def can_i(
        self,
        verb: str,
        resource: str,
        group: str = "",
        namespace: str | None = None,
        subresource: str = "",
    ) -> bool:
        """SelfSubjectAccessReview: may the current identity do ``verb`` on ``resource``?"""
        attrs: Obj = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        out = await self._api.call("POST", path, body=review) or {}
        return bool(out.get("status", {}).get("allowed"))

    # -- added for the install engine -----------------------------------------------------

    async def delete_exact(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        uid: str,
        propagation: str = "Background",
    ) -> bool:
        """Delete an object only while its uid is ``uid``; False when it is already gone.

        A replaced object (same name, other uid) makes the server answer 409, raised as
        :class:`ApiError`: uninstall must never delete what it did not create.
        """
        path = await self.path(api_version, kind, namespace, name)
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation,
            "preconditions": {"uid": uid},
        }
        out = await self._api.call("DELETE", path, body=body, ok_missing=True)
        return out is not None

    async def pod_logs(
        self, name: str, namespace: str, container: str | None = None, tail_lines: int = 200
    ) -> str:
        """The last ``tail_lines`` of a pod's log; :class:`ApiError` when the kubelet is
        not reachable (e.g. simulated nodes) or the pod has no such container."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/log"
        params: dict[str, Any] = {"tailLines": tail_lines}
        if container:
            params["container"] = container
        status, raw = await self._api.send("GET", path, params, {"Accept": "*/*"}, None)
        if status >= 400:
            raise self._api.error_from("GET", path, status, raw)
        return raw.decode("utf-8", errors="replace")

    async def apply_created(
        self,
        obj: Obj,
        field_manager: str = "choreoctl",
        force: bool = False,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """:meth:`apply`, also saying whether this apply created the object (HTTP 201).

        The install record needs it: only what choreoctl created may be uninstalled.
        """
        meta = obj.get("metadata", {})
        path = await self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        params: dict[str, Any] = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        headers = {"Accept": "application/json", "Content-Type": "application/apply-patch+yaml"}
        status, raw = await self._api.send("PATCH", path, params, headers, json.dumps(obj).encode())
        if status >= 400:
            raise self._api.error_from("PATCH", path, status, raw)
        data: Obj = json.loads(raw) if raw else {}
        return data, status == 201
