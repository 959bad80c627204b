"""Bare choreoctl Pods (``restartPolicy: Never``) played once, as a kubelet would run them.

preflight's ``--probe`` creates a Pod running ``choreoctl agent probe HOST PORT`` and reads
its verdict from the Pod's log once the Pod is Succeeded or Failed. kwok would leave such
a Pod Running forever, so the test kubelet (:mod:`tests.testenv.kubelet`) hands bare Pods
(no owner) whose container command is ``["choreoctl"]`` to :class:`PodRunner`: it builds
the command exactly as for a Deployment (args, env, mounts; no token when
``automountServiceAccountToken`` is false), runs it once as a local process, serves its
output as the Pod's logs (kwok ``Logs`` object), and when it exits patches the Pod's
status: phase Succeeded or Failed, the container terminated with its exit code.

Races with kwok's Stages: a Pod is started only once kwok's ``pod-ready`` made it Running
(that Stage selects phase Pending, so it never writes again), and ``pod-complete`` selects
Pods owned by a Job only; no Stage selects a Succeeded or Failed Pod.

``agent probe HOST PORT`` dials an outside host, so its two arguments map like the URLs of
a Deployment's args: to the loopback port of the LoadBalancer-backed process that serves
``HOST:PORT`` (:meth:`Kubelet.resolve`), else — as DNS pointing at an address where nothing
listens yet — to a closed loopback port (refused). Names under ``.invalid`` (RFC 2606)
stay as they are and do not resolve; IP literals other than loopback are mapped like names.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from choreoctl.errors import ChoreoError
from tests.testenv.podlogs import logs_object
from tests.testenv.podspec import REPO, Pod
from tests.testenv.processes import ManagedProcess, free_port

if TYPE_CHECKING:
    from tests.testenv.kubelet import Kubelet

FIELD_MANAGER = "choreoctl-testenv-kubelet"


def runs_once(pod: Mapping[str, Any]) -> bool:
    """A bare choreoctl Pod that kwok has made Running and nobody has finished yet."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    containers = spec.get("containers") or []
    return (
        not meta.get("ownerReferences")
        and not meta.get("deletionTimestamp")
        and spec.get("restartPolicy") == "Never"
        and bool(containers)
        and (containers[0].get("command") or [])[:1] == ["choreoctl"]
        and (pod.get("status") or {}).get("phase") == "Running"
    )


def rewrite_probe_args(args: list[str], resolve: Callable[[str, int], int | None]) -> list[str]:
    """Map ``agent probe HOST PORT`` to the loopback address the test DNS gives HOST."""
    if args[:2] != ["agent", "probe"] or len(args) < 4 or not args[3].isdigit():
        return args
    host, port = args[2], int(args[3])
    target = resolve(host, port)
    if target is not None:
        return [*args[:2], "127.0.0.1", str(target), *args[4:]]
    if host.rstrip(".").endswith(".invalid"):
        return args
    return [*args[:2], "127.0.0.1", str(free_port()), *args[4:]]


def terminated_status(pod: Mapping[str, Any], code: int, started: str) -> dict[str, Any]:
    """The status a kubelet writes when a Never-restart Pod's only container exits."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok = code == 0
    containers = pod["spec"]["containers"]
    statuses = [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if ok else "Error",
                    "startedAt": started,
                    "finishedAt": now,
                }
            },
        }
        for c in containers
    ]
    conditions = [
        {"type": t, "status": s, "lastTransitionTime": now}
        for t, s in (
            ("PodScheduled", "True"),
            ("Initialized", "True"),
            ("Ready", "False"),
            ("ContainersReady", "False"),
        )
    ]
    phase = "Succeeded" if ok else "Failed"
    return {"status": {"phase": phase, "conditions": conditions, "containerStatuses": statuses}}


@dataclass
class _Run:
    pod: Pod
    obj: dict[str, Any]
    started: str = ""
    done: bool = False


class PodRunner:
    """Runs a :class:`~tests.testenv.kubelet.Kubelet`'s bare choreoctl Pods once each."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self.runs: dict[str, _Run] = {}  # cluster/namespace/name/uid
        self.errors: dict[str, str] = {}

    async def sync(self) -> None:
        """Start newly Running bare Pods; forget (and stop) those whose Pod is gone."""
        seen: set[str] = set()
        for cluster, pods in self.kubelet.cluster_pods.items():
            for p in pods:
                m = p["metadata"]
                key = f"{cluster}/{m['namespace']}/{m['name']}/{m['uid']}"
                seen.add(key)
                if key in self.runs or not runs_once(p):
                    continue
                try:
                    await self._start(cluster, key, p)
                    self.errors.pop(key, None)
                except ChoreoError as e:  # a missing Secret …: retried on the next sync
                    self.errors[key] = e.message
        listed = set(self.kubelet.cluster_pods)
        for key in [k for k in self.runs if k.split("/")[0] in listed and k not in seen]:
            run = self.runs.pop(key)
            if run.pod.proc is not None:
                await asyncio.to_thread(run.pod.proc.stop)
            self.kubelet.pump.discard(run.pod.log)

    async def _start(self, cluster: str, key: str, obj: dict[str, Any]) -> None:
        m = obj["metadata"]
        safe = key.replace("/", "_")
        pod = Pod(cluster, m["namespace"], m["name"], self.kubelet.workdir / "pods" / safe)
        pod.dir.mkdir(parents=True, exist_ok=True)
        as_deploy = {"spec": {"template": {"metadata": m, "spec": obj["spec"]}}}
        argv, env = await self.kubelet._command(pod, as_deploy)
        args = rewrite_probe_args(
            argv[1:], lambda h, p: self.kubelet.resolve(cluster, pod.namespace, h, p)
        )
        target = self.kubelet.pump.add(pod.log, pod.cri_log)
        await self.kubelet.clients[cluster].apply(
            logs_object(obj, target), field_manager=FIELD_MANAGER, force=True
        )
        pod.env = env
        pod.proc = ManagedProcess(f"kubelet pod {key}", [argv[0], *args], pod.log)
        await asyncio.to_thread(pod.proc.start, env, REPO)
        started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.runs[key] = _Run(pod, obj, started)

    async def reap(self) -> None:
        """Report every exited process: flush its log, then the Pod's terminal status."""
        for key, run in list(self.runs.items()):
            proc = run.pod.proc
            code = proc.exit_code() if proc is not None else None
            if run.done or code is None:
                continue
            self.kubelet.pump.discard(run.pod.log)  # the last lines reach the CRI copy first
            try:
                await self.kubelet.clients[run.pod.cluster].patch_status(
                    "v1",
                    "Pod",
                    run.pod.name,
                    run.pod.namespace,
                    terminated_status(run.obj, code, run.started),
                )
            except ChoreoError as e:  # e.g. the Pod went meanwhile
                self.errors[key] = e.message
            run.done = True

    def stop_all(self) -> None:
        """Stop every process still running (the kubelet is stopping)."""
        for run in self.runs.values():
            if run.pod.proc is not None:
                run.pod.proc.stop()

    def state(self) -> list[dict[str, Any]]:
        """Each bare Pod's process state, like :meth:`Pod.state`, plus its exit code."""
        out = []
        for key, run in list(self.runs.items()):
            st = run.pod.state()
            st["exitCode"] = run.pod.proc.exit_code() if run.pod.proc else None
            st["waiting"] = self.errors.get(key, "")
            out.append(st)
        return out
