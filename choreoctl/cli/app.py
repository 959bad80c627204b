"""The ``choreoctl`` entry point: builds the typer app and owns the exit path.

Command modules are imported here and each adds its commands through ``register``.
They import only typer and the standard library at module level, so ``--help`` and
shell completion never pay for kubernetes, jinja2 or cryptography.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import NoReturn

import typer

from choreoctl.errors import ChoreoError

# One module per command group, in the order a platform engineer meets them in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "choreoctl.cli.topology",
    "choreoctl.cli.render",
    "choreoctl.cli.preflight",
    "choreoctl.cli.install",
    "choreoctl.cli.status",
    "choreoctl.cli.doctor",
    "choreoctl.cli.trust",
    "choreoctl.cli.plane",
    "choreoctl.cli.env",
    "choreoctl.cli.gateway",
    "choreoctl.cli.agent",
    "choreoctl.cli.controller",
    "choreoctl.cli.completion",
    "choreoctl.cli.version",
)

app = typer.Typer(
    name="choreoctl",
    help="Install and manage a multi-plane internal developer platform (OpenChoreo style).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich help path imports rich.markdown, rich.traceback
    # and attrs (~100 ms), which would make --help slower than kubectl by far.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """Install and manage a multi-plane internal developer platform (OpenChoreo style)."""


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    _keep_examples_verbatim(app)


def _keep_examples_verbatim(group: typer.Typer) -> None:
    """Mark each docstring's ``Examples:`` block so click prints it unwrapped (``\\b``)."""
    for cmd in group.registered_commands:
        doc = cmd.help or inspect.getdoc(cmd.callback) or ""
        cmd.help = doc.replace("\nExamples:\n", "\n\b\nExamples:\n")
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _keep_examples_verbatim(sub.typer_instance)


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
