"""An async Kubernetes API client: the one way choreoctl talks to a cluster.

Why not the ``kubernetes`` package's client: it is synchronous, generated per kind and
slow to import; choreoctl needs a few generic verbs (get, list, watch, server-side
apply, delete, raw requests) for any kind, including CRDs, from asyncio code that runs
many clusters at once. Kinds are resolved to URL paths through API discovery, cached
per client. Every failure becomes a :class:`~choreoctl.errors.ClusterError`.

:class:`KubeClient` extends :class:`~choreoctl.kube.transport.ApiTransport` (the token,
TLS and the three transports: a small HTTP/1.1 client for the verbs here, aiohttp for
the agent's relay, httpx for watches).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from typing import Any

from choreoctl.errors import ApiError
from choreoctl.kube.config import Endpoint, endpoint_from_kubeconfig, endpoint_in_cluster
from choreoctl.kube.kinds import BUILTIN
from choreoctl.kube.kinds import ResourceInfo as ResourceInfo  # re-exported: its old home
from choreoctl.kube.transport import ApiTransport, Obj

__all__ = ["KubeClient", "Obj", "ResourceInfo"]


def _group_path(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


class KubeClient(ApiTransport):
    """Generic async verbs against one API server, on top of its transport.

    Use ``async with KubeClient.from_kubeconfig(...) as kc:`` or call :meth:`aclose`.
    The constructor and the raw requests (:meth:`request`, :meth:`open_raw`) are
    :class:`~choreoctl.kube.transport.ApiTransport`'s.
    """

    @functools.cached_property
    def _resources(self) -> dict[tuple[str, str], ResourceInfo]:
        """Where each kind lives: built-in kinds from the table, the rest as discovered."""
        return dict(BUILTIN)

    @functools.cached_property
    def _discovering(self) -> dict[str, asyncio.Task[list[ResourceInfo]]]:
        """Discovery requests in flight, by group version (concurrent misses share one)."""
        return {}

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
        data = await self.call("GET", _group_path(api_version), ok_missing=True) or {}
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
        return await self.call("GET", path, ok_missing=True)

    async def version(self) -> Obj:
        """``/version`` of the API server (gitVersion, major, minor …)."""
        return await self.call("GET", "/version") or {}

    async def snapshot(self) -> str:
        """The cluster's current resourceVersion (from a one-item list read from etcd).

        Reads with ``not_older_than=`` that version see every write finished before this
        call, yet the API server answers them from its watch cache: no etcd read, about
        half its CPU. Point-in-time readers (preflight) take one snapshot per cluster.
        """
        data = await self.call("GET", "/api/v1/namespaces", params={"limit": 1}) or {}
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
        return await self.call("GET", path, params=params, ok_missing=True)

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
            data = await self.call("GET", path, params=params) or {}
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
                raise self.api_error("WATCH", path, resp)
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
        out = await self.call(
            "PATCH", path, params=params, body=obj, content_type="application/apply-patch+yaml"
        )
        return out or {}

    async def create(self, obj: Obj, dry_run: bool = False) -> Obj:
        """Create ``obj`` (409 AlreadyExists raises :class:`ApiError`)."""
        meta = obj.get("metadata", {})
        path = await self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        params = {"dryRun": "All"} if dry_run else None
        return await self.call("POST", path, params=params, body=obj) or {}

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
            await self.call("PATCH", path, body=patch, content_type="application/merge-patch+json")
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
        out = await self.call("DELETE", path, body=body, ok_missing=True)
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
        out = await self.call("POST", path, body=review) or {}
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
        out = await self.call("DELETE", path, body=body, ok_missing=True)
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
        status, raw = await self.send("GET", path, params, {"Accept": "*/*"}, None)
        if status >= 400:
            raise self.error_from("GET", path, status, raw)
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
        status, raw = await self.send("PATCH", path, params, headers, json.dumps(obj).encode())
        if status >= 400:
            raise self.error_from("PATCH", path, status, raw)
        data: Obj = json.loads(raw) if raw else {}
        return data, status == 201
