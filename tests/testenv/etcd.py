"""An etcd for test clusters: one shared by a ClusterSet (a key prefix per cluster) or one
per cluster when a test must be able to kill a single cluster's store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.testenv.kubeapi import wait_for
from tests.testenv.processes import ManagedProcess, free_port

READY_TIMEOUT = 60.0


@dataclass
class Etcd:
    process: ManagedProcess
    client_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @classmethod
    def start(cls, binary: Path, data_dir: Path, log: Path) -> Etcd:
        """Start etcd on two free loopback ports; call ``wait_ready`` before using it."""
        client, peer = free_port(), free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        proc = ManagedProcess(
            "etcd",
            [
                str(binary),
                "--name=default",
                f"--data-dir={data_dir}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                # Test data is thrown away: no fsync, far less disk wait on a shared machine.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
            log,
        )
        proc.start(cwd=data_dir)
        return cls(proc, client)

    def wait_ready(self) -> None:
        def healthy() -> bool:
            r = httpx.get(f"{self.url}/health", timeout=2)
            return r.status_code == 200 and r.json().get("health") == "true"

        wait_for(f"etcd {self.url}/health", healthy, READY_TIMEOUT, self.process.check_running)
