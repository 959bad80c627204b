"""The built wheel, installed non-editable into a fresh venv, renders from anywhere.

Dependencies are not downloaded: the fresh venv sees the test venv's site-packages
through a ``.pth`` line, so only choreoctl itself comes from the wheel (checked by its
``__file__``) and the test runs offline. ``.pth`` files inside the borrowed directory are
not processed, so the project's editable install does not leak in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        dist,
        ROOT,
        cwd=ROOT,
    )
    (found,) = dist.glob("choreoctl-*.whl")
    return found


def test_wheel_carries_templates_and_topologies(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    crds = [n for n in names if n.startswith("choreoctl/_data/templates/crds/")]
    assert len(crds) == 5
    for chart in ("control-plane", "data-plane", "build-plane", "observability-plane"):
        assert any(n.startswith(f"choreoctl/_data/templates/{chart}/") for n in names), chart
    for topology in ("single-cluster", "multi-cluster", "multi-region"):
        assert f"choreoctl/_data/topologies/{topology}.yaml" in names


def test_installed_wheel_renders_multi_region_from_another_directory(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = run(
        py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    ).strip()
    (Path(purelib) / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        py,
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=tmp_path,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = run(py, "-c", "import choreoctl; print(choreoctl.__file__)", cwd=elsewhere, env=env)
    assert where.startswith(str(env_dir)), where
    choreoctl = env_dir / "bin" / "choreoctl"
    run(
        choreoctl,
        "render",
        "--topology",
        "multi-region",
        "--output-dir",
        "out",
        cwd=elsewhere,
        env=env,
    )
    out = elsewhere / "out"
    assert (out / "plan.yaml").is_file()
    assert len(list((out / "control" / "crds").glob("customresourcedefinition-*.yaml"))) == 5

    # The same files as a render from the source tree.
    reference = tmp_path / "reference"
    run(
        sys.executable, "-m", "choreoctl", "render", "-t", "multi-region", "-d", reference, cwd=ROOT
    )
    assert tree(out) == tree(reference)
