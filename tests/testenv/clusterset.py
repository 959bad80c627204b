"""A set of test clusters started together, sharing one etcd and one merged kubeconfig.

``start_clusters`` starts every cluster in its own thread (they mostly wait on API servers,
so two cores are enough for several at once). A ClusterSet either owns its processes (stops
them in ``stop()``, at exit, or on SIGTERM) or was re-attached from a state file written by
``python -m tests.testenv up`` and then leaves them running.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.testenv.binaries import Binaries, find_kubectl, locate
from tests.testenv.cluster import TestCluster, start_cluster
from tests.testenv.errors import ClusterEnvError, ClusterStartFailed
from tests.testenv.etcd import Etcd
from tests.testenv.kubeconfig import write_kubeconfig
from tests.testenv.processes import (
    ManagedProcess,
    detach,
    install_cleanup_handlers,
    stop_all,
    stop_recorded,
)
from tests.testenv.spec import ClusterSpec

STATE_FILE = "state.json"
OWNER_FILE = "owner.pid"
TMP_PREFIX = "choreoctl-testenv-"
KEEP_SECONDS = 24 * 3600


class ClusterSet:
    """Clusters by name, their merged ``kubeconfig``, and the shared etcd."""

    def __init__(self, run_dir: Path, owned: bool = True) -> None:
        self.run_dir = run_dir
        self.kubeconfig = run_dir / "kubeconfig"
        self.clusters: dict[str, TestCluster] = {}
        self.etcd: Etcd | None = None
        self.owned = owned
        self._sa_key = run_dir / "sa.key"

    def __getitem__(self, name: str) -> TestCluster:
        try:
            return self.clusters[name]
        except KeyError:
            raise KeyError(f"no cluster {name!r}; this set has {sorted(self.clusters)}") from None

    def __iter__(self) -> Iterator[TestCluster]:
        return iter(self.clusters.values())

    def __len__(self) -> int:
        return len(self.clusters)

    def start_more(self, specs: Sequence[ClusterSpec], bins: Binaries | None = None) -> None:
        """Start more clusters in this set, concurrently; the kubeconfig file is rewritten."""
        if not self.owned:
            raise ClusterEnvError("cannot add clusters to a set re-attached from a state file")
        taken = [s.name for s in specs if s.name in self.clusters]
        if taken or len({s.name for s in specs}) != len(specs):
            raise ClusterEnvError(f"duplicate cluster names: {taken or [s.name for s in specs]}")
        bins = bins or locate()
        if any(s.cert_manager for s in specs):
            bins.require_cert_manager()
        if self.etcd is None and any(not s.own_etcd for s in specs):
            self.etcd = Etcd.start(bins.etcd, self.run_dir / "etcd", self.run_dir / "etcd.log")
            self.etcd.wait_ready()
        started: list[TestCluster] = []
        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
            futures = [
                pool.submit(
                    start_cluster, s, self.run_dir, bins, self.etcd, self._sa_key, self.kubeconfig
                )
                for s in specs
            ]
            for f in futures:
                try:
                    started.append(f.result())
                except ClusterEnvError as e:
                    errors.append(str(e))
                except Exception as e:  # a bug here must not leak the other clusters
                    errors.append(f"{type(e).__name__}: {e}")
        if errors:
            for c in started:
                c.stop()
            raise ClusterStartFailed("\n\n".join(errors) + f"\n(all logs under {self.run_dir})")
        for c in started:
            self.clusters[c.name] = c
        write_kubeconfig(self.kubeconfig, list(self.clusters.values()))
        self.save_state()

    def processes(self) -> list[ManagedProcess]:
        procs = [p for c in self for p in c.all_processes()]
        if self.etcd is not None:
            procs.append(self.etcd.process)
        return procs

    def stop(self, remove: bool = True) -> None:
        """Stop all processes (owned sets only) and delete the run directory.

        ``remove=False`` keeps the logs, kubeconfig and state for a post-mortem; the etcd data
        (~60 MiB each) goes anyway.
        """
        if not self.owned:
            return
        procs = self.processes()
        components = [p for p in procs if p.name not in ("kube-apiserver", "etcd")]
        stop_all(components)
        stop_all([p for p in procs if p.name == "kube-apiserver"])
        stop_all([p for p in procs if p.name == "etcd"])
        # Nothing left to sweep: a kept run directory must survive the next session.
        (self.run_dir / OWNER_FILE).unlink(missing_ok=True)
        if remove:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:
            for data in [self.run_dir / "etcd", *(c.dir / "etcd" for c in self)]:
                shutil.rmtree(data, ignore_errors=True)

    def rss_kib(self) -> dict[str, int]:
        """Resident memory per cluster; the shared etcd is reported as ``"etcd"``."""
        rss = {c.name: c.rss_kib() for c in self}
        if self.etcd is not None:
            rss["etcd"] = self.etcd.process.rss_kib()
        return rss

    def failure_report(self, lines: int = 25) -> str:
        """Where the logs are, and the log tail of every process that has died."""
        from tests.testenv.processes import tail

        out = [f"test cluster logs: {self.run_dir}/<cluster>/logs/"]
        for p in self.processes():
            if p.popen is not None and not p.alive():
                out.append(f"--- {p.name} exited with {p.exit_code()}: {p.log_path}")
                out.append(tail(p.log_path, lines))
        return "\n".join(out)

    # -- state file (for `python -m tests.testenv up/down/status` and re-use by pytest) --

    def save_state(self) -> None:
        state: dict[str, Any] = {
            "run_dir": str(self.run_dir),
            "kubeconfig": str(self.kubeconfig),
            "etcd": None if self.etcd is None else _proc_state(self.etcd.process),
            "etcd_url": None if self.etcd is None else self.etcd.url,
            "clusters": [
                {
                    "spec": asdict(c.spec),
                    "server": c.server,
                    "token": c.token,
                    "limited_token": c.limited_token,
                    "ca_file": str(c.ca_file) if c.ca_file else None,
                    "etcd_url": c.etcd_url,
                    "etcd_prefix": c.etcd_prefix,
                    "lb_prefix": c.lb_prefix,
                    "kubelet_port": c.kubelet_port,
                    "processes": [_proc_state(p) for p in c.all_processes()],
                }
                for c in self
            ],
        }
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def attach(cls, run_dir: Path) -> ClusterSet:
        """Re-attach to clusters left running by ``up``; ``stop()`` will not touch them."""
        path = run_dir / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ClusterEnvError(f"no usable test cluster state in {path}: {e}") from e
        cs = cls(Path(state["run_dir"]), owned=False)
        kubectl = find_kubectl()
        for entry in state["clusters"]:
            spec = ClusterSpec(**entry["spec"])
            cs.clusters[spec.name] = TestCluster(
                spec=spec,
                dir=cs.run_dir / spec.name,
                kubeconfig=cs.kubeconfig,
                server=entry["server"],
                token=entry["token"],
                limited_token=entry["limited_token"],
                ca_file=Path(entry["ca_file"]) if entry["ca_file"] else None,
                kubectl_path=kubectl,
                etcd_url=entry["etcd_url"],
                etcd_prefix=entry["etcd_prefix"],
                lb_prefix=entry["lb_prefix"],
                kubelet_port=int(entry.get("kubelet_port", 0)),
            )
        return cs


def _proc_state(p: ManagedProcess) -> dict[str, Any]:
    return {"name": p.name, "pid": p.pid, "exe": p.argv[0], "log": str(p.log_path)}


def stop_from_state(run_dir: Path) -> int:
    """Stop every process recorded in ``run_dir``'s state file; returns how many were running."""
    state = json.loads((run_dir / STATE_FILE).read_text())
    entries: list[dict[str, Any]] = []
    for c in state["clusters"]:
        entries += [p for p in c["processes"] if p["name"] != "kube-apiserver"]
    entries += [
        p for c in state["clusters"] for p in c["processes"] if p["name"] == "kube-apiserver"
    ]
    if state["etcd"]:
        entries.append(state["etcd"])
    return sum(stop_recorded(int(p["pid"]), p["exe"]) for p in entries)


def start_clusters(
    specs: Sequence[ClusterSpec], run_dir: Path | None = None, detached: bool = False
) -> ClusterSet:
    """Start ``specs`` concurrently and return the ready set.

    ``run_dir`` (default: a fresh temporary directory) holds data, logs, kubeconfig and
    state. ``detached`` hands the processes over to the state file instead of stopping them
    when this Python process exits (what ``up`` does).
    """
    bins = locate()
    if run_dir is None:
        sweep_orphans()
        run_dir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
    run_dir.mkdir(parents=True, exist_ok=True)
    install_cleanup_handlers()
    cs = ClusterSet(run_dir)
    (run_dir / OWNER_FILE).write_text(str(os.getpid()) if not detached else "")
    _write_sa_key(cs._sa_key)
    try:
        cs.start_more(specs, bins)
    except BaseException:
        cs.stop(remove=False)  # keep the logs the error message points to
        raise
    if detached:
        detach(cs.processes())
    return cs


def sweep_orphans() -> int:
    """Stop processes of earlier temporary sets whose owner died without cleaning up.

    A SIGKILLed pytest cannot run its atexit hook; its clusters would run on. Their run
    directories record the owner's PID and every child's PID and executable, so the next
    session stops exactly those (by PID, command line checked) and removes the directory.
    Run directories kept for a post-mortem are deleted after a day.
    """
    stopped = 0
    tmp = Path(tempfile.gettempdir())
    for run_dir in tmp.glob(f"{TMP_PREFIX}*"):
        try:  # other sessions create and remove these directories concurrently
            owner = run_dir / OWNER_FILE
            if not owner.exists():
                if time.time() - run_dir.stat().st_mtime > KEEP_SECONDS:
                    shutil.rmtree(run_dir, ignore_errors=True)
                continue
            text = owner.read_text().strip()
            if not text.isdigit() or Path(f"/proc/{text}").exists():
                continue
            if (run_dir / STATE_FILE).exists():
                stopped += stop_from_state(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
        except (OSError, ValueError, KeyError):
            continue
    return stopped


def _write_sa_key(path: Path) -> None:
    """The ServiceAccount token signing key, shared by the set's API servers and KCMs."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
