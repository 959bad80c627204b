"""Pod logs and exec in the test clusters: kwok serves the test kubelet's processes.

A cluster-agent Deployment run by the test kubelet (a real ``choreoctl agent run`` that
dials a closed port and says so in its JSON log) must show its output through
``kubectl logs`` (API server → kwok's kubelet API → the process's log file), and
``kubectl logs -f`` must stream lines appended to that file while it follows.
``kubectl exec`` into it runs in the pod's directory with the process's environment.
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from choreoctl import pki
from tests.testenv.kubeapi import poll_until
from tests.testenv.processes import free_port

pytestmark = pytest.mark.cluster
LABELS = {"app.kubernetes.io/name": "cluster-agent"}


def agent_objects(ns: str, gateway_port: int) -> list[dict[str, Any]]:
    """A namespace with a cluster-agent Deployment whose gateway is ``gateway_port``."""
    ca = pki.make_ca("logs-test-ca")
    leaf = pki.issue_cert(ca, "agent", client=True)
    files = {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem, "ca.crt": ca.cert_pem}
    container = {
        "name": "agent",
        "image": "choreoctl/choreoctl:test",
        "command": ["choreoctl"],
        "args": [
            "agent",
            "run",
            "--server-url",
            f"wss://127.0.0.1:{gateway_port}/ws",
            "--plane-id",
            "logs-test",
            "--client-cert",
            "/etc/agent/tls.crt",
            "--client-key",
            "/etc/agent/tls.key",
            "--server-ca",
            "/etc/agent/ca.crt",
            "--health-port",
            "0",
        ],
        "volumeMounts": [{"name": "tls", "mountPath": "/etc/agent"}],
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "agent-tls", "namespace": ns},
            "data": {k: base64.b64encode(v).decode() for k, v in files.items()},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "cluster-agent", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "containers": [container],
                        "volumes": [{"name": "tls", "secret": {"secretName": "agent-tls"}}],
                    },
                },
            },
        },
    ]


def running_agent(kl: Any, ns: str) -> dict[str, Any]:
    """The test kubelet's state of the agent process of ``ns``, once it runs."""
    return poll_until(
        "the agent process",
        lambda: next((s for s in kl.state() if s["namespace"] == ns and s["running"]), None),
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


class Follower:
    """``kubectl logs -f`` in the background; lines arrive on a queue (bounded waits)."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, pred: Callable[[str], bool], timeout: float) -> list[str]:
        """Every line read until one matches ``pred``; AssertionError after ``timeout``."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                ended = f"kubectl exited {self.proc.poll()}" if self.proc.poll() is not None else ""
                raise AssertionError(
                    f"no matching line within {timeout}s: {seen[-5:]} {ended}"
                ) from None
            seen.append(line)
            if pred(line):
                return seen

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def agent_ns(cluster: Any) -> Iterator[str]:
    ns = f"logs-{uuid.uuid4().hex[:6]}"
    manifest = {"apiVersion": "v1", "kind": "List", "items": agent_objects(ns, free_port())}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_kubectl_logs_and_follow_show_the_kubelet_process_output(
    cluster: Any, kubelet: Any, agent_ns: str
) -> None:
    ns = agent_ns
    kl = kubelet([cluster])
    state = running_agent(kl, ns)
    log_file = Path(state["log"])

    def logs() -> str:
        done = cluster.kubectl("logs", "-n", ns, "deploy/cluster-agent", check=False)
        return done.stdout if done.returncode == 0 else ""

    # The agent cannot reach its gateway and logs it: real JSON lines, served by kwok.
    text = poll_until(
        "the agent's JSON lines in kubectl logs", lambda: json_lines(logs()) and logs()
    )
    served = json_lines(text)
    written = json_lines(log_file.read_text())
    assert served and all(line in written for line in served)
    assert all(line["msg"] for line in served)

    kubectl = [
        str(cluster.kubectl_path),
        f"--kubeconfig={cluster.kubeconfig}",
        f"--context={cluster.context}",
        "logs",
        "-f",
        "-n",
        ns,
        "deploy/cluster-agent",
    ]
    follower = Follower(kubectl)
    try:
        follower.until(lambda line: '"msg"' in line, 30)  # the existing lines first
        marker = f'{{"level": "info", "msg": "appended-{uuid.uuid4().hex}"}}'
        with log_file.open("a") as f:
            f.write(marker + "\n")
        started = time.monotonic()
        follower.until(lambda line: line == marker, 30)
        assert time.monotonic() - started < 10  # streamed, not found by a re-read
        assert follower.proc.poll() is None  # still following
    finally:
        follower.stop()


def test_kubectl_exec_runs_in_the_pod_directory_with_the_process_environment(
    cluster: Any, kubelet: Any, agent_ns: str
) -> None:
    ns = agent_ns
    kl = kubelet([cluster])
    state = running_agent(kl, ns)
    raw = Path(f"/proc/{state['pid']}/environ").read_bytes().split(b"\0")
    environ = dict(e.decode().split("=", 1) for e in raw if b"=" in e)
    script = 'pwd; echo "$CHOREOCTL_SERVICEACCOUNT_DIR"; cat serviceaccount/namespace'
    exec_argv = ("exec", "-n", ns, "deploy/cluster-agent", "--", "sh", "-c", script)

    def run() -> str:
        done = cluster.kubectl(*exec_argv, check=False, timeout=30)
        return done.stdout if done.returncode == 0 else ""

    out = poll_until("kubectl exec", run, 60).splitlines()
    assert out == [
        str(Path(state["log"]).parent.resolve()),
        environ["CHOREOCTL_SERVICEACCOUNT_DIR"],
        ns,
    ]


def test_pods_without_logs_are_refused_cleanly(cluster: Any) -> None:
    """A pod nothing serves logs for: kwok says so (400), the API server passes it on."""
    ns = f"nologs-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    try:
        cluster.kubectl("run", "plain", "-n", ns, "--image=example/none")
        poll_until(
            "pod Running",
            lambda: (
                cluster.kubectl(
                    "get", "pod", "plain", "-n", ns, "-o", "jsonpath={.status.phase}"
                ).stdout
                == "Running"
            ),
        )
        done = cluster.kubectl("logs", "plain", "-n", ns, check=False)
        assert done.returncode != 0
        assert "no logs found for container" in done.stderr
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
