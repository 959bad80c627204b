"""Pod logs (and exec) for kwok's fake pods: kwok's kubelet API serves them from files of ours.

Every cluster's kwok serves the kubelet API (containerLogs, ``follow`` included) on a
loopback port its Nodes advertise (InternalIP 127.0.0.1, kubeletEndpoint port), so
``kubectl logs`` goes API server → kwok as it would go to a kubelet. kwok answers for a pod
from the file named by the pod's ``Logs`` object (kwok.x-k8s.io/v1alpha1, same name and
namespace as the pod) and reads it with the kubelet's CRI log reader, which wants every
line as ``<RFC3339Nano> stdout F <text>`` and refuses plain text. Our processes write plain
text, so :class:`LogPump` keeps a CRI-format copy of each plain log current and the Logs
object names the copy; with ``follow`` kwok waits (inotify) for the copy to grow.

``kubectl exec`` works the same way: kwok runs the command locally, in the directory and
with the environment its ``Exec`` object names (:func:`exec_object`). Commands given stdin
(``exec -i``) do not see it close; give them none.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

KWOK_API = "kwok.x-k8s.io/v1alpha1"
_MAX_READ = 4 << 20  # bytes copied per file per round, so one huge log cannot stall the rest


class _Api(Protocol):
    def get(self, path: str) -> dict[str, Any] | None: ...

    def apply(self, obj: dict[str, Any]) -> None: ...


def cri_lines(data: bytes, stamp_ns: int | None = None) -> bytes:
    """Complete plain lines (``data`` ends with a newline) as CRI log lines stamped now."""
    ns = time.time_ns() if stamp_ns is None else stamp_ns
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
    prefix = f"{stamp} stdout F ".encode()
    return b"".join(prefix + line + b"\n" for line in data.split(b"\n")[:-1])


def logs_object(pod: Mapping[str, Any], logs_file: Path) -> dict[str, Any]:
    """kwok's Logs object serving ``logs_file`` for every container of ``pod``.

    Owned by the pod, so the garbage collector removes it with the pod.
    """
    meta = pod["metadata"]
    owner = {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
    return {
        "apiVersion": KWOK_API,
        "kind": "Logs",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "ownerReferences": [owner],
        },
        "spec": {"logs": [{"logsFile": str(logs_file.resolve()), "follow": True}]},
    }


def exec_object(pod: Mapping[str, Any], workdir: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """kwok's Exec object: ``kubectl exec`` into ``pod`` runs the command here, in ``workdir``
    with ``env`` over kwok's own environment. Owned by the pod, like :func:`logs_object`."""
    obj = logs_object(pod, workdir)
    obj["kind"] = "Exec"
    local = {
        "workDir": str(workdir.resolve()),
        "envs": [{"name": k, "value": v} for k, v in env.items()],
    }
    obj["spec"] = {"execs": [{"local": local}]}
    return obj


@dataclass
class _Copy:
    target: Path
    offset: int = 0
    inode: int = 0


class LogPump:
    """Keeps CRI-format copies of plain-text log files current (a thread polling every 0.1 s).

    Only complete lines are copied. A source that is replaced or truncated is copied again
    from its start, appended to the copy (as a restarted container's lines would be).
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._copies: dict[Path, _Copy] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, source: Path, target: Path) -> Path:
        """Start copying ``source`` (from its first line) into ``target``; return ``target``
        (the one already used, if ``source`` was added before)."""
        with self._lock:
            if source in self._copies:
                return self._copies[source].target
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
            copy = self._copies[source] = _Copy(target)
            _pump(source, copy)
        return target

    def discard(self, source: Path) -> None:
        """Stop copying ``source`` (the copy stays, like a dead container's log)."""
        with self._lock:
            copy = self._copies.pop(source, None)
            if copy is not None:
                _pump(source, copy)

    def pump_once(self) -> None:
        with self._lock:
            for source, copy in self._copies.items():
                _pump(source, copy)

    def start(self) -> LogPump:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-pump", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.pump_once()

    def __enter__(self) -> LogPump:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.pump_once()


def _pump(source: Path, copy: _Copy) -> None:
    try:
        with source.open("rb") as f:
            st = os.fstat(f.fileno())
            if st.st_ino != copy.inode or st.st_size < copy.offset:
                copy.inode, copy.offset = st.st_ino, 0
            if st.st_size == copy.offset:
                return
            f.seek(copy.offset)
            data = f.read(min(st.st_size - copy.offset, _MAX_READ))
    except FileNotFoundError:
        return
    end = data.rfind(b"\n") + 1
    if end == 0:
        return
    with copy.target.open("ab") as out:
        out.write(cri_lines(data[:end]))
    copy.offset += end


def serve_pod_log(api: _Api, pump: LogPump, namespace: str, pod: str, source: Path) -> Path:
    """Make ``source`` (a plain-text file, growing or not) the logs of an existing pod.

    ``pump`` must be running for lines appended later to reach ``kubectl logs -f``.
    Returns the CRI-format copy kwok reads.
    """
    obj = api.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
    if obj is None:
        raise LookupError(f"pod {namespace}/{pod} does not exist")
    target = pump.add(source, source.parent / "cri" / f"{namespace}_{pod}.log")
    api.apply(logs_object(obj, target))
    return target
