"""The ``kubelet`` fixture: a test kubelet converging in a background thread during a test.

Registered as a pytest plugin by tests/conftest.py. The test body can call blocking code
(subprocesses, kubectl) while the kubelet keeps converging; every kubelet a test started
is stopped, with its processes, at teardown.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testenv.kubelet import Kubelet
from tests.testenv.podspec import ClusterLike


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
