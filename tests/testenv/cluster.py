"""One test cluster: its processes, the objects it starts with, and helpers for tests.

A cluster is kube-apiserver (own port, token auth, RBAC) on a shared or own etcd, then
kube-controller-manager, kube-scheduler and kwok (fake nodes and pods, PV binding through its
volume Stages, the kubelet API for pod logs and exec on a loopback port: see podlogs.py), an
optional LoadBalancer allocator helper and an optional cert-manager controller.
``start_cluster`` runs in a worker thread per cluster, so N clusters start at once.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.testenv.binaries import CERT_MANAGER_VERSION, KWOK_CRDS, Binaries
from tests.testenv.errors import ClusterEnvError, ClusterStartFailed
from tests.testenv.etcd import Etcd
from tests.testenv.kubeapi import KubeApi, wait_for
from tests.testenv.kubeconfig import write_kubeconfig
from tests.testenv.processes import ManagedProcess, free_port, stop_all, tail
from tests.testenv.resources import cert_manager_deployment, limited_rbac, node, storage_class
from tests.testenv.spec import ClusterSpec

READY_TIMEOUT = 120.0
LIMITED_USER = "limited"


class KubectlFailed(subprocess.CalledProcessError):
    """A kubectl call exited non-zero; the message includes its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}\nstdout: {self.output}"


@dataclass
class TestCluster:
    """A running cluster as tests see it.

    ``context`` and ``limited_context`` name contexts in ``kubeconfig`` (the merged file of the
    whole ClusterSet); ``token`` is the admin (system:masters) bearer token; ``ca_file`` is the
    API server's serving cert bundle, usable as CA.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    spec: ClusterSpec
    dir: Path
    kubeconfig: Path
    server: str
    token: str
    limited_token: str
    ca_file: Path | None
    kubectl_path: Path
    etcd_url: str
    etcd_prefix: str
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    own_etcd: Etcd | None = None
    lb_prefix: str = ""
    health_ports: dict[str, int] = field(default_factory=dict)
    kubelet_port: int = 0  # kwok's kubelet API, advertised by every Node (0: unknown)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def context(self) -> str:
        return self.spec.name

    @property
    def limited_context(self) -> str:
        return f"{self.spec.name}-limited"

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def admin_kubeconfig(self) -> Path:
        """A kubeconfig with only this cluster's admin context (what its components use)."""
        return self.dir / "admin.kubeconfig"

    def api(self) -> KubeApi:
        assert self.ca_file is not None
        return KubeApi(self.server, self.token, self.ca_file)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the venv's kubectl against this cluster's admin context."""
        argv = [
            str(self.kubectl_path),
            f"--kubeconfig={self.kubeconfig}",
            f"--context={self.context}",
            f"--cache-dir={self.dir / 'kubectl-cache'}",
            *args,
        ]
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise KubectlFailed(done.returncode, argv, done.stdout, done.stderr)
        return done

    def all_processes(self) -> list[ManagedProcess]:
        procs = list(self.processes.values())
        if self.own_etcd is not None:
            procs.insert(0, self.own_etcd.process)
        return procs

    def rss_kib(self) -> int:
        """Resident memory of this cluster's processes (own etcd included, shared one not)."""
        return sum(p.rss_kib() for p in self.all_processes())

    def dead_processes(self) -> list[ManagedProcess]:
        return [p for p in self.all_processes() if p.popen is not None and not p.alive()]

    def kill_apiserver(self) -> None:
        """SIGKILL the API server (for tests of the unreachable-cluster path)."""
        self._process("kube-apiserver").kill()

    def start_apiserver(self) -> None:
        """Bring back an API server stopped by :meth:`kill_apiserver` (a cluster that went
        away and returns): the same command line, so the same port, etcd prefix, serving
        certificates and tokens. Controller-manager, scheduler, kwok, cert-manager and the
        LoadBalancer allocator reconnect by themselves if it was gone less than ~30 s."""
        old = self._process("kube-apiserver")
        if old.alive():
            raise ClusterEnvError(f"the API server of cluster {self.name} is still running")
        self._spawn("kube-apiserver", old.argv)
        wait_for(f"{self.server}/readyz", self._apiserver_ready, READY_TIMEOUT, self._check_alive)

    def _apiserver_ready(self) -> bool:
        if self.ca_file is None or not self.ca_file.exists():
            return False
        with self.api() as api:
            return api.request("GET", "/readyz").status_code == 200

    def kill_etcd(self) -> None:
        """SIGKILL this cluster's own etcd (only with ``ClusterSpec(own_etcd=True)``)."""
        if self.own_etcd is None:
            raise ClusterEnvError(f"cluster {self.name} shares etcd; use own_etcd=True")
        self.own_etcd.process.kill()

    def stop(self) -> None:
        """Stop every process of this cluster (components first, then the API server)."""
        procs = self.all_processes()
        order = [p for p in procs if p.name not in ("kube-apiserver", "etcd")]
        stop_all(order)
        stop_all([p for p in procs if p not in order])

    def _process(self, name: str) -> ManagedProcess:
        if name not in self.processes:
            raise ClusterEnvError(f"{name} of cluster {self.name} is not managed by this process")
        return self.processes[name]

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        proc = ManagedProcess(name, argv, self.log_dir / f"{name}.log")
        proc.start(env=env, cwd=self.dir)
        self.processes[name] = proc

    def _check_alive(self) -> None:
        for p in self.all_processes():
            p.check_running()


def start_cluster(
    spec: ClusterSpec,
    set_dir: Path,
    bins: Binaries,
    shared_etcd: Etcd | None,
    sa_key: Path,
    merged_kubeconfig: Path,
) -> TestCluster:
    """Start one cluster and wait until it is ready; raises ClusterStartFailed with log tails.

    A port picked free can be taken by someone else before our process binds it (the
    ephemeral range is shared with every outgoing connection); that case is retried.
    """
    for attempt in range(3):
        try:
            return _start_once(spec, set_dir, bins, shared_etcd, sa_key, merged_kubeconfig)
        except ClusterStartFailed as e:
            if "address already in use" not in str(e) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _start_once(
    spec: ClusterSpec,
    set_dir: Path,
    bins: Binaries,
    shared_etcd: Etcd | None,
    sa_key: Path,
    merged_kubeconfig: Path,
) -> TestCluster:
    cdir = set_dir / spec.name
    (cdir / "logs").mkdir(parents=True, exist_ok=True)
    etcd = shared_etcd
    own: Etcd | None = None
    if spec.own_etcd or shared_etcd is None:
        own = Etcd.start(bins.etcd, cdir / "etcd", cdir / "logs" / "etcd.log")
        etcd = own
    assert etcd is not None
    port = free_port()
    cluster = TestCluster(
        spec=spec,
        dir=cdir,
        kubeconfig=merged_kubeconfig,
        server=f"https://127.0.0.1:{port}",
        token=secrets.token_hex(16),
        limited_token=secrets.token_hex(16),
        ca_file=cdir / "pki" / "apiserver.crt",
        kubectl_path=bins.kubectl,
        etcd_url=etcd.url,
        etcd_prefix=f"/registry-{spec.name}-{secrets.token_hex(3)}/",
        own_etcd=own,
        # A /24 of loopback per cluster, derived from its unique API server port.
        lb_prefix=f"127.{port >> 8}.{port & 255}",
    )
    try:
        if own is not None:
            own.wait_ready()
        _start_apiserver(cluster, bins, sa_key, port)
        _start_components(cluster, bins, sa_key)
        _create_objects(cluster, bins)
        _wait_ready(cluster)
    except BaseException as e:
        cluster.stop()
        if isinstance(e, ClusterStartFailed):
            logs = "\n".join(
                f"--- {p.log_path} (last lines)\n{tail(p.log_path, 8)}"
                for p in cluster.all_processes()
            )
            raise ClusterStartFailed(f"cluster {spec.name}: {e}\n{logs}") from e
        raise
    return cluster


def _start_apiserver(c: TestCluster, bins: Binaries, sa_key: Path, port: int) -> None:
    tokens = c.dir / "tokens.csv"
    tokens.write_text(
        f'{c.token},admin,admin-uid,"system:masters"\n{c.limited_token},{LIMITED_USER},limited-uid\n'
    )
    c._spawn(
        "kube-apiserver",
        [
            str(bins.kube_apiserver),
            f"--etcd-servers={c.etcd_url}",
            f"--etcd-prefix={c.etcd_prefix}",
            # Compaction is global to an etcd; N API servers must not all compact it.
            "--etcd-compaction-interval=0",
            "--bind-address=127.0.0.1",
            # Without a default route the API server cannot pick an address by itself.
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={c.dir / 'pki'}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            # Nodes advertise InternalIP 127.0.0.1 (kwok --node-ip) and kwok's port; their
            # Hostname address (the node name) resolves nowhere. No kubelet CA: the API
            # server then accepts kwok's self-signed serving certificate.
            "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false",
        ],
    )
    wait_for(f"{c.server}/readyz", c._apiserver_ready, READY_TIMEOUT, c._check_alive)
    write_kubeconfig(c.admin_kubeconfig, [c], limited=False)


def _start_components(c: TestCluster, bins: Binaries, sa_key: Path) -> None:
    kc = str(c.admin_kubeconfig)
    kcm_port, sched_port = free_port(), free_port()
    c._spawn(
        "kube-controller-manager",
        [
            str(bins.kube_controller_manager),
            f"--kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={kcm_port}",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={c.ca_file}",
            "--profiling=false",
        ],
    )
    c._spawn(
        "kube-scheduler",
        [
            str(bins.kube_scheduler),
            f"--kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={sched_port}",
            "--profiling=false",
        ],
    )
    # kwok's server loads Logs/Exec objects from these CRDs (watched), so they come first.
    with c.api() as api:
        for path in bins.kwok_crds:
            api.apply(yaml.safe_load(path.read_text()))
    c.kubelet_port = free_port()
    # kwok reads ~/.kwok/kwok.yaml and KWOK_* variables too; keep both out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KWOK_")}
    env["HOME"] = str(c.dir)
    c._spawn(
        "kwok",
        [
            str(bins.kwok),
            f"--kubeconfig={kc}",
            *[f"--config={s}" for s in bins.stages],
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40",
            "--cidr=10.244.0.0/16",
            # The kubelet API (logs, exec) for every fake Node, where the API server reaches it.
            "--node-ip=127.0.0.1",
            f"--node-port={c.kubelet_port}",
            f"--server-address=127.0.0.1:{c.kubelet_port}",
            "--enable-crds=Logs,ClusterLogs,Exec,ClusterExec",
        ],
        env=env,
    )
    if c.spec.load_balancer:
        token_file = c.dir / "admin.token"
        token_file.write_text(c.token)
        c._spawn(
            "lb-allocator",
            [
                sys.executable,
                "-m",
                "tests.testenv.lb_allocator",
                f"--server={c.server}",
                f"--token-file={token_file}",
                f"--ca-file={c.ca_file}",
                f"--prefix={c.lb_prefix}",
            ],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
    c.health_ports = {
        "kube-controller-manager": kcm_port,
        "kube-scheduler": sched_port,
        "kwok": c.kubelet_port,
    }


def _create_objects(c: TestCluster, bins: Binaries) -> None:
    with c.api() as api:
        for obj in limited_rbac(LIMITED_USER):
            api.apply(obj)
        if c.spec.storage_class:
            api.apply(storage_class())
        for i in range(c.spec.nodes):
            api.create(node(c.spec, i))
        if c.spec.cert_manager:
            cm_bin, crds = bins.require_cert_manager()
            api.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cert-manager"}}
            )
            names = []
            for path in crds:
                crd: dict[str, Any] = yaml.safe_load(path.read_text())
                api.apply(crd)
                names.append(crd["metadata"]["name"])
            for name in names:
                wait_for(
                    f"CRD {name} Established",
                    lambda n=name: _condition(  # type: ignore[misc]
                        api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}"),
                        "Established",
                    ),
                    READY_TIMEOUT,
                    c._check_alive,
                )
            c._spawn("cert-manager", [str(cm_bin), f"--kubeconfig={c.admin_kubeconfig}"])
            version = CERT_MANAGER_VERSION.rsplit(" ", 1)[-1]
            api.apply(cert_manager_deployment(version))


def _condition(obj: dict[str, Any] | None, kind: str) -> bool:
    if obj is None:
        return False
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(x.get("type") == kind and x.get("status") == "True" for x in conditions)


def _wait_ready(c: TestCluster) -> None:
    with c.api() as api:
        for name, port in c.health_ports.items():
            url = f"https://127.0.0.1:{port}/healthz"
            wait_for(
                f"{name} {url}",
                # The components serve self-signed certs of their own: only liveness matters.
                lambda u=url: httpx.get(u, verify=False, timeout=2).status_code == 200,  # type: ignore[misc]
                READY_TIMEOUT,
                c._check_alive,
            )

        def nodes_ready() -> bool:
            listed = api.get("/api/v1/nodes?labelSelector=choreoctl.dev/testenv%3Dtrue")
            items = [] if listed is None else listed["items"]
            return len(items) == c.spec.nodes and all(_condition(n, "Ready") for n in items)

        wait_for(f"{c.spec.nodes} Ready nodes", nodes_ready, READY_TIMEOUT, c._check_alive)
        for name in KWOK_CRDS:
            crd = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}.kwok.x-k8s.io"
            wait_for(
                f"CRD {name}.kwok.x-k8s.io Established",
                lambda p=crd: _condition(api.get(p), "Established"),  # type: ignore[misc]
                READY_TIMEOUT,
                c._check_alive,
            )
        # KCM creates the default ServiceAccount; pods in "default" are refused until then.
        wait_for(
            "ServiceAccount default/default",
            lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
            READY_TIMEOUT,
            c._check_alive,
        )
