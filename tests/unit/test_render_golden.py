"""Golden files: the rendered built-ins, byte for byte.

Every file of a render is pinned by its sha256 in ``tests/golden/<topology>/SHA256SUMS``;
a few files a reviewer reads in full (the plan, the gateway and agent Deployments, the
RBAC) are kept whole. After an intended chart change, run
``pytest tests/unit/test_render_golden.py --update-golden`` and review the diff.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from choreoctl.render.output import render_files
from tests.unit.test_render import builtin

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FULL: dict[str, tuple[str, ...]] = {
    "multi-region": (
        "plan.yaml",
        "control/control-plane/deployment-cluster-gateway.yaml",
        "control/control-plane/role-cluster-gateway-planes.yaml",
        "control/control-plane/certificate-cluster-gateway-tls.yaml",
        "data-us/data-plane/deployment-cluster-agent.yaml",
        "data-us/data-plane/clusterrole-openchoreo-cluster-agent-openchoreo-data-plane.yaml",
    ),
    "single-cluster": ("plan.yaml",),
}


def _sums(files: dict[str, str]) -> str:
    return "".join(
        f"{hashlib.sha256(text.encode()).hexdigest()}  {path}\n" for path, text in files.items()
    )


@pytest.mark.parametrize("name", sorted(FULL))
def test_render_matches_golden(name: str, request: pytest.FixtureRequest) -> None:
    files = render_files(builtin(name))
    expected: dict[Path, str] = {GOLDEN / name / "SHA256SUMS": _sums(files)}
    for path in FULL[name]:
        expected[GOLDEN / name / "files" / path] = files[path]
    if request.config.getoption("--update-golden", default=False):
        for path, text in expected.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return
    for path, text in expected.items():
        assert path.is_file(), f"{path} missing: run pytest {__file__} --update-golden"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(GOLDEN)} differs from the render; if the change is intended, "
            "run with --update-golden and review the diff"
        )
