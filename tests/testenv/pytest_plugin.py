"""pytest fixtures for the real test clusters.

- ``clusters`` (session): alpha (region us, with cert-manager when it is built), beta (eu),
  gamma (apac), started once per session.
- ``cluster`` (session): ``clusters["alpha"]``.
- ``kubeconfig`` (session): path of the merged kubeconfig (contexts alpha, alpha-limited, …).
- ``make_clusters`` (session): ``make_clusters(*specs) -> ClusterSet`` starts extra clusters
  with special options, once per distinct spec tuple, stopped at session end.

Missing binaries fail the tests that need them with the command to run, never a silent skip.
``CHOREOCTL_TESTENV_REUSE=1`` (or a run directory) makes ``clusters`` re-attach to clusters
left running by ``python -m tests.testenv up`` instead of starting its own. On a failed test
that used clusters, the log directory and the log tails of dead processes are attached to
the report; the run directory is kept when any test failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.testenv.binaries import Binaries, cache_root, locate
from tests.testenv.cluster import TestCluster
from tests.testenv.clusterset import ClusterSet, start_clusters
from tests.testenv.errors import ClusterEnvError
from tests.testenv.spec import ClusterSpec, default_specs

REUSE_ENV = "CHOREOCTL_TESTENV_REUSE"
DEFAULT_RUN_DIR_NAME = "run"
_active: list[ClusterSet] = []

MakeClusters = Callable[..., ClusterSet]


def state_dir() -> Path:
    """Where ``python -m tests.testenv up`` keeps its clusters."""
    return cache_root() / DEFAULT_RUN_DIR_NAME


def _fail(message: str) -> NoReturn:
    """Fail the test outside any ``except`` block, so the report shows the message once."""
    pytest.fail(message, pytrace=False)


def _binaries() -> Binaries:
    try:
        return locate()
    except ClusterEnvError as e:
        error = str(e)
    _fail(error)


def _start(specs: list[ClusterSpec]) -> ClusterSet:
    try:
        cs = start_clusters(specs)
    except ClusterEnvError as e:
        error = f"test clusters could not be started:\n{e}"
    else:
        _active.append(cs)
        return cs
    _fail(error)


def _finish(cs: ClusterSet, session: pytest.Session) -> None:
    keep = session.testsfailed > 0
    cs.stop(remove=not keep)
    if cs in _active:
        _active.remove(cs)


@pytest.fixture(scope="session")
def clusters(request: pytest.FixtureRequest) -> Iterator[ClusterSet]:
    reuse = os.environ.get(REUSE_ENV, "")
    if reuse:
        run_dir = state_dir() if reuse == "1" else Path(reuse)
        try:
            cs = ClusterSet.attach(run_dir)
        except ClusterEnvError as e:
            error = f"{REUSE_ENV}={reuse}: {e}"
        else:
            error = ""
            missing = {"alpha", "beta", "gamma"} - set(cs.clusters)
            if missing:
                error = (
                    f"{REUSE_ENV}: {run_dir} lacks clusters {sorted(missing)}; "
                    "run `python -m tests.testenv up --clusters 3`"
                )
        if error:
            _fail(error)
        _active.append(cs)
        yield cs
        _active.remove(cs)
        return
    bins = _binaries()
    cs = _start(default_specs(3, cert_manager_on_first=bins.cert_manager is not None))
    yield cs
    _finish(cs, request.session)


@pytest.fixture(scope="session")
def cluster(clusters: ClusterSet) -> TestCluster:
    return clusters["alpha"]


@pytest.fixture(scope="session")
def kubeconfig(clusters: ClusterSet) -> Path:
    return clusters.kubeconfig


@pytest.fixture(scope="session")
def make_clusters(request: pytest.FixtureRequest) -> Iterator[MakeClusters]:
    started: dict[tuple[ClusterSpec, ...], ClusterSet] = {}

    def make(*specs: ClusterSpec) -> ClusterSet:
        if not specs:
            raise ValueError("make_clusters needs at least one ClusterSpec")
        if specs not in started:
            _binaries()
            started[specs] = _start(list(specs))
        return started[specs]

    yield make
    for cs in started.values():
        _finish(cs, request.session)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    uses = getattr(item, "fixturenames", ())
    if report.failed and _active and any(f in uses for f in ("clusters", "make_clusters")):
        text = "\n".join(cs.failure_report() for cs in _active)
        report.sections.append(("test clusters", text))
    return report
