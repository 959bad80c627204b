"""The test kubelet's one-shot Pods: which it runs, how probe args map, the status written."""

from __future__ import annotations

from typing import Any

from tests.testenv.podrunner import rewrite_probe_args, runs_once, terminated_status


def bare_pod(**over: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {"name": "gateway-probe", "namespace": "ns", "uid": "u1"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "probe", "image": "i", "command": ["choreoctl"]}],
        },
        "status": {"phase": "Running"},
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        pod[section][field] = value
    return pod


def test_runs_only_bare_never_restarting_choreoctl_pods_once_kwok_made_them_running() -> None:
    assert runs_once(bare_pod())
    assert not runs_once(bare_pod(status__phase="Pending"))  # kwok's pod-ready still to come
    assert not runs_once(bare_pod(status__phase="Succeeded"))
    assert not runs_once(bare_pod(spec__restartPolicy="Always"))
    assert not runs_once(bare_pod(metadata__ownerReferences=[{"kind": "ReplicaSet"}]))
    assert not runs_once(bare_pod(metadata__deletionTimestamp="2026-01-01T00:00:00Z"))
    other = [{"name": "c", "command": ["nc", "-z"]}]
    assert not runs_once(bare_pod(spec__containers=other))


def test_probe_host_port_map_like_the_test_dns() -> None:
    table = {("gateway.example.com", 8443): 40001, ("127.0.0.1", 5000): 5000}
    args = ["agent", "probe", "gateway.example.com", "8443", "--timeout", "2"]
    resolve = lambda h, p: table.get((h, p))  # noqa: E731
    assert rewrite_probe_args(args, resolve) == [
        "agent", "probe", "127.0.0.1", "40001", "--timeout", "2"
    ]  # fmt: skip
    assert rewrite_probe_args(["agent", "probe", "127.0.0.1", "5000"], resolve)[3] == "5000"
    gone = ["agent", "probe", "gw.example.invalid", "8443"]
    assert rewrite_probe_args(gone, resolve) == gone  # stays unresolvable
    closed = rewrite_probe_args(["agent", "probe", "gw.other.test", "8443"], resolve)
    assert closed[2] == "127.0.0.1" and closed[3] not in ("8443", "40001")
    run = ["agent", "run", "--server-url", "wss://x:1/ws"]
    assert rewrite_probe_args(run, resolve) == run


def test_terminated_status_says_phase_and_exit_code() -> None:
    ok = terminated_status(bare_pod(), 0, "2026-11-25T21:00:00Z")["status"]
    assert ok["phase"] == "Succeeded"
    term = ok["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["startedAt"]) == (
        0,
        "Completed",
        "2026-11-25T21:00:00Z",
    )
    bad = terminated_status(bare_pod(), 1, "2026-11-25T21:00:00Z")["status"]
    assert bad["phase"] == "Failed"
    assert bad["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"
    ready = {c["type"]: c["status"] for c in bad["conditions"]}
    assert ready["Ready"] == "False"
