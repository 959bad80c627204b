"""The ``choreoctl`` entry point: builds the typer app and owns the exit path.

Command modules are imported here and each adds its commands through ``register``.
They import only typer and the standard library at module level, so ``--help`` and
shell completion never pay for kubernetes, jinja2 or cryptography.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

import typer

from choreoctl.errors import ChoreoError

# One module per command group, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "choreoctl.cli.version",
    "choreoctl.cli.preflight",
    "choreoctl.cli.doctor",
    "choreoctl.cli.render",
    "choreoctl.cli.install",
    "choreoctl.cli.topology",
    "choreoctl.cli.trust",
    "choreoctl.cli.plane",
    "choreoctl.cli.env",
    "choreoctl.cli.status",
    "choreoctl.cli.completion",
    "choreoctl.cli.gateway",
    "choreoctl.cli.agent",
    "choreoctl.cli.controller",
)

app = typer.Typer(
    name="choreoctl",
    help="Install and manage a multi-plane internal developer platform (OpenChoreo style).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """Install and manage a multi-plane internal developer platform (OpenChoreo style)."""


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def fail(err: ChoreoError) -> NoReturn:
    """Print the one-screen error for ``err`` on stderr and exit with its code."""
    from choreoctl.cli.output import print_error

    print_error(err)
    sys.exit(err.exit_code)


def main() -> None:
    """Console-script entry: run the app, turn ChoreoError into an error screen."""
    _register_commands()
    try:
        app()
    except ChoreoError as err:
        fail(err)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
