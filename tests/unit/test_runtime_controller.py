"""The status controller's pure parts: plane status, Environment readiness, write decisions."""

from __future__ import annotations

import datetime as dt

from choreoctl.runtime.controller import environment_status, needs_write, plane_status

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def _plane(status: dict | None = None) -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": "dp", "namespace": "org", "generation": 3}, "status": status or {}}


def _seen(agents: int, not_after: str | None = "2027-01-01T00:00:00Z", problem: str = "") -> dict:  # type: ignore[type-arg]
    return {
        "connectedAgents": agents,
        "lastConnectedTime": "2026-11-25T11:00:00Z",
        "lastDisconnectedTime": None,
        "lastHeartbeatTime": "2026-11-25T11:59:50Z",
        "certificateNotAfter": not_after if agents else None,
        "problem": problem,
    }


def _cond(status: dict, ctype: str) -> dict:  # type: ignore[type-arg]
    return next(c for c in status["conditions"] if c["type"] == ctype)


def test_connected_plane_is_ready_and_keeps_transition_time() -> None:
    st = plane_status(_plane(), _seen(2), now=NOW)
    assert (
        st["agentConnection"]["connected"] is True and st["agentConnection"]["connectedAgents"] == 2
    )
    assert _cond(st, "Ready")["status"] == "True" and _cond(st, "Ready")["observedGeneration"] == 3
    assert _cond(st, "AgentCertificateValid")["reason"] == "Valid"
    again = plane_status(_plane(st), _seen(2), now=NOW)
    assert _cond(again, "Ready")["lastTransitionTime"] == _cond(st, "Ready")["lastTransitionTime"]
    assert not needs_write(st, again)


def test_disconnect_keeps_last_connected_time_and_flips_ready() -> None:
    st = plane_status(_plane(), _seen(1), now=NOW)
    down = plane_status(_plane(st), {**_seen(0), "lastConnectedTime": None}, now=NOW)
    assert down["agentConnection"]["connected"] is False
    assert down["agentConnection"]["lastConnectedTime"] == "2026-11-25T11:00:00Z"
    assert _cond(down, "Ready")["reason"] == "AgentDisconnected"
    assert needs_write(st, down)


def test_expiring_agent_certificate_is_surfaced() -> None:
    st = plane_status(_plane(), _seen(1, not_after="2026-12-01T00:00:00Z"), now=NOW)
    cert = _cond(st, "AgentCertificateValid")
    assert (
        cert["status"] == "False"
        and cert["reason"] == "ExpiringSoon"
        and "2026-12-01" in cert["message"]
    )


def test_bad_client_ca_and_unknown_plane() -> None:
    st = plane_status(_plane(), _seen(0, problem="no PEM certificate found"), now=NOW)
    assert _cond(st, "Ready")["reason"] == "InvalidClientCA"
    assert _cond(plane_status(_plane(), None), "Ready")["reason"] == "GatewayUnaware"


def test_environment_ready_only_with_a_connected_dataplane() -> None:
    env = {
        "metadata": {"name": "dev", "namespace": "org", "generation": 1},
        "spec": {"dataPlaneRef": "dp"},
    }
    assert _cond(environment_status(env, set(), set()), "Ready")["reason"] == "DataPlaneNotFound"
    assert (
        _cond(environment_status(env, {("org", "dp")}, set()), "Ready")["reason"]
        == "DataPlaneNotConnected"
    )
    ok = environment_status(env, {("org", "dp")}, {("org", "dp")})
    assert _cond(ok, "Ready")["status"] == "True"
    other_ns = {("elsewhere", "dp")}
    assert _cond(environment_status(env, other_ns, other_ns), "Ready")["status"] == "False"


def test_heartbeat_alone_is_written_at_most_once_a_minute() -> None:
    now = dt.datetime.now(dt.UTC)
    fresh = (now - dt.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stale = (now - dt.timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    newer = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    base = {"agentConnection": {"connected": True, "lastHeartbeatTime": fresh}, "conditions": []}
    assert not needs_write(
        base, {**base, "agentConnection": {"connected": True, "lastHeartbeatTime": newer}}
    )
    old = {**base, "agentConnection": {"connected": True, "lastHeartbeatTime": stale}}
    assert needs_write(
        old, {**base, "agentConnection": {"connected": True, "lastHeartbeatTime": newer}}
    )
