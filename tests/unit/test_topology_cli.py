"""``choreoctl topology list|show|validate|init`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from choreoctl.cli.topology import wizard
from choreoctl.errors import InputError
from choreoctl.topology.loader import load_topology
from choreoctl.topology.model import PlaneKind, TopologyType
from choreoctl.topology.scaffold import InitAnswers, write_topology

CORPUS = Path(__file__).parent.parent / "corpus" / "topologies"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "choreoctl", "topology", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={"NO_COLOR": "1", "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_list_json() -> None:
    proc = run("list", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == ["multi-cluster", "multi-region", "single-cluster"]
    assert all(r["description"] for r in rows)


def test_show_yaml_is_a_valid_topology(tmp_path: Path) -> None:
    proc = run(
        "show",
        "multi-region",
        "--set",
        "spec.planes.data[0].publicVirtualHost=west.example.com",
        "-o",
        "yaml",
    )
    assert proc.returncode == 0, proc.stderr
    doc = tmp_path / "shown.yaml"
    doc.write_text(proc.stdout)
    data = load_topology(str(doc)).planes_of(PlaneKind.data)[0]
    assert data.public_virtual_host == "west.example.com"


def test_show_table() -> None:
    proc = run("show", "single-cluster")
    assert proc.returncode == 0, proc.stderr
    assert "observability/default" in proc.stdout
    assert "console.openchoreo.localhost" in proc.stdout


def test_validate_ok() -> None:
    proc = run("validate", "multi-region")
    assert proc.returncode == 0, proc.stderr
    assert "valid multi-region topology, 6 planes in 6 cluster(s)" in proc.stdout


def test_validate_prints_every_problem_and_exits_2() -> None:
    path = CORPUS / "duplicate-public-virtual-host.yaml"
    proc = run("validate", str(path), "--set", "spec.gateway.port=x")
    assert proc.returncode == 2
    assert "2 problem(s)" in proc.stderr
    assert f"{path}:29:28" in proc.stderr
    assert "--set spec.gateway.port=x: spec.gateway.port: found a string" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "name", ["alias-bomb.yaml", "invalid-utf8.yaml", "python-tag.yaml", "empty.yaml"]
)
def test_broken_files_exit_2_without_traceback(name: str) -> None:
    proc = run("validate", str(CORPUS / name))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(CORPUS / name) in proc.stderr


def test_init_non_interactive(tmp_path: Path) -> None:
    out = tmp_path / "t.yaml"
    args = (
        "init",
        "--type",
        "multi-region",
        "--domain",
        "acme.io",
        "--context-prefix",
        "gke-",
        "--output",
        str(out),
        "--no-input",
    )
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    t = load_topology(str(out))
    assert t.type is TopologyType.multi_region
    assert [c.context for c in t.clusters][:2] == ["gke-control", "gke-data-us"]
    assert t.plane("eu").public_virtual_host == "eu.apps.acme.io"
    again = run(*args)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert run(*args, "--force").returncode == 0


def test_init_without_a_terminal_needs_flags(tmp_path: Path) -> None:
    proc = run("init", "--type", "single-cluster", cwd=tmp_path)
    assert proc.returncode == 2
    assert "missing --domain, --output" in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("kind", list(TopologyType))
@pytest.mark.parametrize(("build", "obs"), [(True, True), (False, False)])
def test_every_scaffold_validates(
    kind: TopologyType, build: bool, obs: bool, tmp_path: Path
) -> None:
    out = tmp_path / "t.yaml"
    write_topology(InitAnswers(kind, "example.org", build=build, observability=obs), str(out))
    t = load_topology(str(out))
    assert bool(t.planes_of(PlaneKind.build)) is build
    assert bool(t.planes_of(PlaneKind.observability)) is obs


def test_scaffold_rejects_bad_answers(tmp_path: Path) -> None:
    answers = InitAnswers(
        TopologyType.multi_region, "localhost", regions=("us-east-1", "us-west-2")
    )
    with pytest.raises(InputError) as info:
        write_topology(answers, str(tmp_path / "t.yaml"))
    assert {p.where for p in info.value.problems} == {"--domain", "--regions"}
    assert not (tmp_path / "t.yaml").exists()


def test_interactive_wizard(tmp_path: Path) -> None:
    keys = (
        "\x1b[B\x1b[B\r"  # type: down, down → multi-region
        "\x15acme.io\r"  # domain: clear the default, type
        "kind-\r"  # context prefix
        "\x15us-east-1,eu-central-1\r"  # regions
        "n"  # build plane? no
        "y"  # observability plane? yes
    )
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        with create_app_session(input=pipe, output=DummyOutput()):
            answers, path = wizard(None, None, str(tmp_path / "t.yaml"))
    assert answers == InitAnswers(
        TopologyType.multi_region,
        "acme.io",
        context_prefix="kind-",
        regions=("us-east-1", "eu-central-1"),
        build=False,
        observability=True,
    )
    write_topology(answers, path)
    doc = yaml.safe_load(Path(path).read_text())
    assert [p["name"] for p in doc["spec"]["planes"]["data"]] == ["us", "eu"]
    assert "build" not in doc["spec"]["planes"]
