"""The install record: what choreoctl applied where, kept in the control plane cluster.

One ConfigMap, ``choreoctl-install-record`` in the control plane namespace, holds the
topology name and hash, the choreoctl version, and per install step its state, when the
current attempt began (server clock, per cluster) and every object it applied (cluster,
apiVersion, kind, namespace, name, uid, created). It is written when a step starts
(the objects it is about to apply) and when it ends (their uids), so an install killed
at any point leaves a record that the next run completes and that uninstall trusts.

``created`` is what makes uninstall safe: only objects choreoctl brought into being are
ever deleted. It is decided from the server's own clocks: an object whose
``creationTimestamp`` is not older than the start of the step attempt that applied it
was created by that attempt (a crash between the apply and the record write still
leaves the attempt's start time in the record).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from choreoctl import __version__
from choreoctl.install.objects import ObjectRef
from choreoctl.kube.client import KubeClient

RECORD_NAME = "choreoctl-install-record"
RECORD_KEY = "record.json"
MANAGED_BY = {"app.kubernetes.io/managed-by": "choreoctl"}


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it; None when empty or bad."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, as Kubernetes writes timestamps."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def server_time(client: KubeClient) -> str:
    """The API server's clock (its ``Date`` header), RFC 3339; local clock as fallback."""
    date = await client.server_date()
    try:
        return format_time(email.utils.parsedate_to_datetime(date))
    except (TypeError, ValueError):
        return format_time(datetime.now(UTC))


@dataclass
class Entry:
    """One object of the inventory."""

    cluster: str
    ref: ObjectRef
    uid: str = ""  # "" while the step that applies it has not finished
    created: bool = False  # choreoctl created it; only such objects are ever deleted
    origin: str = "apply"  # "apply": from the charts (upgrade may prune); "hook": trust …
    planned: str = ""  # server time the entry was planned, while it has no uid yet
    version: str = ""  # resourceVersion when its step last finished (unchanged = skip)

    @property
    def key(self) -> tuple[str, ObjectRef]:
        """Identity inside the record: the same ref in two clusters is two objects."""
        return (self.cluster, self.ref)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form kept in the record."""
        return {
            "cluster": self.cluster,
            **self.ref.as_dict(),
            "uid": self.uid,
            "created": self.created,
            "origin": self.origin,
            **({"planned": self.planned} if self.planned and not self.uid else {}),
            **({"version": self.version} if self.version else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        """Inverse of :meth:`as_dict`."""
        return cls(
            str(data["cluster"]),
            ObjectRef.from_dict(data),
            str(data.get("uid", "")),
            bool(data.get("created", False)),
            str(data.get("origin", "apply")),
            str(data.get("planned", "")),
            str(data.get("version", "")),
        )


@dataclass
class StepRecord:
    """The state of one install step across runs."""

    state: str = "pending"  # pending | running | done | failed
    since: dict[str, str] = field(default_factory=dict)  # cluster -> attempt start
    digest: str = ""  # hash of what the step applied when it last finished
    message: str = ""
    objects: list[Entry] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form kept in the record."""
        return {
            "state": self.state,
            "since": dict(self.since),
            "digest": self.digest,
            "message": self.message,
            "objects": [e.as_dict() for e in self.objects],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        """Inverse of :meth:`as_dict`."""
        return cls(
            str(data.get("state", "pending")),
            {str(k): str(v) for k, v in (data.get("since") or {}).items()},
            str(data.get("digest", "")),
            str(data.get("message", "")),
            [Entry.from_dict(e) for e in data.get("objects") or []],
        )

    def merge(self, entries: Iterable[Entry]) -> None:
        """Add ``entries``; an object already known keeps its ``created`` flag and uid
        unless the new entry has a different uid (the object was replaced)."""
        known = {e.key: e for e in self.objects}
        for entry in entries:
            old = known.get(entry.key)
            if old is None:
                self.objects.append(entry)
                known[entry.key] = entry
            elif entry.uid and entry.uid != old.uid:
                old.created = entry.created if old.uid else (old.created or entry.created)
                old.uid = entry.uid
                old.planned = ""

    def find(self, key: tuple[str, ObjectRef]) -> Entry | None:
        """The entry of ``key`` (cluster, ref), if recorded."""
        return next((e for e in self.objects if e.key == key), None)

    def drop(self, keys: Iterable[tuple[str, ObjectRef]]) -> None:
        """Forget objects (pruned by an upgrade or deleted by uninstall)."""
        gone = set(keys)
        self.objects = [e for e in self.objects if e.key not in gone]


@dataclass
class InstallRecord:
    """The whole record of one installed topology."""

    topology: str
    topology_hash: str = ""
    version: str = __version__
    state: str = "installing"  # installing | installed | failed | uninstalling
    updated: str = ""
    steps: dict[str, StepRecord] = field(default_factory=dict)

    def step(self, step_id: str) -> StepRecord:
        """The record of ``step_id``, created empty on first use."""
        return self.steps.setdefault(step_id, StepRecord())

    def inventory(self) -> dict[str, list[Entry]]:
        """Every recorded object per cluster, in step order, without duplicates."""
        out: dict[str, list[Entry]] = {}
        seen: dict[tuple[str, ObjectRef], Entry] = {}
        for rec in self.steps.values():
            for entry in rec.objects:
                first = seen.get(entry.key)
                if first is None:
                    first = seen[entry.key] = Entry(
                        entry.cluster, entry.ref, entry.uid, entry.created, entry.origin
                    )
                    out.setdefault(entry.cluster, []).append(first)
                elif entry.uid and (first.uid == entry.uid or not first.uid):
                    # Two steps saw the same object (the organization): whichever
                    # step's attempt created it says so.
                    first.uid = entry.uid
                    first.created = first.created or entry.created
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON form kept in the ConfigMap."""
        return {
            "topology": self.topology,
            "topologyHash": self.topology_hash,
            "version": self.version,
            "state": self.state,
            "updated": self.updated,
            "steps": {k: v.as_dict() for k, v in self.steps.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstallRecord:
        """Inverse of :meth:`as_dict`."""
        return cls(
            str(data.get("topology", "")),
            str(data.get("topologyHash", "")),
            str(data.get("version", "")),
            str(data.get("state", "")),
            str(data.get("updated", "")),
            {str(k): StepRecord.from_dict(v) for k, v in (data.get("steps") or {}).items()},
        )


def created_by_attempt(created_at: str, since: str) -> bool:
    """Whether an object created at ``created_at`` came from an attempt begun ``since``."""
    made, began = parse_time(created_at), parse_time(since)
    return made is not None and began is not None and made >= began


class RecordStore:
    """Reads and writes the record ConfigMap; writes are serialised (steps run at once)."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._lock = asyncio.Lock()
        self._written = ""  # the last record text written or read (skip no-op writes)

    async def load(self) -> InstallRecord | None:
        """The stored record, or None when there is none (or no namespace yet)."""
        cm = await self.client.get("v1", "ConfigMap", RECORD_NAME, self.namespace)
        if cm is None:
            return None
        text = (cm.get("data") or {}).get(RECORD_KEY, "")
        if not text:
            return None
        record = InstallRecord.from_dict(json.loads(text))
        self._written = self._text(record)
        return record

    @staticmethod
    def _text(record: InstallRecord) -> str:
        data = record.as_dict()
        data.pop("updated")
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    async def save(self, record: InstallRecord) -> None:
        """Write ``record`` (server-side apply, forced: the record is choreoctl's own)."""
        async with self._lock:
            text = self._text(record)
            if text == self._written:
                return  # nothing changed: a re-run of an installed topology writes nothing
            record.updated = format_time(datetime.now(UTC))
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": RECORD_NAME,
                    "namespace": self.namespace,
                    "labels": dict(MANAGED_BY),
                },
                "data": {RECORD_KEY: json.dumps(record.as_dict(), separators=(",", ":"))},
            }
            await self.client.apply(body, "choreoctl", force=True)
            self._written = text

    async def delete(self) -> None:
        """Remove the record (the last act of an uninstall)."""
        await self.client.delete("v1", "ConfigMap", RECORD_NAME, self.namespace)
