"""``choreoctl version``."""

from __future__ import annotations

import platform

import typer

from choreoctl import __version__
from choreoctl.cli.output import OutputFormat, OutputOption, emit


def register(app: typer.Typer) -> None:
    """Add ``version`` to the app."""

    @app.command()
    def version(output: OutputOption = OutputFormat.table) -> None:
        """Print the choreoctl version.

        Examples:
            choreoctl version
            choreoctl version -o json
        """
        data = {"choreoctl": __version__, "python": platform.python_version()}
        emit(data, output, lambda c: c.print(f"choreoctl {__version__}"))
