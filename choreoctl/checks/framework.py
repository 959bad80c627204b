"""The check framework: checks as data, results, reports and the concurrent runner.

A :class:`Check` is a small typed unit (linkerd's shape): an id that is also its README
anchor (``#check-<id>``), a category, a one-line description, a hint that tells the
fix, whether a failure is fatal, and an async function that inspects one cluster (or
the workstation) and returns an :class:`Outcome`. :mod:`choreoctl.checks.runner` runs them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from choreoctl.errors import ApiError, ClusterError

if TYPE_CHECKING:
    from choreoctl.kube.client import KubeClient
    from choreoctl.topology.model import Cluster, Plane, Topology

SCHEMA_VERSION = 1
DOCS = "README.md"


class Status(enum.StrEnum):
    """The outcome of one check; order is severity for summaries."""

    ok = "pass"
    warn = "warn"
    fail = "fail"
    skip = "skip"


class Category(enum.StrEnum):
    """Groups of checks, in the order reports show them."""

    cluster = "cluster"
    nodes = "nodes and capacity"
    permissions = "permissions"
    networking = "networking"
    storage = "storage"
    certificates = "certificates and TLS"
    dns = "domains and DNS"
    tools = "tools"
    connectivity = "connectivity"
    planes = "planes"
    agents = "agents"
    trust = "trust"
    resources = "resources"


class Scope(enum.StrEnum):
    """Where a check runs: once per cluster of the topology, or once on the workstation."""

    cluster = "cluster"
    local = "local"


@dataclass(frozen=True)
class Outcome:
    """What a check function found: a status, the reason, and detail lines."""

    status: Status
    reason: str = ""
    details: tuple[str, ...] = ()


def passed(reason: str = "", details: Sequence[str] = ()) -> Outcome:
    """A passing outcome; ``reason`` says what was seen (e.g. ``v1.36.3``)."""
    return Outcome(Status.ok, reason, tuple(details))


def warned(reason: str, details: Sequence[str] = ()) -> Outcome:
    """A warning: the install can go on, but something is likely to bite."""
    return Outcome(Status.warn, reason, tuple(details))


def failed(reason: str, details: Sequence[str] = ()) -> Outcome:
    """A failure (downgraded to a warning when the check is not fatal)."""
    return Outcome(Status.fail, reason, tuple(details))


def judged(problems: Sequence[str], warnings: Sequence[str] = (), ok: str = "") -> Outcome:
    """The verdict of a check that collects findings: fail on the first problem (the
    others and the warnings as details), else warn on the first warning, else pass."""
    if problems:
        return failed(problems[0], [*problems[1:], *warnings])
    if warnings:
        return warned(warnings[0], warnings[1:])
    return passed(ok)


def skipped(reason: str) -> Outcome:
    """The check does not apply here; ``reason`` says why."""
    return Outcome(Status.skip, reason)


class CheckContext:
    """Everything a check may look at: the topology, the cluster, its client and a cache.

    Checks of one cluster share the context, so data several checks need (nodes, pods,
    the server version) is fetched once through :meth:`cached`.
    """

    def __init__(
        self,
        topology: Topology,
        cluster: Cluster | None,
        client: KubeClient | None,
        *,
        probe: bool = False,
        timeout: float = 10.0,
        peers: dict[str, KubeClient] | None = None,
    ) -> None:
        self.topology = topology
        self.peers = peers if peers is not None else {}
        self.cluster = cluster
        self._client = client
        self.probe = probe
        self.timeout = timeout
        self._cache: dict[str, asyncio.Task[Any]] = {}

    @property
    def kc(self) -> KubeClient:
        """The cluster's client (cluster-scoped checks only)."""
        if self._client is None:
            raise RuntimeError("a workstation check asked for a cluster client")
        return self._client

    def peer(self, cluster: str) -> KubeClient:
        """Another cluster's client (doctor reads the control plane's CA and plane CRs)."""
        client = self.peers.get(cluster)
        if client is None:
            raise ClusterError(f"no client for cluster {cluster!r}: its kubeconfig context failed")
        return client

    @property
    def name(self) -> str:
        """The cluster's name, or "" on the workstation."""
        return self.cluster.name if self.cluster else ""

    @property
    def planes(self) -> tuple[Plane, ...]:
        """The planes the topology places on this cluster (all planes on the workstation)."""
        if self.cluster is None:
            return self.topology.planes
        return tuple(p for p in self.topology.planes if p.cluster == self.cluster.name)

    async def cached(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """The value of ``make()`` computed once per context (concurrent callers share it)."""
        task = self._cache.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.ensure_future(make())
            self._cache[key] = task
        return await asyncio.shield(task)

    async def snapshot(self) -> str:
        """A resourceVersion taken once per run (again after :meth:`forget`).

        Reads ``not_older_than`` it see every write made before the run and are served
        from the API server's watch cache, about half its CPU and no etcd read. "" when
        the identity may not list namespaces: reads then go to etcd as usual.
        """

        async def take() -> str:
            try:
                return await self.kc.snapshot()
            except ApiError:
                return ""

        version: str = await self.cached("snapshot", take)
        return version

    async def listed(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` in the cluster as of :meth:`snapshot`, read once per
        run: the checks that need the same list share one request."""

        async def fetch() -> list[dict[str, Any]]:
            return await self.kc.list(api_version, kind, not_older_than=await self.snapshot())

        items: list[dict[str, Any]] = await self.cached(f"list {api_version} {kind}", fetch)
        return items

    def forget(self) -> None:
        """Drop cached data (before a retry, so it sees the cluster as it is now)."""
        for task in self._cache.values():
            if not task.done():
                task.cancel()
        self._cache.clear()


CheckFn = Callable[[CheckContext], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    """One check as data; ``id`` is also the README anchor ``#check-<id>``."""

    id: str
    category: Category
    description: str
    hint: str
    run: CheckFn
    scope: Scope = Scope.cluster
    fatal: bool = True

    @property
    def docs(self) -> str:
        """The README link the hint points to."""
        return f"{DOCS}#check-{self.id}"


@dataclass(frozen=True)
class Result:
    """One check's result on one cluster (``cluster`` "" = the workstation)."""

    check: str
    category: Category
    cluster: str
    status: Status
    description: str
    reason: str = ""
    hint: str = ""
    docs: str = ""
    details: tuple[str, ...] = ()
    duration_ms: int = 0
    blocked_by: str = ""  # the gate check whose failure kept this one from running

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of a result."""
        return {
            "id": self.check,
            "category": str(self.category),
            "cluster": self.cluster,
            "status": str(self.status),
            "description": self.description,
            "reason": self.reason,
            "hint": self.hint if self.status in (Status.fail, Status.warn) else "",
            "docs": self.docs,
            "details": list(self.details),
            "durationMs": self.duration_ms,
            "blockedBy": self.blocked_by,
        }


@dataclass
class Report:
    """The results of one preflight or doctor run, with the exit code they imply."""

    command: str
    topology: str
    results: list[Result] = field(default_factory=list)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    duration_s: float = 0.0
    attempts: int = 1

    def counts(self) -> dict[str, int]:
        """How many results of each status (every status present, in a fixed order)."""
        out = {str(s): 0 for s in Status}
        for r in self.results:
            out[str(r.status)] += 1
        return out

    @property
    def failed(self) -> bool:
        """Whether any check failed."""
        return any(r.status is Status.fail for r in self.results)

    @property
    def warned(self) -> bool:
        """Whether any check warned."""
        return any(r.status is Status.warn for r in self.results)

    def exit_code(self, strict: bool = False) -> int:
        """0 when everything passed (warnings too unless ``strict``), else 1."""
        if self.failed or (strict and self.warned):
            return 1
        return 0

    def clusters(self) -> list[str]:
        """Cluster names in report order ("" = workstation, first)."""
        seen: dict[str, None] = {}
        for r in self.results:
            seen.setdefault(r.cluster, None)
        return sorted(seen, key=lambda name: name != "")

    def to_dict(self) -> dict[str, Any]:
        """The stable, versioned JSON/YAML document (see README "Checks")."""
        return {
            "apiVersion": "choreoctl.dev/v1alpha1",
            "kind": "CheckReport",
            "schemaVersion": SCHEMA_VERSION,
            "command": self.command,
            "topology": self.topology,
            "startedAt": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "durationSeconds": round(self.duration_s, 3),
            "attempts": self.attempts,
            "summary": {**self.counts(), "ok": not self.failed},
            "results": [r.to_dict() for r in self.results],
        }
