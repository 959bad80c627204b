"""``preflight --skip CHECK``: named checks are reported as skipped, not run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from choreoctl.checks.framework import Status
from choreoctl.checks.preflight import all_checks, run_preflight, skippable
from choreoctl.topology.loader import load_topology

CHOREOCTL = str(Path(sys.executable).parent / "choreoctl")


def unreachable_kubeconfig(tmp_path: Path) -> str:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "gone", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_every_check_but_the_api_gate_can_be_skipped() -> None:
    ids = [c.id for c in all_checks()]
    assert set(skippable()) == set(ids) - {"api-reachable"}


async def test_a_skipped_check_does_not_run_and_says_so(tmp_path: Path) -> None:
    topo = load_topology("single-cluster", sets=["spec.clusters[0].context=gone"])
    report = await run_preflight(
        topo, unreachable_kubeconfig(tmp_path), timeout=2.0, skip=("dns", "kubectl")
    )
    by_id = {r.check: r for r in report.results if r.cluster == ""}
    assert by_id["dns"].status is Status.skip and by_id["dns"].reason == "skipped with --skip"
    assert by_id["kubectl"].status is Status.skip
    assert by_id["domains"].status is Status.ok  # the others still run


def test_an_unknown_check_name_is_bad_input() -> None:
    done = subprocess.run(
        [CHOREOCTL, "preflight", "--skip", "dsn"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "no check named dsn" in done.stderr and "dns" in done.stderr
    assert "Traceback" not in done.stderr
