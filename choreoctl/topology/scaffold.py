"""New topology files for ``choreoctl topology init``, from a handful of answers.

The wizard (or the flags) fill :class:`InitAnswers`; :func:`scaffold` turns them into a
document and :func:`write_topology` writes it only after it loaded and validated, so
``init`` never leaves an invalid file behind.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from choreoctl.errors import InputError, Problem
from choreoctl.topology import checks, defaults
from choreoctl.topology.model import TopologyType

DEFAULT_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1")


@dataclass(frozen=True)
class InitAnswers:
    """What ``init`` asks: the shape, the domain, where the clusters are, which planes."""

    type: TopologyType
    domain: str
    name: str = ""
    context_prefix: str = ""
    regions: tuple[str, ...] = field(default=DEFAULT_REGIONS)
    build: bool = True
    observability: bool = True


def check_answers(a: InitAnswers) -> list[Problem]:
    """Problems with the answers themselves (before any document is built)."""
    problems: list[Problem] = []
    if checks.dns_name(a.domain) or "." not in a.domain:
        problems.append(
            Problem(
                f"{a.domain!r} is not a domain",
                where="--domain",
                expected="a DNS name like example.com",
            )
        )
    if a.name and checks.dns_label(a.name):
        problems.append(Problem(f"{a.name!r} {checks.dns_label(a.name)}", where="--name"))
    if a.type is TopologyType.multi_region:
        if not a.regions:
            problems.append(Problem("no regions", where="--regions", expected="us-east-1,…"))
        for region in a.regions:
            if checks.dns_label(region):
                problems.append(Problem(f"{region!r} is not a region name", where="--regions"))
        if len({_short(r) for r in a.regions}) != len(a.regions):
            problems.append(
                Problem(
                    "regions must differ in their first part",
                    where="--regions",
                    hint="us-east-1 and us-west-2 would both be 'us'; name them distinctly",
                )
            )
    return problems


def _short(region: str) -> str:
    """``eu-west-1`` → ``eu``: the data plane's name and host label in that region."""
    return region.split("-")[0] or region


def scaffold(a: InitAnswers) -> dict[str, Any]:
    """The topology document for ``a`` (validate it with the loader before use)."""
    d = a.domain
    multi = a.type is not TopologyType.single_cluster
    clusters: list[dict[str, Any]] = []
    planes: dict[str, Any] = {}

    def cluster(name: str, region: str = "") -> str:
        entry: dict[str, Any] = {"name": name, "context": f"{a.context_prefix}{name}"}
        if region:
            entry["region"] = region
        clusters.append(entry)
        return name

    home = a.regions[0] if a.type is TopologyType.multi_region and a.regions else ""
    if multi:
        control_cluster = cluster("control", home)
    else:
        control_cluster = cluster("local")
    planes["control"] = {
        "name": "control-plane",
        "cluster": control_cluster,
        "domains": {"console": f"console.{d}", "api": f"api.{d}", "identity": f"identity.{d}"},
    }
    if a.type is TopologyType.multi_region:
        planes["data"] = [
            {
                "name": _short(region),
                "cluster": cluster(f"data-{_short(region)}", region),
                "domains": {"apps": f"*.{_short(region)}.apps.{d}"},
                "publicVirtualHost": f"{_short(region)}.apps.{d}",
            }
            for region in a.regions
        ]
    else:
        planes["data"] = [
            {
                "name": "default",
                "cluster": cluster("data") if multi else control_cluster,
                "domains": {"apps": f"*.apps.{d}"},
                "publicVirtualHost": f"apps.{d}",
            }
        ]
    if a.build:
        planes["build"] = {
            "name": "default",
            "cluster": cluster("build", home) if multi else control_cluster,
        }
    if a.observability:
        planes["observability"] = {
            "name": "default",
            "cluster": cluster("observability", home) if multi else control_cluster,
            "domains": {"ingestion": f"logs.{d}"},
        }
    first = planes["data"][0]["name"]
    spec: dict[str, Any] = {
        "type": a.type.value,
        "clusters": clusters,
        "organization": {
            "name": defaults.DEFAULT_ORGANIZATION,
            "environments": [
                {"name": "development", "dataPlane": first, "dnsPrefix": "dev"},
                {"name": "staging", "dataPlane": first, "dnsPrefix": "stage"},
                {
                    "name": "production",
                    "dataPlane": first,
                    "dnsPrefix": "prod",
                    "isProduction": True,
                },
            ],
        },
    }
    if multi:
        spec["gateway"] = {"externalHost": f"gateway.{d}"}
    spec["planes"] = planes
    return {
        "apiVersion": defaults.API_VERSION,
        "kind": defaults.KIND,
        "metadata": {"name": a.name or a.type.value},
        "spec": spec,
    }


def write_topology(a: InitAnswers, path: str, force: bool = False) -> str:
    """Write the scaffold for ``a`` to ``path`` once it validates; return the text."""
    import yaml

    from choreoctl.topology.loader import load_topology

    problems = check_answers(a)
    if problems:
        raise InputError(
            "cannot create the topology", hint="fix the answers above", problems=tuple(problems)
        )
    if os.path.lexists(path) and not force:
        raise InputError(f"{path} already exists", hint="pass --force to overwrite it")
    header = (
        f"# choreoctl topology ({a.type.value}), written by `choreoctl topology init`.\n"
        '# Field reference: README, section "Topology format".\n'
    )
    text = header + yaml.safe_dump(scaffold(a), sort_keys=False, default_flow_style=False)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".topology-", suffix=".yaml", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}", hint="check the path") from e
    try:
        load_topology(tmp)  # never leave an invalid file behind
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return text
