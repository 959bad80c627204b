"""Rendering for people and machines: ``-o table|json|yaml``, colours, the error screen.

Every reporting command takes ``-o`` through :data:`OutputOption` and hands its result
(plain data: dicts, lists, strings, numbers) to :func:`emit`, with a function that
draws the table for people. NO_COLOR is honoured by rich itself.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from choreoctl.errors import ChoreoError

if TYPE_CHECKING:
    from rich.console import Console


class OutputFormat(enum.StrEnum):
    """How a reporting command prints its result."""

    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="Output format: table (for people), json or yaml."),
]


def console(stderr: bool = False, soft_wrap: bool = False) -> Console:
    """A rich console for stdout (or stderr); colour only on a terminal and without NO_COLOR."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=soft_wrap)


def dump(data: Any, fmt: OutputFormat) -> str:
    """Serialise plain data as stable JSON or YAML text (keys keep insertion order)."""
    if fmt is OutputFormat.yaml:
        import yaml

        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return json.dumps(data, indent=2, default=str) + "\n"


def emit(data: Any, fmt: OutputFormat, table: Callable[[Console], None] | None = None) -> None:
    """Print ``data`` as JSON/YAML, or call ``table`` to draw it for people."""
    if fmt is OutputFormat.table and table is not None:
        table(console())
        return
    if fmt is OutputFormat.table:
        fmt = OutputFormat.yaml
    sys.stdout.write(dump(data, fmt))


def print_error(err: ChoreoError) -> None:
    """The one-screen error: ``error[reference]: message``, located problems, a hint."""
    from rich.markup import escape

    out = console(stderr=True, soft_wrap=True)  # long paths wrap in the terminal, not mid-word
    out.print(f"[bold red]{escape(f'error[{err.reference}]')}[/]: {escape(err.message)}")
    shown = list(err.problems)[:20]
    for problem in shown:
        out.print(f"  [red]•[/] {escape(problem.line())}")
        if problem.hint:
            out.print(f"      [dim]hint: {escape(problem.hint)}[/]")
    if len(err.problems) > len(shown):
        out.print(f"  … and {len(err.problems) - len(shown)} more")
    if err.hint:
        out.print(f"[bold]hint[/]: {escape(err.hint)}")
