"""`choreoctl status` against real clusters: planes registered, agents not running."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from choreoctl.planes.environments import ensure_environments
from choreoctl.planes.register import register_plane
from choreoctl.topology.model import PlaneKind
from choreoctl.trust.gateway_ca import ensure_trust
from tests.integration.test_trust_issuer import CHOREOCTL, lab, topology_file  # noqa: F401

pytestmark = pytest.mark.cluster


async def test_status_shows_clusters_planes_trust_environments(
    lab,  # noqa: F811
    clusters: Any,
    tmp_path: Path,
) -> None:
    topo, clients = lab
    await ensure_trust(topo, clients, timeout=30)
    for kind in (PlaneKind.observability, PlaneKind.data):
        await register_plane(topo, topo.planes_of(kind)[0], clients, wait_connected=False)
    await ensure_environments(topo, clients["alpha"])
    path = topology_file(topo, tmp_path / "lab.yaml")
    argv = [CHOREOCTL, "status", "-t", str(path), "--kubeconfig", str(clusters["alpha"].kubeconfig)]
    out = subprocess.run(
        [*argv, "-o", "json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 1, out.stderr  # agents are not running: unhealthy
    report = json.loads(out.stdout)
    assert [c["name"] for c in report["clusters"]] == ["alpha", "beta"]
    assert all(c["reachable"] for c in report["clusters"])
    planes = {(p["kind"], p["name"]): p for p in report["planes"]}
    assert planes[("data-plane", "us")]["registered"] is True
    assert planes[("data-plane", "us")]["connected"] is False
    assert "connected" not in planes[("control-plane", "control-plane")]
    assert report["environments"][0]["name"] == "dev"
    assert report["environments"][0]["dataPlane"] == "us"
    assert report["trust"]["gateway"]["ca"][0]["fingerprint"]
    assert "us (data-plane): agent not connected" in report["problems"]
    assert not any("trust" in p for p in report["problems"])
    table = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert table.returncode == 1
    for text in ("topology", "alpha", "beta", "gateway CA", "dev", "agent not connected"):
        assert text in table.stdout, text


async def test_status_watch_json_streams_one_document_per_refresh(
    lab,  # noqa: F811
    clusters: Any,
    tmp_path: Path,
) -> None:
    topo, clients = lab
    await ensure_trust(topo, clients, timeout=30)
    path = topology_file(topo, tmp_path / "lab.yaml")
    argv = [CHOREOCTL, "status", "-t", str(path), "--kubeconfig", str(clusters["alpha"].kubeconfig)]
    proc = subprocess.Popen(
        [*argv, "--watch", "--interval", "0.2", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        docs = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert [d["topology"] for d in docs] == [topo.name, topo.name]
    assert all(not d["healthy"] for d in docs)  # nothing registered yet
