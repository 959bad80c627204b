"""Built-ins load and round-trip; -f and --set override helm-style."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from choreoctl.errors import TopologyError
from choreoctl.topology import defaults
from choreoctl.topology.builtin import builtin_names, builtin_path
from choreoctl.topology.loader import load_parsed, load_topology, topology_to_dict
from choreoctl.topology.model import PlaneKind, TLSIssuer, TopologyType
from choreoctl.topology.overrides import parse_set


def test_builtin_names() -> None:
    assert builtin_names() == ["multi-cluster", "multi-region", "single-cluster"]
    assert builtin_path("multi-region").is_file()
    with pytest.raises(KeyError):
        builtin_path("nope")


@pytest.mark.parametrize("name", ["single-cluster", "multi-cluster", "multi-region"])
def test_builtin_round_trips(name: str, tmp_path: Path) -> None:
    t = load_topology(name)
    assert t.type.value == name
    doc = tmp_path / "t.yaml"
    doc.write_text(yaml.safe_dump(topology_to_dict(t), sort_keys=False))
    again = load_topology(str(doc))
    assert again == t.__class__(**{**t.__dict__, "source": str(doc)})
    assert load_parsed(name).description


@pytest.mark.parametrize("name", ["single-cluster", "multi-cluster", "multi-region"])
def test_every_plane_has_every_default_component(name: str) -> None:
    for plane in load_topology(name).planes:
        assert plane.components == defaults.COMPONENTS[plane.kind]
        assert plane.namespace == defaults.NAMESPACES[plane.kind]


def test_single_cluster_shape() -> None:
    t = load_topology("single-cluster")
    assert {p.cluster for p in t.planes} == {"local"}
    assert len({p.namespace for p in t.planes}) == 4
    assert t.gateway.external_host == ""


def test_multi_region_shape() -> None:
    t = load_topology("multi-region")
    data = t.planes_of(PlaneKind.data)
    assert [p.public_virtual_host for p in data] == [
        "us.apps.example.com",
        "eu.apps.example.com",
        "apac.apps.example.com",
    ]
    assert len({t.cluster(p.cluster).region for p in data}) == 3
    assert all(p.observability_plane == "default" for p in data)
    assert t.plane("default", PlaneKind.build).observability_plane == "default"


def test_set_paths_types_and_lists() -> None:
    t = load_topology(
        "multi-region",
        sets=[
            "spec.planes.data[1].publicVirtualHost=europe.example.com",
            "spec.planes.observability.components.opensearch.replicas=3",
            "spec.planes.observability.components.opensearch.storage=50Gi",
            "spec.gateway.extraSANs=[gw.example.net, 10.0.0.7]",
            "spec.images.digests.registry\\.example\\.com/openchoreo/choreoctl=sha256:" + "a" * 64,
            "spec.images.tag='1.10'",
            "spec.organization.environments[5]={name: qa, dataPlane: apac, dnsPrefix: qa}",
        ],
    )
    assert t.plane("eu").public_virtual_host == "europe.example.com"
    opensearch = t.plane("default", PlaneKind.observability).component("opensearch")
    assert (opensearch.replicas, opensearch.storage) == (3, "50Gi")
    assert opensearch.resources == defaults.COMPONENTS[PlaneKind.observability][0].resources
    assert t.gateway.extra_sans == ("gw.example.net", "10.0.0.7")
    assert t.images.digests == {"registry.example.com/openchoreo/choreoctl": "sha256:" + "a" * 64}
    assert t.images.tag == "1.10"
    assert t.environments[-1].name == "qa"


def test_set_errors_point_at_the_set() -> None:
    with pytest.raises(TopologyError) as info:
        load_topology("multi-cluster", sets=["spec.gateway.port=http"])
    (problem,) = info.value.problems
    assert problem.where == "--set spec.gateway.port=http"
    assert problem.path == "spec.gateway.port"


@pytest.mark.parametrize(
    "expr", ["novalue", "=x", "a..b=1", "spec.planes.data[9].name=x", "spec.type.x=1"]
)
def test_bad_set(expr: str) -> None:
    with pytest.raises(TopologyError):
        load_topology("multi-cluster", sets=[expr])


def test_parse_set() -> None:
    assert parse_set("a.b[2][0].c\\.d=x=y") == (("a", "b", 2, 0, "c.d"), "x=y")


def test_values_files_deep_merge_in_order(tmp_path: Path) -> None:
    first = tmp_path / "one.yaml"
    first.write_text(
        "spec:\n"
        "  planes:\n"
        "    control:\n"
        "      components:\n"
        "        api: {replicas: 2, resources: {limits: {memory: 1Gi}}}\n"
        "      tls: {issuer: byo, secretName: console-tls}\n"
        "  images: {registry: registry.internal:5000/mirror, pullSecrets: [regcred]}\n"
    )
    second = tmp_path / "two.yaml"
    second.write_text(
        "spec:\n"
        "  planes:\n"
        "    control:\n"
        "      components:\n"
        "        api: {replicas: 3}\n"
        "  trust: {issuer: choreoctl}\n"
    )
    t = load_topology("multi-cluster", [str(first), str(second)])
    api = t.control.component("api")
    assert api.replicas == 3
    assert api.resources.memory_limit == "1Gi"
    assert api.resources.memory_request == "256Mi"
    assert t.control.tls.issuer is TLSIssuer.byo and t.control.tls.secret_name == "console-tls"
    assert t.images.registry == "registry.internal:5000/mirror"
    assert t.images.pull_secrets == ("regcred",)
    assert t.trust_issuer is TLSIssuer.choreoctl
    assert t.type is TopologyType.multi_cluster


def test_values_file_null_deletes_and_errors_point_at_it(tmp_path: Path) -> None:
    values = tmp_path / "v.yaml"
    values.write_text("spec:\n  gateway: null\n  planes:\n    build: {cluster: nowhere}\n")
    with pytest.raises(TopologyError) as info:
        load_topology("multi-cluster", [str(values)])
    lines = {p.message: p.where for p in info.value.problems}
    assert lines["cluster 'nowhere' is not declared in spec.clusters"] == f"{values}:4:22"
    assert lines[next(m for m in lines if "needs an address to dial" in m)] == f"{values}:2:12"


def test_values_file_must_be_a_mapping(tmp_path: Path) -> None:
    values = tmp_path / "v.yaml"
    values.write_text("- a\n")
    with pytest.raises(TopologyError, match="cannot use values file"):
        load_topology("multi-cluster", [str(values)])


def test_byo_files_resolve_relative_to_the_topology(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    for name in ("tls.crt", "tls.key"):
        (tmp_path / "certs" / name).write_text("PEM")
    text = (
        builtin_path("multi-cluster")
        .read_text()
        .replace(
            "        ingestion: logs.example.com\n",
            "        ingestion: logs.example.com\n"
            "      tls: {issuer: byo, certFile: certs/tls.crt, keyFile: certs/tls.key}\n",
        )
    )
    doc = tmp_path / "t.yaml"
    doc.write_text(text)
    tls = load_topology(str(doc)).plane("default", PlaneKind.observability).tls
    assert tls.cert_file == str(tmp_path / "certs" / "tls.crt")
    assert tls.key_file == str(tmp_path / "certs" / "tls.key")


def test_default_environments_and_single_cluster_defaults(tmp_path: Path) -> None:
    doc = tmp_path / "t.yaml"
    doc.write_text(
        "apiVersion: choreoctl.dev/v1alpha1\nkind: Topology\nmetadata: {name: tiny}\n"
        "spec:\n  type: single-cluster\n  clusters: [{name: one, context: kind-one}]\n"
        "  planes:\n"
        "    control: {domains: {console: c.x.io, api: a.x.io, identity: i.x.io}}\n"
        "    data: {domains: {apps: '*.apps.x.io'}}\n"
    )
    t = load_topology(str(doc))
    assert [e.name for e in t.environments] == ["development", "staging", "production"]
    assert {e.data_plane for e in t.environments} == {"default"}
    assert t.plane("default", PlaneKind.data).public_virtual_host == "apps.x.io"
    assert t.plane("default", PlaneKind.data).observability_plane == ""
    assert t.organization == "default-organization"
    assert all(p.cluster == "one" for p in t.planes)


def test_readme_example_validates(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent.parent / "README.md").read_text()
    section = readme.split("## Topology format", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "certs").mkdir()
    for name in ("us.crt", "us.key"):
        (tmp_path / "certs" / name).write_text("PEM")
    doc = tmp_path / "acme.yaml"
    doc.write_text(example)
    t = load_topology(str(doc))
    assert t.name == "acme"
    assert t.control.component("backstage").resources.memory_limit == "3Gi"
    assert t.plane("us").tls.cert_file == str(tmp_path / "certs" / "us.crt")
