"""The Dockerfile agrees with the charts that run its image (no Docker engine here)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_render import builtin, container, one

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    found = []
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_multi_stage_build_of_the_wheel_into_slim_python_3_11() -> None:
    steps = instructions()
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.11-slim") for f in froms)
    final = steps[[w for w, _ in steps].index("FROM", 1) :]
    runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "pip install /dist/choreoctl-" in runs
    copies = [rest for word, rest in final if word == "COPY"]
    assert copies == ["--from=build /dist/ /dist/"]  # nothing from the source tree


def test_image_user_matches_the_charts_security_context() -> None:
    user = dict(instructions())["USER"]
    uid, _, gid = user.partition(":")
    pod = one(builtin("single-cluster"), "Deployment", "cluster-gateway")["spec"]["template"]
    ctx = pod["spec"]["securityContext"]
    assert (ctx["runAsUser"], ctx["runAsGroup"]) == (int(uid), int(gid)) and int(uid) != 0
    assert container(one(builtin("single-cluster"), "Deployment", "cluster-gateway"), "gateway")[
        "command"
    ] == json.loads(dict(instructions())["ENTRYPOINT"])
