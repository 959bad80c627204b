"""Writing renders to disk, the install plan, and ``choreoctl render`` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from choreoctl.errors import RenderError
from choreoctl.render import render_topology, write_rendered
from choreoctl.render.output import RECORD
from choreoctl.topology.loader import load_topology
from tests.unit.test_render import builtin


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def run_cli(
    *args: str, cwd: Path | None = None, seed: str = "0"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "NO_COLOR": "1", "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "choreoctl", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_layout_and_kustomizations(tmp_path: Path) -> None:
    summary = write_rendered(builtin("multi-region"), tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            RECORD,
            "plan.yaml",
            "control",
            "data-us",
            "data-eu",
            "data-apac",
            "build",
            "observability",
        ]
    )
    assert sorted(p.name for p in (out / "control").iterdir()) == [
        "control-plane",
        "crds",
        "organization",
    ]
    for d in summary.directories:
        directory = Path(d["path"])
        kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
        files = sorted(p.name for p in directory.iterdir() if p.name != "kustomization.yaml")
        assert sorted(kust["resources"]) == files
        assert len(files) == d["objects"]
        for name in files:  # one object per file
            docs = [d for d in yaml.safe_load_all((directory / name).read_text()) if d]
            assert len(docs) == 1
    assert summary.files == sum(d["objects"] + 1 for d in summary.directories) + 1
    by_cluster = builtin("multi-region").by_cluster()
    assert {c: sorted(dirs) for c, dirs in by_cluster.items()} == {
        d["cluster"]: sorted(
            x["directory"] for x in summary.directories if x["cluster"] == d["cluster"]
        )
        for d in summary.directories
    }


def test_same_input_gives_byte_identical_output_across_processes(tmp_path: Path) -> None:
    for seed in ("1", "2"):
        result = run_cli("render", "-t", "multi-region", "-d", str(tmp_path / seed), seed=seed)
        assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "1") == tree(tmp_path / "2")
    # Rendering again into the same directory changes nothing either.
    before = tree(tmp_path / "1")
    write_rendered(render_topology(load_topology("multi-region")), tmp_path / "1")
    assert tree(tmp_path / "1") == before


def test_rerender_replaces_a_previous_render_without_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_rendered(builtin("multi-region"), out)
    summary = write_rendered(builtin("single-cluster"), out)
    assert summary.replaced_previous
    clusters = {d["cluster"] for d in summary.directories}
    assert {p.name for p in out.iterdir()} == {RECORD, "plan.yaml", *clusters}
    recorded = yaml.safe_load((out / RECORD).read_text())["files"]
    assert set(tree(out)) == {RECORD, *recorded}


def test_refuses_a_non_empty_directory_that_is_not_a_render(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RenderError) as e:
        write_rendered(builtin("single-cluster"), tmp_path)
    assert "--force" in e.value.hint
    assert e.value.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    write_rendered(builtin("single-cluster"), tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "plan.yaml").is_file()


def test_a_tampered_record_cannot_delete_outside_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_rendered(builtin("single-cluster"), out)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    record = yaml.safe_load((out / RECORD).read_text())
    record["files"].append("../victim.txt")
    (out / RECORD).write_text(yaml.safe_dump(record))
    write_rendered(builtin("single-cluster"), out)
    assert victim.read_text() == "keep"


def test_output_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RenderError, match="is not a directory"):
        write_rendered(builtin("single-cluster"), f)


def test_plan_order_and_groups() -> None:
    plan = builtin("multi-region").plan.to_dict()
    steps = plan["steps"]
    phases = [s["phase"] for s in steps]
    assert phases == sorted(phases, key=plan["phases"].index)
    assert [s["name"] for s in steps[:4]] == ["crds", "control-plane", "organization", "trust"]
    groups = [s["group"] for s in steps]
    assert groups == sorted(groups)
    data = [s for s in steps if s["phase"] == "data"]
    assert len(data) == 3 and len({s["group"] for s in data}) == 1
    assert {s["cluster"] for s in data} == {"data-us", "data-eu", "data-apac"}
    assert all(s["register"]["kind"] == "DataPlane" for s in data)
    assert {s["register"]["spec"]["gateway"]["publicVirtualHost"] for s in data} == {
        "us.apps.example.com",
        "eu.apps.example.com",
        "apac.apps.example.com",
    }
    trust = steps[3]
    assert trust["action"] == "distribute-gateway-ca"
    assert len(trust["targets"]) == 5
    obs = next(s for s in steps if s["phase"] == "observability")
    assert obs["register"]["spec"]["observerURL"] == "https://logs.example.com"
    waits = {(w["kind"], w["name"]) for s in steps for w in s.get("wait", [])}
    assert ("Deployment", "cluster-gateway") in waits
    assert ("CustomResourceDefinition", "environments.openchoreo.dev") in waits
    assert ("StatefulSet", "opensearch") in waits


def test_cli_render_prints_a_summary_as_json(tmp_path: Path) -> None:
    result = run_cli(
        "render", "--topology", "single-cluster", "--output-dir", str(tmp_path), "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["topology"] == "single-cluster"
    assert summary["files"] == len(tree(tmp_path)) - 1  # all but the record
    assert Path(summary["plan"]).is_file()


def test_cli_render_error_is_one_screen_with_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    result = run_cli("render", "-t", "single-cluster", "-d", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error[render]:")
    assert "--force" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli("render", "-t", str(tmp_path / "nope.yaml"), "-d", str(tmp_path / "o"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
