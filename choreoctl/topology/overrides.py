"""Helm-style overrides of a topology document: ``-f values.yaml`` and ``--set path=value``.

``-f`` files are deep-merged in order over the document: mappings merge key by key,
anything else (lists included) replaces what was there, and ``null`` deletes the key.
``--set`` takes a dotted path with list indexes, ``spec.planes.data[1].publicVirtualHost``
(``\\.`` for a literal dot in a key), and a value parsed as YAML (``3`` is a number,
``"3"`` a string, ``[a, b]`` a list; text that is not YAML, like ``*.example.com``, and
an empty value stay strings; an empty string means "unset" for optional fields). Index ``n``
may be the list's length to append. Marks follow the values, so a bad value set by an
override is reported at the override, not at the topology file.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from choreoctl.errors import Problem, TopologyError
from choreoctl.topology.yamlsource import Located, Mark, Path, format_path, parse

_SEGMENT = re.compile(r"^((?:[^\[\]\\]|\\.)*)((?:\[\d+\])*)$")


def _replace_marks(base: Located, overlay: Located, path: Path) -> None:
    """Marks under ``path`` now come from ``overlay``."""
    n = len(path)
    for marks, src in ((base.marks, overlay.marks), (base.key_marks, overlay.key_marks)):
        for stale in [p for p in marks if p[:n] == path]:
            del marks[stale]
        marks.update({p: m for p, m in src.items() if p[:n] == path})


def merge_values(base: Located, overlay: Located) -> None:
    """Deep-merge ``overlay`` (a values file) into ``base`` in place."""
    if not isinstance(overlay.data, dict):
        raise TopologyError(
            f"cannot use values file {overlay.origin}",
            hint="a values file is a mapping shaped like the topology document",
            problems=(Problem("expected a mapping at the top level", where=overlay.where(())),),
        )
    _merge_dict(base, base.data, overlay, overlay.data, ())


def _merge_dict(
    base: Located, into: dict[str, Any], overlay: Located, src: dict[str, Any], path: Path
) -> None:
    for key, value in src.items():
        child = (*path, key)
        if value is None:
            into.pop(key, None)
            _replace_marks(base, overlay, child)  # what is now missing was removed here
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            base.marks[child] = overlay.marks.get(child, base.marks.get(child, Mark("")))
            _merge_dict(base, into[key], overlay, value, child)
        else:
            into[key] = value
            _replace_marks(base, overlay, child)


def parse_set(expr: str) -> tuple[Path, str]:
    """Split ``a.b[1].c=value`` into its path and raw value; TopologyError if malformed."""
    key, sep, raw = expr.partition("=")
    while sep and key.endswith("\\"):  # `\=` inside a key
        more, sep, raw = raw.partition("=")
        key = key[:-1] + "=" + more
    bad = TopologyError(
        f"bad --set {expr!r}",
        hint="write --set path=value, e.g. "
        "--set spec.planes.data[0].publicVirtualHost=apps.example.com",
        problems=(Problem("expected path=value with a dotted path", where=f"--set {expr}"),),
    )
    if not sep or not key:
        raise bad
    path: list[str | int] = []
    for segment in re.split(r"(?<!\\)\.", key):
        match = _SEGMENT.match(segment)
        if match is None or not match.group(1):
            raise bad
        path.append(match.group(1).replace("\\.", ".").replace("\\", ""))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return tuple(path), raw


def apply_set(base: Located, expr: str) -> None:
    """Apply one ``--set path=value`` to ``base`` in place."""
    path, raw = parse_set(expr)
    origin = f"--set {expr}"
    located = Located(raw, origin)
    if raw.strip():
        try:
            located = parse(raw, origin)
        except TopologyError:
            pass  # not YAML (`*.apps.example.com`, `[a`): the text itself, as helm does
    value = located.data
    node: Any = base.data
    for depth, part in enumerate(path[:-1]):
        nxt = path[depth + 1]
        node = _step(node, part, {} if isinstance(nxt, str) else [], origin, path[: depth + 1])
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last > len(node):
            _bad_target(origin, path, "a list index at most its length")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    else:
        if not isinstance(node, dict):
            _bad_target(origin, path, "a mapping")
        node[last] = value
    mark = Mark(origin)
    for stale in [p for p in base.marks if p[: len(path)] == path]:
        del base.marks[stale]
    base.marks.update({(*path, *p): mark for p in located.marks})
    base.marks[path] = mark
    base.key_marks[path] = mark


def _step(node: Any, part: str | int, empty: Any, origin: str, path: Path) -> Any:
    """The child ``part`` of ``node``, created as ``empty`` when missing."""
    if isinstance(part, int):
        if not isinstance(node, list) or part > len(node):
            _bad_target(origin, path, "a list index at most its length")
        if part == len(node):
            node.append(empty)
        return node[part]
    if not isinstance(node, dict):
        _bad_target(origin, path, "a mapping")
    if node.get(part) is None:
        node[part] = empty
    return node[part]


def _bad_target(origin: str, path: Path, expected: str) -> NoReturn:
    raise TopologyError(
        f"cannot apply {origin}",
        hint="check the path against `choreoctl topology show NAME -o yaml`",
        problems=(
            Problem(
                "the path does not fit the document",
                where=origin,
                path=format_path(path),
                expected=expected,
            ),
        ),
    )
