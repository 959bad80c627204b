"""What is not a small, readable YAML file is refused at once with a clear problem."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from choreoctl.errors import TopologyError
from choreoctl.topology import yamlsource
from choreoctl.topology.builtin import builtin_path
from choreoctl.topology.loader import load_topology
from choreoctl.topology.overrides import apply_set


def problems(ref: str) -> list[str]:
    with pytest.raises(TopologyError) as info:
        load_topology(ref)
    return [p.line() for p in info.value.problems]


def test_missing_path_suggests_a_builtin() -> None:
    with pytest.raises(TopologyError) as info:
        load_topology("multi-regoin")
    assert "neither a file nor a built-in" in info.value.message
    assert 'did you mean "multi-region"' in info.value.hint


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in problems(str(tmp_path))[0]


def test_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert "is not a regular file" in problems(str(fifo))[0]


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * (yamlsource.MAX_BYTES + 10) + "\n")
    assert "over the 1048576-byte limit" in problems(str(big))[0]


def test_file_under_the_cap_parses_quickly(tmp_path: Path) -> None:
    # Close to the cap, many keys: must finish (libyaml events), then fail on content.
    lines = [f"  k{i}: value {i}" for i in range(40_000)]
    doc = tmp_path / "large.yaml"
    doc.write_text("spec:\n" + "\n".join(lines) + "\n")
    assert doc.stat().st_size < yamlsource.MAX_BYTES
    start = time.monotonic()
    found = problems(str(doc))
    assert time.monotonic() - start < 30  # a hang guard, not a benchmark
    assert any("unknown field 'k0'" in p for p in found)
    assert found[-1].endswith("stopped after 100 problems")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    doc = tmp_path / "secret.yaml"
    doc.write_text("a: 1\n")
    doc.chmod(0)
    assert "cannot read" in problems(str(doc))[0]


def test_path_through_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert "no such file" in problems(str(tmp_path / "f" / "t.yaml"))[0]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    doc = tmp_path / "bom.yaml"
    doc.write_bytes(b"\xef\xbb\xbf" + builtin_path("single-cluster").read_bytes())
    assert load_topology(str(doc)).name == "single-cluster"


def test_aliases_and_merge_keys_within_budget(tmp_path: Path) -> None:
    text = builtin_path("multi-cluster").read_text()
    text = text.replace(
        "    - {name: control, context: control}",
        "    - &c {name: control, context: control}",
    ).replace("    name: default-organization\n", "    <<: {name: acme}\n")
    doc = tmp_path / "alias.yaml"
    doc.write_text(text)
    assert load_topology(str(doc)).organization == "acme"


def test_empty_set_value_is_empty_string() -> None:
    located = yamlsource.parse("a: {b: 1}\n", "x.yaml")
    apply_set(located, "a.c=")
    assert located.data == {"a": {"b": 1, "c": ""}}
