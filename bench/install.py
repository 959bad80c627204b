"""choreoctl install vs ``kubectl apply --server-side`` of the same rendered manifests,
and a no-op re-run vs the first install.

Two fresh test clusters (with cert-manager) are started; the single-cluster topology is
rendered once. Cluster A gets ``kubectl apply --server-side`` of the rendered objects (two
passes: Namespaces and CRDs, then everything else once the CRDs are Established; the
``kubectl wait`` between them is not counted). Cluster B gets ``choreoctl install`` (the
CLI, agents not waited for: no kubelet runs them here), then the same command again.

Figures (goals from the issue):
  install ÷ kubectl  — choreoctl's time with readiness waits and trust/registration
                       (which wait for cert-manager and agents) taken out, ÷ kubectl's
                       apply time (goal ≤ 1.2). Given for the engine alone (in-process
                       timer) and for the whole process (Python start-up and rendering in).
  re-run ÷ install   — wall time of the no-op re-run ÷ the first install (goal ≤ 0.3).

    .venv/bin/python bench/install.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from choreoctl.install.manifests import render_for_install  # noqa: E402
from choreoctl.topology.loader import load_topology  # noqa: E402
from tests.testenv import ClusterSpec, start_clusters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KUBECTL = str(ROOT / ".venv/bin/kubectl")
CHOREOCTL = str(ROOT / ".venv/bin/choreoctl")


def run(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:3])} … failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def kubectl_apply(kubeconfig: str, context: str, work: Path) -> float:
    """Seconds for kubectl to server-side apply the rendered objects (waits excluded)."""
    rendered = render_for_install(load_topology("single-cluster"))
    objs = [o for ps in rendered.planes for o in ps.objects]
    first = [o for o in objs if o["kind"] in ("Namespace", "CustomResourceDefinition")]
    rest = [o for o in objs if o["kind"] not in ("Namespace", "CustomResourceDefinition")]
    (work / "1.yaml").write_text(yaml.safe_dump_all(first))
    (work / "2.yaml").write_text(yaml.safe_dump_all(rest))
    base = [KUBECTL, f"--kubeconfig={kubeconfig}", f"--context={context}"]
    t1, _ = run([*base, "apply", "--server-side", "--field-manager=kubectl-bench",
                 "-f", str(work / "1.yaml")])  # fmt: skip
    run([*base, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"])
    t2, _ = run([*base, "apply", "--server-side", "--field-manager=kubectl-bench",
                 "-f", str(work / "2.yaml")])  # fmt: skip
    return t1 + t2


def choreoctl_install(kubeconfig: str, context: str) -> tuple[float, dict[str, float]]:
    argv = [CHOREOCTL, "install", "-t", "single-cluster", "--kubeconfig", kubeconfig,
            "--context", context, "--skip-preflight", "--no-wait-agents", "-o", "json"]  # fmt: skip
    wall, out = run(argv)
    result = json.loads(out.splitlines()[-1])
    return wall, result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        work = Path(tmp)
        cs = start_clusters(
            [ClusterSpec("bench-kubectl", cert_manager=True),
             ClusterSpec("bench-choreoctl", cert_manager=True)],
            run_dir=work / "clusters",
        )  # fmt: skip
        try:
            kc = str(cs.kubeconfig)
            k = kubectl_apply(kc, "bench-kubectl", work)
            wall1, r1 = choreoctl_install(kc, "bench-choreoctl")
            wall2, r2 = choreoctl_install(kc, "bench-choreoctl")
        finally:
            cs.stop(remove=True)
    engine = r1["seconds"] - r1["waitSeconds"] - r1["hookSeconds"]
    process = wall1 - r1["waitSeconds"] - r1["hookSeconds"]
    print(f"objects: {r1['applied']} rendered objects, single-cluster topology, one cluster each")
    print(f"kubectl apply --server-side (2 passes):      {k:6.2f} s")
    print(
        f"choreoctl install, wall:                     {wall1:6.2f} s "
        f"(waits {r1['waitSeconds']:.2f} s, trust+registration {r1['hookSeconds']:.2f} s)"
    )
    print(
        f"choreoctl install without waits, engine:     {engine:6.2f} s "
        f"(apply {r1['applySeconds']:.2f} s)"
    )
    print(f"choreoctl install without waits, process:    {process:6.2f} s")
    print(
        f"choreoctl re-run (no-op), wall:              {wall2:6.2f} s "
        f"(engine {r2['seconds']:.2f} s)"
    )
    print(f"install ÷ kubectl, engine:   {engine / k:5.2f}   (goal ≤ 1.2)")
    print(f"install ÷ kubectl, process:  {process / k:5.2f}")
    print(f"re-run ÷ install, wall:      {wall2 / wall1:5.2f}   (goal ≤ 0.3)")
    print(f"re-run ÷ install, engine:    {r2['seconds'] / r1['seconds']:5.2f}")


if __name__ == "__main__":
    main()
