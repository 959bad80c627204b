"""Every check is documented: unique id, a hint, and its README anchor exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from choreoctl.checks import doctor, preflight
from choreoctl.checks.framework import Check

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
ALL = list(preflight.all_checks()) + [c for c in doctor.all_checks() if c.id != "api-reachable"]


def test_ids_are_unique() -> None:
    ids = [c.id for c in ALL]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("check", ALL, ids=lambda c: c.id)
def test_check_has_hint_and_readme_anchor(check: Check) -> None:
    assert check.hint and check.description
    assert check.docs == f"README.md#check-{check.id}"
    assert f'<a id="check-{check.id}"></a>' in README
