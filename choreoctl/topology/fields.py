"""Typed, located reads of a YAML document, collecting every problem instead of stopping.

:class:`Reader` is what the schema uses to pull strings, numbers and mappings out of a
:class:`~choreoctl.topology.yamlsource.Located` document: a wrong type, an unknown field
or a missing one becomes a :class:`~choreoctl.errors.Problem` at the value's
``file:line:column``, and a usable default is returned so reading goes on and the user
sees all problems in one run.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from choreoctl.errors import Problem
from choreoctl.topology.checks import did_you_mean
from choreoctl.topology.yamlsource import Located, Path, format_path

E = TypeVar("E", bound=enum.Enum)
MAX_PROBLEMS = 100  # past this, a file is not a topology; stop spending time on it
Check = Callable[[str], str]

_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def type_name(value: Any) -> str:
    """How a YAML value's type reads in a message."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class Reader:
    """Collects located problems while reading a document."""

    def __init__(self, doc: Located) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.flagged: set[Path] = set()
        self.truncated = False

    def add(
        self,
        path: Path,
        message: str,
        expected: str = "",
        hint: str = "",
        key: bool = False,
        cascade: bool = False,
        flag: Path | None = None,
    ) -> None:
        """Record a problem at ``path``; ``cascade`` ones are dropped under a flagged path.

        ``flag`` is the path whose later problems this one explains (default ``path``).
        """
        if cascade and any(path[:n] in self.flagged for n in range(len(path) + 1)):
            return
        if len(self.problems) >= MAX_PROBLEMS:
            self.truncated = True
            return
        self.flagged.add(path if flag is None else flag)
        self.problems.append(
            Problem(
                message,
                where=self.doc.where(path, key=key),
                path=format_path(path),
                expected=expected,
                hint=hint,
            )
        )

    def obj(
        self, value: Any, path: Path, allowed: Sequence[str], required: Sequence[str] = ()
    ) -> dict[str, Any]:
        """``value`` as a mapping with only ``allowed`` keys and every ``required`` one."""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.add(path, f"found {type_name(value)}", expected="a mapping")
            return {}
        for key in value:
            if len(self.problems) >= MAX_PROBLEMS:
                self.truncated = True
                break
            if key not in allowed:
                self.add(
                    (*path, key),
                    f"unknown field {key!r}",
                    hint=did_you_mean(key, allowed),
                    key=True,
                )
        for key in required:
            if value.get(key) in (None, ""):
                self.add(path, f"missing field {key!r}", expected=f"{key}: …", flag=(*path, key))
        return {k: v for k, v in value.items() if k in allowed}

    def list(self, d: dict[str, Any], path: Path, key: str) -> list[Any]:
        """``d[key]`` as a list (absent → empty)."""
        value = d.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.add((*path, key), f"found {type_name(value)}", expected="a list")
            return []
        return value

    def text(
        self,
        d: dict[str, Any],
        path: Path,
        key: str,
        default: str = "",
        check: Check | None = None,
        expected: str = "",
        hint: str = "",
    ) -> str:
        """``d[key]`` as a string, checked by ``check`` (absent → ``default``)."""
        return self.text_value(d.get(key), (*path, key), default, check, expected, hint)

    def text_value(
        self,
        value: Any,
        path: Path,
        default: str = "",
        check: Check | None = None,
        expected: str = "",
        hint: str = "",
    ) -> str:
        """``value`` (at ``path``) as a checked string."""
        if value is None or value == "":
            return default  # "" unsets, e.g. --set spec.gateway.externalHost=
        if not isinstance(value, str):
            self.add(
                path,
                f"found {type_name(value)} {value!r}",
                expected=expected or "a string",
                hint=f'quote it: "{value}"' if isinstance(value, int | float) else hint,
            )
            return default
        if check is not None:
            problem = check(value)
            if problem:
                self.add(path, f"{value!r} {problem}", expected=expected, hint=hint)
                return default
        return value

    def integer(
        self, d: dict[str, Any], path: Path, key: str, default: int, low: int, high: int
    ) -> int:
        """``d[key]`` as an integer in ``[low, high]``."""
        value = d.get(key)
        if value is None:
            return default
        where = (*path, key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(where, f"found {type_name(value)} {value!r}", expected="an integer")
            return default
        if not low <= value <= high:
            self.add(where, f"{value} is out of range", expected=f"{low}..{high}")
            return default
        return value

    def boolean(self, d: dict[str, Any], path: Path, key: str, default: bool) -> bool:
        """``d[key]`` as true/false."""
        value = d.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add((*path, key), f"found {type_name(value)} {value!r}", expected="true or false")
            return default
        return value

    def choice(self, d: dict[str, Any], path: Path, key: str, kind: type[E], default: E) -> E:
        """``d[key]`` as one of the values of the enum ``kind``."""
        value = d.get(key)
        if value is None:
            return default
        options = [str(m.value) for m in kind]
        for member in kind:
            if member.value == value:
                return member
        self.add(
            (*path, key),
            f"{value!r} is not allowed",
            expected=" | ".join(options),
            hint=did_you_mean(str(value), options),
        )
        return default
