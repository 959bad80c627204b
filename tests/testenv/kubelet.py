"""A test kubelet for choreoctl's own image: runs the gateway, agents and controller for real.

The test clusters fake their kubelets (kwok), so a pod that runs choreoctl's image never
runs. This helper plays kubelet for exactly those pods: for every Deployment whose
container command is ``["choreoctl"]`` it starts ``.venv/bin/choreoctl`` on loopback with
the container's args and env as the chart wrote them (how: :mod:`tests.testenv.podcommand`;
Service names resolved by :mod:`tests.testenv.servicedns`). So a wrong flag, mount or RBAC
rule in a chart fails the test that runs it.

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

Tests start it through the ``kubelet`` fixture (:mod:`tests.testenv.kubelet_thread`); by
hand, ``python -m tests.testenv kubelet`` runs it against the clusters of ``up``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from choreoctl.errors import ChoreoError
from choreoctl.kube.client import KubeClient
from tests.testenv.podcommand import PodCommands
from tests.testenv.podlogs import LogPump, exec_object, logs_object
from tests.testenv.podrunner import PodRunner
from tests.testenv.podspec import CHOREOCTL, REPO, ClusterLike, Pod, runs_choreoctl, template_hash
from tests.testenv.processes import ManagedProcess, free_port


class Kubelet(PodCommands):
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

    # -- state -------------------------------------------------------------------------

    def _stop_all(self) -> None:
        for pod in self.pods.values():
            if pod.proc is not None:
                pod.proc.stop()
        self.runner.stop_all()

    def state(self) -> list[dict[str, Any]]:
        """Every pod's state (running, pid, ports, restarts, why waiting, log path)."""
        return [p.state() for p in list(self.pods.values())]


# -- by hand: python -m tests.testenv kubelet ---------------------------------------------


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
