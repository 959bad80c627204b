"""Every broken topology in tests/corpus/topologies fails with its own message and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from choreoctl.errors import TopologyError
from choreoctl.topology.loader import load_topology

CORPUS = Path(__file__).parent.parent / "corpus" / "topologies"
EXPECTED: dict[str, dict[str, object]] = yaml.safe_load((CORPUS / "expected.yaml").read_text())


def test_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "expected.yaml"}
    assert files == set(EXPECTED)
    assert len(files) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file(name: str) -> None:
    path = str(CORPUS / name)
    want = EXPECTED[name]
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    err = info.value
    assert err.exit_code == 2
    assert err.reference == "topology-format"
    hits = [p for p in err.problems if str(want["message"]) in p.message]
    assert hits, [p.line() for p in err.problems]
    if want["line"] is None:
        assert any(p.where == path for p in hits)
    else:
        assert any(p.where.startswith(f"{path}:{want['line']}:") for p in hits), [
            p.where for p in hits
        ]


def test_python_tag_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    doc = tmp_path / "t.yaml"
    doc.write_text(f'a: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(TopologyError):
        load_topology(str(doc))
    assert not marker.exists()
