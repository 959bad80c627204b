"""Safe, bounded, line-aware YAML loading for topology and values files.

Why not ``yaml.safe_load``: validation must name the file, line and column of every
offending value, duplicate keys must be errors (PyYAML keeps the last one silently),
and hostile input (alias bombs, deep nesting, huge files, FIFOs, invalid UTF-8) must
fail fast with a clear message. So this module reads the file itself, takes the parser's
events (libyaml when present) and builds plain data while recording a :class:`Mark` for
every value and key. No tag is ever constructed except the plain YAML scalars.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from choreoctl.errors import Problem, TopologyError

MAX_BYTES = 1024 * 1024  # a real topology is a few KiB
MAX_DEPTH = 40  # the format nests at most 8 levels
MAX_ALIASES = 100
MAX_ALIAS_NODES = 10_000  # nodes an alias may add when expanded (billion-laughs guard)

Path = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_SCALAR_TAGS = {
    _STR,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


@dataclass(frozen=True)
class Mark:
    """A position in an input: file, 1-based line and column."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file


@dataclass
class Located:
    """A YAML document as plain data, plus where each value and each key came from."""

    data: Any
    origin: str
    marks: dict[Path, Mark] = field(default_factory=dict)
    key_marks: dict[Path, Mark] = field(default_factory=dict)

    def where(self, path: Path, key: bool = False) -> str:
        """``file:line:col`` of ``path`` (of its key if ``key``), else of the nearest parent."""
        if key and path in self.key_marks:
            return str(self.key_marks[path])
        for n in range(len(path), -1, -1):
            mark = self.marks.get(path[:n])
            if mark is None:
                continue
            key_mark = self.key_marks.get(path[:n])
            # A block value starts on the line below its key; the key is where to look.
            return str(key_mark if key_mark and key_mark.line != mark.line else mark)
        return self.origin


def format_path(path: Path) -> str:
    """``("spec", "planes", "data", 1, "name")`` → ``spec.planes.data[1].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:python/object`` → ``!!python/object``, as it was written."""
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


def _fail(message: str, where: str, hint: str = "", expected: str = "") -> TopologyError:
    problem = Problem(message, where=where, expected=expected, hint=hint)
    return TopologyError(f"cannot load {where.split(':')[0]}", problems=(problem,))


def read_text(path: str) -> str:
    """The file's text, refusing what is not a small, readable, UTF-8 regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError as e:
        raise _fail("no such file", path, "check the path") from e
    except OSError as e:
        raise _fail(f"cannot read: {e.strerror}", path, "check the path") from e
    if stat.S_ISDIR(info.st_mode):
        raise _fail("is a directory, not a YAML file", path, "name a .yaml file")
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or device would block or never end.
        raise _fail("is not a regular file", path, "name a .yaml file")
    if info.st_size > MAX_BYTES:
        raise _fail(
            f"file is {info.st_size} bytes, over the {MAX_BYTES}-byte limit",
            path,
            "a topology is a few KiB; is this the right file?",
        )
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as e:
        raise _fail(f"cannot read: {e.strerror}", path, "check the file's permissions") from e
    if len(raw) > MAX_BYTES:
        raise _fail(f"file is over the {MAX_BYTES}-byte limit", path)
    return decode(raw, path)


def decode(raw: bytes, name: str) -> str:
    """UTF-8 text of ``raw`` (a BOM is allowed); invalid bytes reported with their offset."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise _fail(
            f"invalid UTF-8 at byte offset {e.start} (byte 0x{raw[e.start]:02x})",
            str(Mark(name, line, column)),
            "save the file as UTF-8",
        ) from e


def parse(text: str, name: str) -> Located:
    """Parse one YAML document into :class:`Located`; every problem raises TopologyError."""
    import yaml

    builder = _Builder(name)
    try:
        data = builder.document(_events(text))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = str(Mark(name, mark.line + 1, mark.column + 1)) if mark else name
        message = " ".join(p for p in (e.context, e.problem) if p) or "invalid YAML"
        hint = "check the indentation and quoting around here"
        lines = text.split("\n")
        if mark and mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]:
            hint = "indent with spaces: YAML does not allow tabs for indentation"
        raise _fail(f"invalid YAML: {message}", where, hint) from e
    except yaml.YAMLError as e:  # reader errors: control characters and the like
        where, message = name, str(e).split("\n")[0]
        position = getattr(e, "position", None)
        if isinstance(position, int):
            line = text.count("\n", 0, position) + 1
            where = str(Mark(name, line, position - (text.rfind("\n", 0, position) + 1) + 1))
        raise _fail(f"invalid YAML: {message}", where, "remove non-printable characters") from e
    if builder.problems:
        raise TopologyError(
            f"cannot load {name}: {len(builder.problems)} problem(s)",
            problems=tuple(builder.problems),
        )
    return Located(data, name, builder.marks, builder.key_marks)


def load_file(path: str) -> Located:
    """Read and parse the YAML file at ``path``."""
    return parse(read_text(path), path)


def _events(text: str) -> Iterator[Any]:
    """Parser events, from libyaml when it is available (about 7x faster)."""
    import yaml

    parser: Any
    try:
        from yaml._yaml import CParser

        parser = CParser(text)
    except ImportError:  # pragma: no cover - PyYAML built without libyaml
        from yaml.parser import Parser
        from yaml.reader import Reader
        from yaml.scanner import Scanner

        class _PyParser(Reader, Scanner, Parser):
            def __init__(self, stream: str) -> None:
                Reader.__init__(self, stream)
                Scanner.__init__(self)
                Parser.__init__(self)

        parser = _PyParser(text)
    try:
        while True:
            event = parser.get_event()
            if event is None:
                return
            yield event
            if isinstance(event, yaml.StreamEndEvent):
                return
    finally:
        if hasattr(parser, "dispose"):
            parser.dispose()


class _Abort(Exception):
    """Stop building: a problem that makes the rest of the document meaningless."""


class _Builder:
    """Builds plain data from parser events, recording marks, refusing unsafe input."""

    def __init__(self, name: str) -> None:
        from yaml.constructor import SafeConstructor
        from yaml.resolver import Resolver

        self.name = name
        self.marks: dict[Path, Mark] = {}
        self.key_marks: dict[Path, Mark] = {}
        self.problems: list[Problem] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.aliases = 0
        self.alias_nodes = 0
        self._resolver = Resolver()
        self._constructor = SafeConstructor()

    def mark(self, ymark: Any) -> Mark:
        return Mark(self.name, ymark.line + 1, ymark.column + 1)

    def problem(self, message: str, ymark: Any, hint: str = "", path: Path = ()) -> None:
        self.problems.append(
            Problem(message, where=str(self.mark(ymark)), path=format_path(path), hint=hint)
        )

    def document(self, events: Iterator[Any]) -> Any:
        import yaml

        next(events)  # StreamStart
        first = next(events)
        if isinstance(first, yaml.StreamEndEvent):
            raise _fail("the file is empty", self.name, "start from `choreoctl topology init`")
        event = next(events)
        if isinstance(event, yaml.ScalarEvent) and event.value == "" and event.implicit[0]:
            raise _fail("the document is empty", str(self.mark(event.start_mark)))
        try:
            data, _ = self.node(event, events, (), 0)
        except _Abort:
            return None
        next(events)  # DocumentEnd
        extra = next(events)
        if not isinstance(extra, yaml.StreamEndEvent):
            self.problem(
                "more than one YAML document in the file",
                extra.start_mark,
                "a topology file holds exactly one document; remove the extra `---`",
            )
        return data

    def node(self, event: Any, events: Iterator[Any], path: Path, depth: int) -> tuple[Any, int]:
        """The value starting at ``event`` and its node count."""
        import yaml

        if depth > MAX_DEPTH:
            self.problem(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            raise _Abort
        if isinstance(event, yaml.AliasEvent):
            return self.alias(event, path)
        self.marks[path] = self.mark(event.start_mark)
        if isinstance(event, yaml.ScalarEvent):
            value, size = self.scalar(event, path), 1
        elif isinstance(event, yaml.SequenceStartEvent):
            value, size = self.sequence(event, events, path, depth)
        else:
            value, size = self.mapping(event, events, path, depth)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, size)
        return value, size

    def alias(self, event: Any, path: Path) -> tuple[Any, int]:
        self.aliases += 1
        self.marks[path] = self.mark(event.start_mark)
        if event.anchor not in self.anchors:
            # Also catches a recursive alias: its anchor is only known once complete.
            self.problem(f"alias *{event.anchor} refers to no complete anchor", event.start_mark)
            raise _Abort
        value, size = self.anchors[event.anchor]
        self.alias_nodes += size
        if self.aliases > MAX_ALIASES or self.alias_nodes > MAX_ALIAS_NODES:
            self.problem(
                f"too many aliases (over {MAX_ALIASES} uses or {MAX_ALIAS_NODES} expanded "
                "nodes); refusing a possible alias bomb",
                event.start_mark,
                "write the values out instead of nesting aliases",
            )
            raise _Abort
        return copy.deepcopy(value), size

    def check_tag(self, event: Any, allowed: str, path: Path) -> bool:
        tag = event.tag
        if tag is None or tag == "!" or tag == allowed:
            return True
        self.problem(
            f"tag {short_tag(tag)} is not allowed",
            event.start_mark,
            "remove the tag; only plain YAML values are accepted",
            path,
        )
        return False

    def scalar(self, event: Any, path: Path) -> Any:
        from yaml.nodes import ScalarNode

        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolver.resolve(ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
            if tag in (_TIMESTAMP_TAG, _MERGE_TAG) or tag not in _SCALAR_TAGS:
                tag = _STR  # dates stay text; `<<` is handled by the mapping
        elif tag not in _SCALAR_TAGS:
            self.problem(
                f"tag {short_tag(tag)} is not allowed",
                event.start_mark,
                "remove the tag; only plain YAML values are accepted",
                path,
            )
            return None
        if tag == _STR:
            return event.value
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark)
        try:
            return self._constructor.construct_object(node)
        except (ValueError, ArithmeticError):
            self.problem(
                f"{event.value!r} is not a valid {tag.rsplit(':', 1)[1]}", event.start_mark
            )
            return None

    def sequence(
        self, event: Any, events: Iterator[Any], path: Path, depth: int
    ) -> tuple[list[Any], int]:
        import yaml

        self.check_tag(event, _SEQ_TAG, path)
        items: list[Any] = []
        size = 1
        for child in events:
            if isinstance(child, yaml.SequenceEndEvent):
                break
            value, n = self.node(child, events, (*path, len(items)), depth + 1)
            items.append(value)
            size += n
        return items, size

    def mapping(
        self, event: Any, events: Iterator[Any], path: Path, depth: int
    ) -> tuple[dict[str, Any], int]:
        import yaml

        self.check_tag(event, _MAP_TAG, path)
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        size = 1
        for key_event in events:
            if isinstance(key_event, yaml.MappingEndEvent):
                break
            key = self.key(key_event, events, path, depth)
            value_event = next(events)
            if key is _MERGE:
                value, n = self.node(value_event, events, (*path, "<<"), depth + 1)
                size += n
                self.merge(merged, value, value_event, path)
                continue
            if key is None:
                self.node(value_event, events, (*path, "?"), depth + 1)
                continue
            child = (*path, key)
            key_mark = self.mark(key_event.start_mark)
            if key in result:
                first = self.key_marks[child]
                self.problem(
                    f"duplicate key {key!r} (first defined at {first})",
                    key_event.start_mark,
                    "keep one of the two",
                    child,
                )
                self.node(value_event, events, (*path, "?"), depth + 1)
                continue
            self.key_marks[child] = key_mark
            result[key], n = self.node(value_event, events, child, depth + 1)
            size += n
        for key, value in merged.items():
            result.setdefault(key, value)
        return result, size

    def key(self, event: Any, events: Iterator[Any], path: Path, depth: int) -> Any:
        """A mapping key: a string, ``_MERGE`` for ``<<``, or None (reported) for others."""
        import yaml

        if isinstance(event, yaml.ScalarEvent):
            if event.tag is None and event.implicit[0] and event.value == "<<":
                return _MERGE
            value = self.scalar(event, path)
            if isinstance(value, str):
                return value
            shown = "null" if value is None else event.value
            self.problem(
                f"key {shown} is not a string",
                event.start_mark,
                f'quote it: "{event.value}"',
                path,
            )
            return None
        self.problem("a key must be a plain string, not a list or mapping", event.start_mark)
        self.node(event, events, (*path, "?"), depth + 1)
        return None

    def merge(self, into: dict[str, Any], value: Any, event: Any, path: Path) -> None:
        """``<<: *anchor`` (or a list of them): keys not set explicitly come from there."""
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                self.problem("`<<` must merge a mapping or a list of mappings", event.start_mark)
                return
            for key, item in source.items():
                into.setdefault(key, item)


_MERGE = object()
