"""The kubectl check runs whatever kubectl is first on PATH and reads its version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from choreoctl.checks.framework import CheckContext, Status
from choreoctl.checks.preflight.local import check_helm, check_kubectl
from choreoctl.topology.loader import load_topology

CTX = CheckContext(load_topology("single-cluster"), None, None, timeout=10)


def _fake_kubectl(tmp_path: Path, version: str, code: int = 0) -> None:
    doc = json.dumps({"clientVersion": {"gitVersion": version}})
    script = tmp_path / "kubectl"
    script.write_text(f"#!/bin/sh\necho '{doc}'\nexit {code}\n")
    script.chmod(0o755)


@pytest.mark.parametrize(
    ("version", "status"),
    [("v1.30.2", Status.fail), ("v1.32.0", Status.ok), ("v1.37.1", Status.ok)],
)
async def test_kubectl_version(tmp_path: Path, monkeypatch, version: str, status: Status) -> None:
    _fake_kubectl(tmp_path, version)
    monkeypatch.setenv("PATH", str(tmp_path))
    out = await check_kubectl(CTX)
    assert out.status is status
    assert version in out.reason


async def test_kubectl_broken_or_missing(tmp_path: Path, monkeypatch) -> None:
    _fake_kubectl(tmp_path, "v1.33.0", code=3)
    monkeypatch.setenv("PATH", str(tmp_path))
    out = await check_kubectl(CTX)
    assert out.status is Status.fail and "exited 3" in out.reason
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr("sys.executable", str(empty / "python"))
    out = await check_kubectl(CTX)
    assert out.status is Status.fail and "not on PATH" in out.reason


async def test_helm_is_skipped_with_the_reason() -> None:
    out = await check_helm(CTX)
    assert out.status is Status.skip and "Helm" in out.reason
