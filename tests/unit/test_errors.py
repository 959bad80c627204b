"""The error contract: every reference has a README section; the CLI shows one screen."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import choreoctl
from choreoctl import errors

ROOT = Path(__file__).resolve().parents[2]


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _references_in_code() -> set[str]:
    refs = {
        cls.__dataclass_fields__["reference"].default
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ChoreoError)
    }
    pattern = re.compile(r'reference\s*=\s*"([a-z][a-z-]*)"')
    for path in Path(choreoctl.__file__).parent.rglob("*.py"):
        refs.update(pattern.findall(path.read_text()))
    return {str(r) for r in refs}


def test_every_error_reference_names_a_readme_section() -> None:
    headings = {
        _slug(line.lstrip("#"))
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("#")
    }
    missing = sorted(_references_in_code() - headings)
    assert not missing, f"error references without a README section: {missing}"


def test_cli_error_is_one_screen_with_reference_hint_and_exit_code(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "choreoctl", "topology", "validate", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error[topology-format]: ")
    assert str(missing) in done.stderr
    assert "\nhint: " in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) < 25
