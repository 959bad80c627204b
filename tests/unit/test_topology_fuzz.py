"""Whatever the input, loading ends in a Topology or a TopologyError: never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from choreoctl.errors import TopologyError
from choreoctl.topology.builtin import builtin_path
from choreoctl.topology.loader import load_topology
from choreoctl.topology.yamlsource import decode, parse

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BASE: dict[str, Any] = yaml.safe_load(builtin_path("multi-region").read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["*.x.example.com", "us", "443", "byo", "shared"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE)[1:]


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    try:
        parse(decode(raw, "fuzz.yaml"), "fuzz.yaml")
    except TopologyError:
        pass


@SETTINGS
@given(st.sampled_from(PATHS), values)
def test_one_field_replaced_by_anything(tmp_path: Path, path: tuple[Any, ...], value: Any) -> None:
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    target = tmp_path / "t.yaml"
    target.write_text(yaml.safe_dump(doc))
    try:
        load_topology(str(target))
    except TopologyError as err:
        assert err.problems
        assert all(p.message and p.where for p in err.problems)
