"""The built-in topologies shipped in the wheel (``choreoctl/_data/topologies``).

They are found through importlib.resources, never relative to the source tree, so an
installed wheel run from any directory finds them. In the source tree
``choreoctl/_data/topologies`` is a symlink to the top-level ``topologies/``.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

SUFFIX = ".yaml"


def _directory() -> Traversable:
    return resources.files("choreoctl") / "_data" / "topologies"


def builtin_names() -> list[str]:
    """Names of the built-in topologies, sorted (``multi-cluster``, …)."""
    folder = _directory()
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in folder.iterdir() if p.name.endswith(SUFFIX))


def builtin_path(name: str) -> Path:
    """The file of built-in topology ``name``; KeyError if there is no such built-in."""
    if name not in builtin_names():
        raise KeyError(name)
    # The package is installed as files (wheel or editable), so this is a real path.
    return Path(str(_directory() / f"{name}{SUFFIX}"))
