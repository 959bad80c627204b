"""The async API client against a real API server: verbs, apply conflicts, watch, RBAC."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import uuid
from collections.abc import AsyncIterator

import pytest

from choreoctl.errors import ApiError, ApplyConflict, ClusterUnreachable, InputError
from choreoctl.kube import KubeClient

pytestmark = pytest.mark.cluster


@pytest.fixture
async def kc(cluster) -> AsyncIterator[KubeClient]:
    client = KubeClient.from_kubeconfig(cluster.kubeconfig, cluster.context)
    yield client
    await client.aclose()


@pytest.fixture
async def ns(kc: KubeClient) -> AsyncIterator[str]:
    name = f"kc-{uuid.uuid4().hex[:8]}"
    await kc.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    await kc.delete("v1", "Namespace", name)


def _cm(ns: str, data: dict[str, str], name: str = "cfg") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "kc-test"}},
        "data": data,
    }


async def test_version_reports_the_built_release(kc: KubeClient) -> None:
    version = await kc.version()
    assert version["gitVersion"].startswith("v1.")
    assert int(version["minor"].rstrip("+")) >= 32


async def test_apply_is_idempotent_and_get_list_delete(kc: KubeClient, ns: str) -> None:
    first = await kc.apply(_cm(ns, {"a": "1"}))
    again = await kc.apply(_cm(ns, {"a": "1"}))
    assert first["metadata"]["resourceVersion"] == again["metadata"]["resourceVersion"]
    got = await kc.get("v1", "ConfigMap", "cfg", ns)
    assert got is not None and got["data"] == {"a": "1"}
    listed = await kc.list("v1", "ConfigMap", ns, label_selector="app=kc-test")
    assert [o["metadata"]["name"] for o in listed] == ["cfg"]
    assert await kc.delete("v1", "ConfigMap", "cfg", ns) is True
    assert await kc.delete("v1", "ConfigMap", "cfg", ns) is False
    assert await kc.get("v1", "ConfigMap", "cfg", ns) is None


async def test_apply_conflict_names_manager_and_field(kc: KubeClient, ns: str) -> None:
    await kc.apply(_cm(ns, {"a": "1"}), field_manager="someone-else")
    with pytest.raises(ApplyConflict) as err:
        await kc.apply(_cm(ns, {"a": "2"}))
    text = " ".join(p.line() for p in err.value.problems) + err.value.message
    assert "someone-else" in text
    assert ".data.a" in text
    taken = await kc.apply(_cm(ns, {"a": "2"}), force=True)
    assert taken["data"]["a"] == "2"


async def test_dry_run_persists_nothing(kc: KubeClient, ns: str) -> None:
    out = await kc.apply(_cm(ns, {"x": "y"}, name="dry"), dry_run=True)
    assert out["data"] == {"x": "y"}
    assert await kc.get("v1", "ConfigMap", "dry", ns) is None


async def test_watch_sees_a_new_object(kc: KubeClient, ns: str) -> None:
    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        async for event, obj in kc.watch("v1", "ConfigMap", ns, timeout_seconds=20):
            seen.append((event, obj["metadata"]["name"]))
            if obj["metadata"]["name"] == "watched":
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    await kc.apply(_cm(ns, {"k": "v"}, name="watched"))
    await asyncio.wait_for(task, 20)
    assert ("ADDED", "watched") in seen


async def test_unknown_kind_is_a_clear_error(kc: KubeClient) -> None:
    with pytest.raises(ApiError) as err:
        await kc.get("example.com/v1", "Nothing", "x")
    assert "does not serve kind Nothing" in err.value.message
    assert err.value.status == 404


async def test_rbac_answers_for_admin_and_limited_user(cluster) -> None:
    async with KubeClient.from_kubeconfig(cluster.kubeconfig, cluster.context) as admin:
        assert await admin.can_i("create", "customresourcedefinitions", "apiextensions.k8s.io")
    async with KubeClient.from_kubeconfig(cluster.kubeconfig, cluster.limited_context) as lim:
        assert not await lim.can_i("create", "customresourcedefinitions", "apiextensions.k8s.io")
        with pytest.raises(ApiError) as err:
            await lim.apply(_cm("default", {"a": "b"}, name="denied"))
        assert err.value.status == 403


async def test_unreachable_server_is_cluster_unreachable() -> None:
    async with KubeClient("https://127.0.0.1:1", verify=False, timeout=3) as kc:
        with pytest.raises(ClusterUnreachable) as err:
            await kc.version()
    assert "127.0.0.1:1" in err.value.message


def test_unknown_context_is_input_error(cluster) -> None:
    with pytest.raises(InputError) as err:
        KubeClient.from_kubeconfig(cluster.kubeconfig, "no-such-context")
    assert "no-such-context" in err.value.message


# -- the raw relay transport (the cluster agent's path) ---------------------------------------


async def test_open_raw_relays_the_same_bytes_as_request(kc: KubeClient, ns: str) -> None:
    await kc.apply(_cm(ns, {"k": "v" * 5000}, name="raw"))
    path = f"/api/v1/namespaces/{ns}/configmaps/raw"
    plain = await kc.request("GET", path, headers={"Accept": "application/json"})
    async with await kc.open_raw(
        "GET", path + "?pretty=false", headers={"Accept": "application/json"}, timeout=10
    ) as raw:
        body = b"".join([c async for c in raw.iter_raw()])
        headers = dict(raw.headers)
    assert raw.status_code == plain.status_code == 200
    assert body == plain.content and headers["Content-Type"] == "application/json"
    created = await kc.open_raw(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        headers={"Content-Type": "application/json"},
        content=b'{"metadata":{"name":"posted"},"data":{"a":"b"}}',
        timeout=10,
    )
    await created.close()
    assert created.status_code == 201
    assert (await kc.get("v1", "ConfigMap", "posted", ns) or {})["data"] == {"a": "b"}


async def test_open_raw_uses_the_clients_identity(cluster) -> None:
    async with KubeClient.from_kubeconfig(cluster.kubeconfig, cluster.limited_context) as lim:
        raw = await lim.open_raw(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            headers={"Content-Type": "application/json"},
            content=b"{}",
            timeout=10,
        )
        body = b"".join([c async for c in raw.iter_raw()])
        await raw.close()
    assert raw.status_code == 403 and b"forbidden" in body.lower()


async def test_open_raw_streams_a_watch(kc: KubeClient, ns: str) -> None:
    raw = await kc.open_raw(
        "GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=20", timeout=None
    )
    try:
        await kc.apply(_cm(ns, {"k": "v"}, name="streamed"))
        seen = b""
        async with asyncio.timeout(20):
            async for chunk in raw.iter_raw():
                seen += chunk
                if b'"streamed"' in seen:
                    break
        assert b'"ADDED"' in seen
    finally:
        await raw.close()


async def test_open_raw_verifies_the_server_certificate(cluster, tmp_path) -> None:
    from choreoctl import pki
    from choreoctl.kube.config import endpoint_from_kubeconfig

    ep = endpoint_from_kubeconfig(str(cluster.kubeconfig), cluster.context)
    other = tmp_path / "other-ca.crt"
    other.write_bytes(pki.make_ca("not-the-cluster-ca").cert_pem)
    async with KubeClient(ep.server, ep.token or "x", str(other), timeout=5) as wrong:
        with pytest.raises(ClusterUnreachable) as err:
            await wrong.open_raw("GET", "/version", timeout=5)
    assert "certificate" in err.value.message.lower()
    async with KubeClient("https://127.0.0.1:1", verify=False, timeout=3) as down:
        with pytest.raises(ClusterUnreachable):
            await down.open_raw("GET", "/version", timeout=3)


async def test_builtin_kinds_match_discovery(kc: KubeClient) -> None:
    """The built-in table (no discovery request) says what the server's discovery says."""
    from choreoctl.kube.kinds import BUILTIN

    for api_version in sorted({v for v, _ in BUILTIN}):
        served = {r.kind: r for r in await kc.discover(api_version)}
        for (version, kind), info in BUILTIN.items():
            if version == api_version:
                assert served.get(kind) == info, (api_version, kind)


async def test_concurrent_misses_share_one_discovery(kc: KubeClient) -> None:
    calls: list[str] = []
    send = kc.send

    async def counting(method, path, *args):  # type: ignore[no-untyped-def]
        calls.append(path)
        return await send(method, path, *args)

    kc.send = counting  # type: ignore[method-assign]
    await asyncio.gather(
        *(kc.resource("apiregistration.k8s.io/v1", "APIService") for _ in range(5))
    )
    assert calls == ["/apis/apiregistration.k8s.io/v1"]


async def test_gzip_bodies_are_decoded(kc: KubeClient, ns: str) -> None:
    """Large lists come back gzip-compressed when asked; the typed verbs decode them."""
    big = "x" * 200_000  # the API server compresses responses over 128 KiB
    for i in range(2):
        await kc.apply(_cm(ns, {"k": big}, name=f"big-{i}"))
    path = f"/api/v1/namespaces/{ns}/configmaps"
    raw = await kc.open_raw("GET", path, headers={"Accept-Encoding": "gzip"}, timeout=10)
    wire = b"".join([c async for c in raw.iter_raw()])
    await raw.close()
    assert dict(raw.headers).get("Content-Encoding") == "gzip" and len(wire) < 100_000
    listed = await kc.list("v1", "ConfigMap", ns, label_selector="app=kc-test")
    assert sorted(o["metadata"]["name"] for o in listed) == ["big-0", "big-1"]
    assert all(o["data"]["k"] == big for o in listed)


async def test_server_date_is_the_api_servers_clock(kc: KubeClient) -> None:
    """The install record's times come from here (the Date header of /version)."""
    date = email.utils.parsedate_to_datetime(await kc.server_date())
    assert abs((date - dt.datetime.now(dt.UTC)).total_seconds()) < 300
