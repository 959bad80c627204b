"""An async Kubernetes API client on httpx: the one way choreoctl talks to a cluster.

Why not the ``kubernetes`` package's client: it is synchronous, generated per kind and
slow to import; choreoctl needs a few generic verbs (get, list, watch, server-side
apply, delete, raw requests) for any kind, including CRDs, from asyncio code that runs
many clusters at once. Kinds are resolved to URL paths through API discovery, cached
per client. Every failure becomes a :class:`~choreoctl.errors.ClusterError`.
Relaying a request byte for byte (the cluster agent) goes through :meth:`KubeClient.open_raw`
on a leaner aiohttp transport (:mod:`choreoctl.kube.raw`) with the same credentials.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from choreoctl.errors import ApiError, ApplyConflict, ClusterUnreachable, Problem
from choreoctl.kube.config import Endpoint, endpoint_from_kubeconfig, endpoint_in_cluster
from choreoctl.kube.raw import RawResponse, RawTransport

if TYPE_CHECKING:
    import httpx

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceInfo:
    """Where a kind lives in the API: its plural name and whether it is namespaced."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool


def _group_path(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


class KubeClient:
    """Generic async verbs against one API server.

    Use ``async with KubeClient.from_kubeconfig(...) as kc:`` or call :meth:`aclose`.
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
    ) -> None:
        import httpx

        self.server = server.rstrip("/")
        self.name = name or self.server
        self._token = token
        self._token_file = token_file
        self._token_read = time.monotonic()
        verify_arg: ssl.SSLContext | bool = False
        if verify:
            ctx = ssl.create_default_context(cafile=ca_file)
            verify_arg = ctx
        if client_cert is not None:
            if not isinstance(verify_arg, ssl.SSLContext):
                verify_arg = ssl.create_default_context()
                verify_arg.check_hostname = False
                verify_arg.verify_mode = ssl.CERT_NONE
            verify_arg.load_cert_chain(*client_cert)
        self._http = httpx.AsyncClient(
            base_url=self.server, verify=verify_arg, timeout=timeout, trust_env=False
        )
        self._raw = RawTransport(self.server, verify_arg, timeout, self.name)
        self._resources: dict[tuple[str, str], ResourceInfo] = {}

    @classmethod
    def from_endpoint(cls, ep: Endpoint, timeout: float = 30.0) -> KubeClient:
        """A client for a resolved :class:`Endpoint`."""
        return cls(
            ep.server,
            ep.token,
            ep.ca_file,
            ep.client_cert,
            ep.verify,
            name=ep.name,
            token_file=ep.token_file,
            timeout=timeout,
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
        await self._http.aclose()
        await self._raw.aclose()

    # -- raw requests -------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        if self._token_file and time.monotonic() - self._token_read > 60:
            try:
                self._token = Path(self._token_file).read_text().strip()
                self._token_read = time.monotonic()
            except OSError:
                pass  # keep the last token; the server will say if it expired
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

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
        """Send one request as-is and return the response, whatever its status.

        With ``stream=True`` the body is not read; the caller must ``aclose()`` it.
        Only transport failures raise (:class:`ClusterUnreachable`).
        """
        import httpx

        hdrs = self._auth_headers()
        hdrs.update(headers or {})
        req = self._http.build_request(
            method,
            path,
            params=params,
            headers=hdrs,
            content=content,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        try:
            return await self._http.send(req, stream=stream)
        except httpx.TimeoutException as e:
            raise ClusterUnreachable(
                f"{self.name}: no answer from {self.server} ({type(e).__name__})",
                hint="check that the API server is up and reachable from here",
            ) from e
        except httpx.TransportError as e:
            raise ClusterUnreachable(
                f"{self.name}: cannot reach {self.server}: {str(e) or type(e).__name__}",
                hint="check the kubeconfig server address, the network and the cluster",
            ) from e

    async def open_raw(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """Relay one request byte for byte (``url``: path and query, already encoded).

        The cheap path for forwarding (the cluster agent): the body is neither decoded
        nor buffered; read it with :meth:`RawResponse.iter_raw` and always close it.
        ``timeout`` bounds connecting and each read; ``None`` lets a watch stay quiet.
        Only transport failures raise (:class:`ClusterUnreachable`).
        """
        hdrs = self._auth_headers()
        hdrs.update(headers or {})
        return await self._raw.open(method, url, hdrs, content, timeout)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
    ) -> Obj | None:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = content_type
        resp = await self.request(method, path, params=params, headers=headers, content=content)
        if resp.status_code == 404 and ok_missing:
            return None
        if resp.status_code >= 400:
            raise self._api_error(method, path, resp)
        if not resp.content:
            return {}
        data: Obj = resp.json()
        return data

    def _api_error(self, method: str, path: str, resp: httpx.Response) -> ApiError:
        try:
            status: Obj = resp.json()
        except ValueError:
            status = {"message": resp.text[:300]}
        message = str(status.get("message") or resp.reason_phrase)
        reason = str(status.get("reason") or "")
        hint = {
            401: "the credentials were refused: refresh the kubeconfig token or certificate",
            403: "the identity lacks RBAC permission for this; see `choreoctl preflight`",
            404: "the object or its kind does not exist in this cluster",
            409: "another writer changed or owns this object; retry, or use --force-conflicts",
            422: "the object was rejected by the schema or a validation rule",
        }.get(resp.status_code, "")
        if resp.status_code == 409 and reason == "Conflict" and "conflict" in message.lower():
            causes = status.get("details", {}).get("causes", []) or []
            lines = [f"{c.get('field', '?')}: {c.get('message', '')}" for c in causes]
            return ApplyConflict(
                f"{self.name}: {method} {path}: {message}",
                hint="another field manager owns these fields; re-run with "
                "--force-conflicts to take them over",
                status=409,
                reason=reason,
                problems=tuple(Problem(line) for line in lines),
            )
        return ApiError(
            f"{self.name}: {method} {path}: {resp.status_code} {message}",
            hint=hint,
            status=resp.status_code,
            reason=reason,
        )

    # -- discovery ----------------------------------------------------------------------

    async def resource(self, api_version: str, kind: str) -> ResourceInfo:
        """Resolve a kind to its URL path through discovery (cached; refreshed on a miss)."""
        key = (api_version, kind)
        if key not in self._resources:
            data = await self._call("GET", _group_path(api_version), ok_missing=True) or {}
            for r in data.get("resources", []):
                if "/" in r["name"]:
                    continue  # subresources
                info = ResourceInfo(api_version, r["kind"], r["name"], bool(r["namespaced"]))
                self._resources[(api_version, r["kind"])] = info
        if key not in self._resources:
            raise ApiError(
                f"{self.name}: the API server does not serve kind {kind} in {api_version}",
                hint="install its CRD first (or check the apiVersion)",
                status=404,
                reason="NotFound",
            )
        return self._resources[key]

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

    async def version(self) -> Obj:
        """``/version`` of the API server (gitVersion, major, minor …)."""
        return await self._call("GET", "/version") or {}

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        """One object, or None when it does not exist."""
        path = await self.path(api_version, kind, namespace, name)
        return await self._call("GET", path, ok_missing=True)

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        """Every object of ``kind`` (in ``namespace``, or all), following pagination."""
        path = await self.path(api_version, kind, namespace)
        params: dict[str, Any] = {"limit": 500}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        items: list[Obj] = []
        while True:
            data = await self._call("GET", path, params=params) or {}
            items.extend(data.get("items", []))
            cont = data.get("metadata", {}).get("continue")
            if not cont:
                return items
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
                raise self._api_error("WATCH", path, resp)
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
        out = await self._call(
            "PATCH", path, params=params, body=obj, content_type="application/apply-patch+yaml"
        )
        return out or {}

    async def create(self, obj: Obj, dry_run: bool = False) -> Obj:
        """Create ``obj`` (409 AlreadyExists raises :class:`ApiError`)."""
        meta = obj.get("metadata", {})
        path = await self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        params = {"dryRun": "All"} if dry_run else None
        return await self._call("POST", path, params=params, body=obj) or {}

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
            await self._call("PATCH", path, body=patch, content_type="application/merge-patch+json")
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
        out = await self._call("DELETE", path, body=body, ok_missing=True)
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
        out = await self._call("POST", path, body=review) or {}
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
        out = await self._call("DELETE", path, body=body, ok_missing=True)
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
        resp = await self.request("GET", path, params=params)
        if resp.status_code >= 400:
            raise self._api_error("GET", path, resp)
        return resp.text

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
        resp = await self.request(
            "PATCH", path, params=params, headers=headers, content=json.dumps(obj).encode()
        )
        if resp.status_code >= 400:
            raise self._api_error("PATCH", path, resp)
        data: Obj = resp.json() if resp.content else {}
        return data, resp.status_code == 201
