"""A test kubelet for choreoctl's own image: runs the gateway, agents and controller for real.

The test clusters fake their kubelets (kwok), so a pod that runs choreoctl's image never
runs. This helper plays kubelet for exactly those pods: for every Deployment whose
container command is ``["choreoctl"]`` it starts ``.venv/bin/choreoctl`` on loopback with
the container's args and env as the chart wrote them — Secrets and ConfigMaps it mounts
written to files (the mountPath prefix in args/env rewritten to that directory), env
``valueFrom`` resolved, container ports mapped to free loopback ports, Service URLs in
args/env rewritten to the process behind the Service, and the cluster's API address and
a real ServiceAccount token (TokenRequest) in ``CHOREOCTL_SERVICEACCOUNT_DIR``. So a
wrong flag, mount or RBAC rule in a chart fails the test that runs it.

Its processes' output is also the pods' logs: for every pod of a played Deployment it
creates kwok's ``Logs`` object naming a CRI-format copy of the process's log file (kept
current by :class:`~tests.testenv.podlogs.LogPump`), so ``kubectl logs`` and ``logs -f``
of that pod show the real output; and an ``Exec`` object, so ``kubectl exec`` runs a
command in the pod's directory with the process's environment (see podlogs.py).

Bare Pods (no owner, ``restartPolicy: Never``) whose command is ``["choreoctl"]`` — the
probe Pod of ``preflight --probe`` — run once, their exit becoming the Pod's terminal
status: see :mod:`tests.testenv.podrunner`.

Like a kubelet it restarts a process whose pod template changed, restarts one that
exited (capped backoff), refreshes mounted files when their Secret/ConfigMap changes
(without a restart), and stops a process whose Deployment went away. One process per
Deployment, whatever its replica count (ports would collide otherwise).

Outside-cluster names: an agent in another cluster dials the topology's
``gateway.externalHost``, which real DNS would point at the LoadBalancer. Here any host
that is not a Service name resolves to the one LoadBalancer Service (across all
clusters) that exposes the dialed port and is backed by a process of ours, or to an
explicit ``hosts`` entry.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest

from choreoctl.errors import ChoreoError
from choreoctl.kube.client import KubeClient
from tests.testenv.podlogs import LogPump, exec_object, logs_object
from tests.testenv.podrunner import PodRunner
from tests.testenv.processes import ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[2]
CHOREOCTL = str(REPO / ".venv" / "bin" / "choreoctl")
_URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://([A-Za-z0-9.\-]+)(?::(\d+))?")
_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


class ClusterLike(Protocol):
    """What the kubelet needs of a test cluster (TestCluster has it)."""

    @property
    def name(self) -> str: ...

    @property
    def server(self) -> str: ...

    @property
    def token(self) -> str: ...

    @property
    def ca_file(self) -> Path | None: ...


@dataclass
class Pod:
    """One Deployment played as a pod: its files, ports, process and state."""

    cluster: str
    namespace: str
    name: str
    dir: Path
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> loopback port
    template_hash: str = ""
    proc: ManagedProcess | None = None
    restarts: int = 0
    crashes: int = 0  # consecutive exits, for the backoff; reset after 30 s of health
    waiting: str = ""  # why it is not started (missing Secret, unresolved Service …)
    next_start: float = 0.0
    started_at: float = 0.0
    token_at: float = 0.0
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # the running process's environment

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.name}"

    @property
    def log(self) -> Path:
        return self.dir / "log"

    @property
    def cri_log(self) -> Path:
        """The CRI-format copy of :attr:`log` that kwok serves as the pod's logs."""
        return self.dir / "cri" / "container.log"

    def state(self) -> dict[str, Any]:
        alive = self.proc is not None and self.proc.alive()
        return {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "deployment": self.name,
            "running": alive,
            "pid": self.proc.pid if alive and self.proc else None,
            "ports": dict(self.ports),
            "restarts": self.restarts,
            "waiting": self.waiting,
            "log": str(self.log),
        }


def runs_choreoctl(deploy: Mapping[str, Any]) -> bool:
    """Whether the Deployment's first container is choreoctl's own image."""
    containers = deploy["spec"]["template"]["spec"].get("containers") or []
    return bool(containers) and (containers[0].get("command") or [])[:1] == ["choreoctl"]


def template_hash(deploy: Mapping[str, Any]) -> str:
    """A hash of the pod template: a change means "new pod", as a ReplicaSet would see it."""
    text = json.dumps(deploy["spec"]["template"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rewrite_ports(values: list[str], ports: Mapping[int, int]) -> list[str]:
    """Map container ports in ``--…port N`` / ``--…port=N`` flags to loopback ports."""
    out = list(values)
    for i, arg in enumerate(out):
        if arg.startswith("--") and "port" in arg and "=" in arg:
            flag, _, val = arg.partition("=")
            if val.isdigit() and int(val) in ports:
                out[i] = f"{flag}={ports[int(val)]}"
        elif i > 0 and out[i - 1].startswith("--") and "port" in out[i - 1] and arg.isdigit():
            if int(arg) in ports:
                out[i] = str(ports[int(arg)])
    return out


def rewrite_mounts(value: str, mounts: Sequence[tuple[str, Path]]) -> str:
    """Replace mountPath prefixes (longest first) with their local directories."""
    for mount_path, local in sorted(mounts, key=lambda m: -len(m[0])):
        base = mount_path.rstrip("/")
        value = re.sub(re.escape(base) + r"(?=/|\b|$)", str(local), value)
    return value


class Kubelet:
    """Plays kubelet for choreoctl's pods in several clusters; run with :meth:`run`."""

    def __init__(
        self,
        clusters: Iterable[ClusterLike],
        workdir: Path,
        *,
        interval: float = 1.0,
        hosts: Mapping[str, str] | None = None,
        choreoctl: str = CHOREOCTL,
    ) -> None:
        self.clusters = {c.name: c for c in clusters}
        self.workdir = workdir
        self.interval = interval
        self.hosts = dict(hosts or {})  # external host -> "cluster/namespace/service"
        self.choreoctl = choreoctl
        self.pods: dict[str, Pod] = {}
        self.clients: dict[str, KubeClient] = {}
        self.services: dict[str, list[dict[str, Any]]] = {}
        self.deployments: dict[str, list[dict[str, Any]]] = {}
        self.cluster_pods: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, str] = {}
        self.pump = LogPump()
        self._served: set[tuple[str, str, str]] = set()  # (kind, cluster, pod uid)
        self._stop = asyncio.Event()
        self.runner = PodRunner(self)

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Sync every ``interval`` seconds until :meth:`request_stop`; then stop all pods."""
        for name, c in self.clusters.items():
            ca = str(c.ca_file) if c.ca_file else None
            self.clients[name] = KubeClient(c.server, token=c.token, ca_file=ca, name=name)
        self.pump.start()
        try:
            while not self._stop.is_set():
                await self.sync_once()
                # Exits of one-shot Pods are reported within 0.1 s, not at the next sync.
                for _ in range(max(1, round(self.interval / 0.1))):
                    await self.runner.reap()
                    try:
                        await asyncio.wait_for(self._stop.wait(), 0.1)
                    except TimeoutError:
                        continue
                    break
        finally:
            await asyncio.to_thread(self._stop_all)
            await asyncio.to_thread(self.pump.stop)
            for client in self.clients.values():
                await client.aclose()

    def request_stop(self) -> None:
        """Ask :meth:`run` to end (thread-safe through the loop)."""
        self._stop.set()

    async def sync_once(self) -> None:
        """One pass: read Deployments and Services everywhere, converge the processes."""
        for name, client in self.clients.items():
            try:
                self.deployments[name] = await client.list("apps/v1", "Deployment")
                self.services[name] = await client.list("v1", "Service")
                self.cluster_pods[name] = await client.list("v1", "Pod")
                self.errors.pop(name, None)
            except ChoreoError as e:
                self.errors[name] = e.message  # a cluster that went away: keep what runs
        wanted: dict[str, tuple[str, dict[str, Any]]] = {}
        for cluster, items in self.deployments.items():
            for d in items:
                if runs_choreoctl(d) and int(d["spec"].get("replicas", 1)) > 0:
                    m = d["metadata"]
                    wanted[f"{cluster}/{m['namespace']}/{m['name']}"] = (cluster, d)
        for key in list(self.pods):
            if key not in wanted:
                gone = self.pods.pop(key)
                if gone.proc is not None:
                    await asyncio.to_thread(gone.proc.stop)
                self.pump.discard(gone.log)
        for key, (cluster, d) in wanted.items():
            pod = self.pods.get(key)
            if pod is None:
                m = d["metadata"]
                safe = key.replace("/", "_")
                pod = Pod(cluster, m["namespace"], m["name"], self.workdir / safe)
                pod.dir.mkdir(parents=True, exist_ok=True)
                self.pods[key] = pod
            self._allocate_ports(pod, d)
        for key, (_cluster, d) in wanted.items():
            try:
                await self._converge(self.pods[key], d)
            except ChoreoError as e:
                self.pods[key].waiting = e.message
        for key, (_cluster, d) in wanted.items():
            await self._serve_logs(self.pods[key], d)
        await self.runner.sync()

    async def _serve_logs(self, pod: Pod, deploy: Mapping[str, Any]) -> None:
        """Make the process's log the logs of every pod of its Deployment, and exec run
        with its environment (kwok Logs/Exec objects, owned by their pods so they go with
        them)."""
        target = self.pump.add(pod.log, pod.cri_log)
        selector = (deploy["spec"].get("selector") or {}).get("matchLabels") or {}
        if not selector:
            return
        for p in self.cluster_pods.get(pod.cluster, []):
            m = p["metadata"]
            labels = m.get("labels") or {}
            if m["namespace"] != pod.namespace or any(
                labels.get(k) != v for k, v in selector.items()
            ):
                continue
            wanted = [("Logs", logs_object(p, target))]
            if pod.env:
                wanted.append(("Exec", exec_object(p, pod.dir, pod.env)))
            for kind, obj in wanted:
                key = (kind, pod.cluster, m["uid"])
                if key in self._served:
                    continue
                try:
                    await self.clients[pod.cluster].apply(
                        obj, field_manager="choreoctl-testenv-kubelet", force=True
                    )
                except ChoreoError as e:  # e.g. clusters started before kwok served logs
                    self.errors[f"{pod.cluster} pod {kind}"] = e.message
                    continue
                self._served.add(key)

    def _allocate_ports(self, pod: Pod, deploy: Mapping[str, Any]) -> None:
        for container in deploy["spec"]["template"]["spec"]["containers"][:1]:
            for port in container.get("ports") or []:
                number = int(port["containerPort"])
                if number not in pod.ports:
                    pod.ports[number] = free_port()

    async def _converge(self, pod: Pod, deploy: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        spec_hash = template_hash(deploy)
        running = pod.proc is not None and pod.proc.alive()
        if running and spec_hash != pod.template_hash:
            assert pod.proc is not None
            await asyncio.to_thread(pod.proc.stop)
            running = False
            pod.restarts += 1
        if running:
            pod.waiting = ""
            await self._refresh_mounts(pod, deploy, write=True)
            if loop.time() - pod.started_at > 30:
                pod.crashes = 0  # healthy for a while: reset the backoff
            await self._refresh_token(pod, deploy, max_age=1800)
            return
        if pod.proc is not None and spec_hash == pod.template_hash:
            # exited on its own: back off like CrashLoopBackOff (1, 2, 4 … 10 s)
            code = pod.proc.exit_code()
            pod.proc = None
            pod.restarts += 1
            pod.crashes += 1
            delay = min(2.0 ** (pod.crashes - 1), 10.0)
            pod.next_start = loop.time() + delay
            pod.waiting = f"exited with code {code}; restarting in {delay:.0f}s"
        if loop.time() < pod.next_start:
            return
        argv, env = await self._command(pod, deploy)
        pod.template_hash = spec_hash
        pod.env = env
        pod.proc = ManagedProcess(f"kubelet {pod.key}", argv, pod.log)
        await asyncio.to_thread(pod.proc.start, env, REPO)
        pod.started_at = loop.time()
        pod.waiting = ""

    # -- building the command ----------------------------------------------------------

    async def _command(self, pod: Pod, deploy: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        mounts = await self._refresh_mounts(pod, deploy, write=True)
        automount = deploy["spec"]["template"]["spec"].get("automountServiceAccountToken", True)
        sa_dir = await self._refresh_token(pod, deploy, max_age=0) if automount else None
        client = self.clients[pod.cluster]
        args = [rewrite_mounts(a, mounts) for a in container.get("args") or []]
        args = [self._rewrite_urls(pod, a) for a in rewrite_ports(args, pod.ports)]
        env: dict[str, str] = {
            k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ
        }
        for var in container.get("env") or []:
            value = await self._env_value(pod, var)
            if value is None:
                continue
            value = rewrite_mounts(value, mounts)
            if var["name"].endswith("PORT") and value.isdigit() and int(value) in pod.ports:
                value = str(pod.ports[int(value)])
            env[var["name"]] = self._rewrite_urls(pod, value)
        server = urlsplit(client.server)
        env["KUBERNETES_SERVICE_HOST"] = server.hostname or "127.0.0.1"
        env["KUBERNETES_SERVICE_PORT"] = str(server.port or 443)
        if sa_dir is not None:
            env["CHOREOCTL_SERVICEACCOUNT_DIR"] = str(sa_dir)
        command = [self.choreoctl, *container["command"][1:]]
        return command + args, env

    async def _env_value(self, pod: Pod, var: Mapping[str, Any]) -> str | None:
        if "value" in var:
            return str(var["value"])
        src = var.get("valueFrom") or {}
        client = self.clients[pod.cluster]
        for kind, ref_key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if ref_key in src:
                ref = src[ref_key]
                data = await self._object_data(client, kind, pod.namespace, ref["name"])
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        return None
                    raise ChoreoError(
                        f"env {var['name']}: {kind} {ref['name']}/{ref['key']} missing"
                    )
                return data[ref["key"]].decode()
        if "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            return {
                "metadata.namespace": pod.namespace,
                "metadata.name": f"{pod.name}-kubelet",
                "status.podIP": "127.0.0.1",
                "spec.nodeName": "kubelet",
            }.get(path, "")
        return None

    async def _object_data(
        self, client: KubeClient, kind: str, namespace: str, name: str
    ) -> dict[str, bytes] | None:
        import base64

        obj = await client.get("v1", kind, name, namespace)
        if obj is None:
            return None
        if kind == "Secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        return {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}

    async def _refresh_mounts(
        self, pod: Pod, deploy: Mapping[str, Any], *, write: bool
    ) -> list[tuple[str, Path]]:
        """Write every mounted Secret/ConfigMap to files; return (mountPath, dir) pairs."""
        spec = deploy["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        client = self.clients[pod.cluster]
        mounts: list[tuple[str, Path]] = []
        for vm in spec["containers"][0].get("volumeMounts") or []:
            vol = volumes.get(vm["name"], {})
            local = pod.dir / "volumes" / vm["name"]
            local.mkdir(parents=True, exist_ok=True)
            mounts.append((vm["mountPath"], local))
            for kind, field_name, name_key in (
                ("Secret", "secret", "secretName"),
                ("ConfigMap", "configMap", "name"),
            ):
                if field_name not in vol:
                    continue
                src = vol[field_name]
                data = await self._object_data(client, kind, pod.namespace, src[name_key])
                if data is None:
                    if src.get("optional"):
                        continue
                    raise ChoreoError(f"volume {vm['name']}: {kind} {src[name_key]} not found")
                items = src.get("items")
                files = {i["path"]: data[i["key"]] for i in items} if items else data
                for fname, content in files.items():
                    path = local / fname
                    if write and pod.files.get(str(path)) != content:
                        tmp = path.with_name(f".{path.name}.tmp")
                        tmp.parent.mkdir(parents=True, exist_ok=True)
                        tmp.write_bytes(content)
                        tmp.chmod(0o600)
                        tmp.replace(path)
                        pod.files[str(path)] = content
        return mounts

    async def _refresh_token(self, pod: Pod, deploy: Mapping[str, Any], *, max_age: float) -> Path:
        """A real token of the Deployment's ServiceAccount (TokenRequest), plus the CA."""
        loop = asyncio.get_running_loop()
        sa_dir = pod.dir / "serviceaccount"
        if max_age and loop.time() - pod.token_at < max_age:
            return sa_dir
        spec = deploy["spec"]["template"]["spec"]
        sa = spec.get("serviceAccountName") or "default"
        client = self.clients[pod.cluster]
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        }
        path = f"/api/v1/namespaces/{pod.namespace}/serviceaccounts/{sa}/token"
        resp = await client.request(
            "POST",
            path,
            headers={"Content-Type": "application/json"},
            content=json.dumps(body).encode(),
        )
        if resp.status_code >= 300:
            raise ChoreoError(
                f"TokenRequest for ServiceAccount {sa}: {resp.status_code} {resp.text[:200]}"
            )
        sa_dir.mkdir(parents=True, exist_ok=True)
        (sa_dir / "token").write_text(resp.json()["status"]["token"])
        (sa_dir / "namespace").write_text(pod.namespace)
        ca = self.clusters[pod.cluster].ca_file
        if ca:
            (sa_dir / "ca.crt").write_bytes(Path(ca).read_bytes())
        else:  # no CA file: the client then skips verification (test servers only)
            (sa_dir / "ca.crt").unlink(missing_ok=True)
        pod.token_at = loop.time()
        return sa_dir

    # -- Services ----------------------------------------------------------------------

    def _rewrite_urls(self, pod: Pod, value: str) -> str:
        def repl(m: re.Match[str]) -> str:
            scheme, host, port = m.group(1), m.group(2), m.group(3)
            number = int(port) if port else _DEFAULT_PORTS.get(scheme, 0)
            target = self.resolve(pod.cluster, pod.namespace, host, number)
            if target is None:
                raise ChoreoError(f"cannot resolve {host}:{number} to a running process yet")
            return f"{scheme}://127.0.0.1:{target}"

        if "://" not in value:
            return value
        return _URL.sub(repl, value)

    def resolve(self, cluster: str, namespace: str, host: str, port: int) -> int | None:
        """The loopback port behind ``host:port`` as seen from a pod in ``cluster``."""
        if host in ("127.0.0.1", "localhost"):
            return port
        parts = host.split(".")
        if host in self.hosts:
            c, ns, svc = self.hosts[host].split("/")
            return self._service_port(c, ns, svc, port)
        if len(parts) == 1:
            return self._service_port(cluster, namespace, parts[0], port)
        if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
            return self._service_port(cluster, parts[1], parts[0], port)
        found = [
            hit
            for c, svcs in self.services.items()
            for s in svcs
            if (s.get("spec") or {}).get("type") == "LoadBalancer"
            and (
                hit := self._service_port(
                    c, s["metadata"]["namespace"], s["metadata"]["name"], port
                )
            )
        ]
        return found[0] if len(found) == 1 else None

    def _service_port(self, cluster: str, namespace: str, name: str, port: int) -> int | None:
        svc = next(
            (
                s
                for s in self.services.get(cluster, [])
                if s["metadata"]["name"] == name and s["metadata"]["namespace"] == namespace
            ),
            None,
        )
        if svc is None:
            return None
        sp = next((p for p in svc["spec"].get("ports") or [] if int(p["port"]) == port), None)
        selector = svc["spec"].get("selector") or {}
        if sp is None or not selector:
            return None
        for pod in self.pods.values():
            if pod.cluster != cluster or pod.namespace != namespace:
                continue
            deploy = next(
                (
                    d
                    for d in self.deployments.get(cluster, [])
                    if d["metadata"]["name"] == pod.name and d["metadata"]["namespace"] == namespace
                ),
                None,
            )
            if deploy is None:
                continue
            labels = deploy["spec"]["template"]["metadata"].get("labels") or {}
            if not all(labels.get(k) == v for k, v in selector.items()):
                continue
            target = sp.get("targetPort", sp["port"])
            if isinstance(target, str) and not target.isdigit():
                container = deploy["spec"]["template"]["spec"]["containers"][0]
                named = {
                    p.get("name"): int(p["containerPort"]) for p in container.get("ports") or []
                }
                target = named.get(target)
            if target is not None and int(target) in pod.ports:
                return pod.ports[int(target)]
        return None

    # -- state -------------------------------------------------------------------------

    def _stop_all(self) -> None:
        for pod in self.pods.values():
            if pod.proc is not None:
                pod.proc.stop()
        self.runner.stop_all()

    def state(self) -> list[dict[str, Any]]:
        """Every pod's state (running, pid, ports, restarts, why waiting, log path)."""
        return [p.state() for p in list(self.pods.values())]


class KubeletThread:
    """Runs a :class:`Kubelet` in a background thread with its own event loop.

    For tests: the test body can call blocking code (subprocesses, kubectl) while the
    kubelet keeps converging.
    """

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="test-kubelet", daemon=True)
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._ready.set()
        try:
            loop.run_until_complete(self.kubelet.run())
        except BaseException as e:  # surfaced by stop()
            self.error = e
        finally:
            loop.close()

    def start(self) -> KubeletThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.kubelet.request_stop)
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def state(self) -> list[dict[str, Any]]:
        return self.kubelet.state()

    def log(self, cluster: str, namespace: str, deployment: str) -> str:
        """The whole log of a pod's process(es), across restarts."""
        pod = self.kubelet.pods.get(f"{cluster}/{namespace}/{deployment}")
        if pod is None or not pod.log.exists():
            return ""
        return pod.log.read_text(errors="replace")

    def logs(self) -> str:
        """Every pod's log tail, for a failing test's message."""
        from tests.testenv.processes import tail

        out = []
        for pod in list(self.kubelet.pods.values()):
            out.append(f"== {pod.key} ({pod.waiting or 'ok'}, restarts {pod.restarts})")
            out.append(tail(pod.log, 20))
        for st in self.kubelet.runner.state():
            out.append(f"== pod {st['cluster']}/{st['namespace']}/{st['deployment']} {st}")
            out.append(tail(Path(st["log"]), 20))
        out += [f"== {key}: {err}" for key, err in self.kubelet.runner.errors.items()]
        return "\n".join(out)


@pytest.fixture
def kubelet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., KubeletThread]]:
    """Start a test kubelet for some clusters: ``kubelet(clusters, hosts=…) -> KubeletThread``.

    Every kubelet started in a test is stopped (with its processes) at teardown.
    """
    started: list[KubeletThread] = []

    def start(clusters: Iterable[ClusterLike], **kw: Any) -> KubeletThread:
        workdir = tmp_path_factory.mktemp("kubelet")
        thread = KubeletThread(Kubelet(clusters, workdir, **kw)).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


def _print_changes(before: dict[str, str], kubelet: Kubelet) -> dict[str, str]:
    now: dict[str, str] = {}
    for st in kubelet.state():
        key = f"{st['cluster']}/{st['namespace']}/{st['deployment']}"
        if st["running"]:
            ports = " ".join(f"{c}->127.0.0.1:{h}" for c, h in st["ports"].items())
            line = f"running pid {st['pid']} (restarts {st['restarts']}) {ports} log {st['log']}"
        else:
            line = f"waiting: {st['waiting'] or 'starting'}"
        now[key] = line
        if before.get(key) != line:
            print(f"{key}: {line}", flush=True)
    for key in before.keys() - now.keys():
        print(f"{key}: stopped (Deployment gone)", flush=True)
    for cluster, err in kubelet.errors.items():
        if before.get(f"!{cluster}") != err:
            print(f"{cluster}: {err}", flush=True)
        now[f"!{cluster}"] = err
    return now


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The kubelet's options (also used by ``python -m tests.testenv kubelet``)."""
    parser.add_argument("--workdir", type=Path, default=None, help="pod files and logs")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between syncs")
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="HOST=CLUSTER/NAMESPACE/SERVICE",
        help="resolve an external host name to a Service (repeatable)",
    )


def run_from_args(args: argparse.Namespace, run_dir: Path | None = None) -> int:
    """Run until SIGINT/SIGTERM against the clusters recorded in ``run_dir``."""
    import signal
    import tempfile

    from tests.testenv.clusterset import ClusterSet

    clusters = ClusterSet.attach(run_dir or default_run_dir())
    hosts = dict(h.split("=", 1) for h in args.host)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="choreoctl-kubelet-"))
    kubelet = Kubelet(list(clusters), workdir, interval=args.interval, hosts=hosts)
    print(f"test kubelet: clusters {', '.join(c.name for c in clusters)}; files in {workdir}")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, kubelet.request_stop)
        task = asyncio.create_task(kubelet.run())
        seen: dict[str, str] = {}
        while not task.done():
            seen = _print_changes(seen, kubelet)
            await asyncio.wait({task}, timeout=2.0)
        await task

    asyncio.run(run())
    print("test kubelet: stopped every process", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry: ``python -m tests.testenv.kubelet [--run-dir DIR] …``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.testenv kubelet",
        description="Run choreoctl's gateway/agent/controller Deployments of the test "
        "clusters as real processes on loopback, until stopped (Ctrl-C).",
    )
    parser.add_argument("--run-dir", type=Path, default=None, help="state dir of `up`")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args, args.run_dir)


def default_run_dir() -> Path:
    """Where ``python -m tests.testenv up`` keeps its state (same rule as ``up``)."""
    from tests.testenv.binaries import cache_root

    return cache_root() / "run"


if __name__ == "__main__":
    raise SystemExit(main())
