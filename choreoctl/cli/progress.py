"""The live view of an install or upgrade: a table on a terminal, lines in CI, JSON events.

``install`` and ``upgrade`` pass :meth:`Progress.on_event` to the engine; what the user
sees depends on ``-o`` and on whether stdout is a terminal (or CI is set).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

from choreoctl.cli.output import OutputFormat, console
from choreoctl.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import RenderableType

    from choreoctl.install.engine import Event

_MARKS = {
    "pending": ("·", "dim"),
    "running": ("…", "cyan"),
    "done": ("✓", "green"),
    "failed": ("×", "red"),
    "cancelled": ("-", "yellow"),
}


def interactive() -> bool:
    """True on a terminal outside CI: live views and prompts are fine."""
    return sys.stdout.isatty() and not os.environ.get("CI")


def json_line(data: Mapping[str, Any]) -> str:
    """One JSON Lines record (the ``-o json`` event stream)."""
    import json

    return json.dumps(data, default=str) + "\n"


class Progress:
    """Shows engine events: live table, plain lines or a JSON stream."""

    def __init__(self, fmt: OutputFormat, title: str) -> None:
        self.fmt = fmt
        self.title = title
        self.steps: dict[str, Event] = {}
        self.started: dict[str, float] = {}
        self.out = console()
        self.live: Any = None

    def __enter__(self) -> Progress:
        if self.fmt is OutputFormat.yaml:
            raise InputError(
                "install and upgrade stream events as they happen: use -o json (one JSON "
                "object per line) or the default table"
            )
        if self.fmt is OutputFormat.table and interactive():
            from rich.live import Live

            self.live = Live(self, console=self.out, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __rich__(self) -> RenderableType:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=self.title, title_justify="left", box=None, pad_edge=False)
        for col in ("", "step", "cluster", "time", ""):
            table.add_column(col, no_wrap=col != "")
        now = time.monotonic()
        for ev in self.steps.values():
            mark, colour = _MARKS[ev.state.value]
            elapsed = ev.elapsed
            if ev.state.value == "running" and ev.step in self.started:
                elapsed = now - self.started[ev.step]
            shown = f"{elapsed:5.1f}s" if ev.state.value != "pending" else ""
            table.add_row(
                f"[{colour}]{mark}[/]",
                escape(ev.title or ev.step),
                escape(ev.cluster),
                shown,
                f"[dim]{escape(ev.message[:100])}[/]",
            )
        return table

    def on_event(self, ev: Event) -> None:
        """Engine callback."""
        if self.fmt is not OutputFormat.table:
            sys.stdout.write(json_line(ev.as_dict()))
            sys.stdout.flush()
            return
        if ev.state.value == "running" and ev.step not in self.started:
            self.started[ev.step] = time.monotonic() - ev.elapsed
        prev = self.steps.get(ev.step)
        if prev is not None and not ev.message and prev.state is ev.state:
            return
        self.steps[ev.step] = ev
        if self.live is not None:
            self.live.refresh()
        elif ev.state.value in ("done", "failed", "cancelled"):
            where = f" ({ev.cluster})" if ev.cluster else ""
            self.out.print(
                f"{ev.state.value:9} {ev.step}{where} {ev.elapsed:.1f}s"
                + (f": {ev.message}" if ev.message else ""),
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
