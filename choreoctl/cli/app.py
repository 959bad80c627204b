"""The ``choreoctl`` entry point: the root command group and the exit path.

The root group is lazy: ``choreoctl --help`` and ``choreoctl <TAB>`` list the commands
from :data:`COMMANDS` without importing a single command module, and running a
command builds only the module that holds it. Building typer's whole command tree
(every signature, every annotation) costs more than the rest of start-up together.
Command modules import only typer and the standard library at module level, so a
command's own ``--help`` never pays for kubernetes, jinja2 or cryptography either.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import typer
import typer.main
from typer import _click
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click.shell_completion import CompletionItem

    from choreoctl.errors import ChoreoError

# Every command, in the order a platform engineer meets them in --help: its name, the
# module whose ``register(app)`` adds it, and the one line --help lists for it (a unit
# test keeps each line equal to the first line of the command's own help).
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("topology", "choreoctl.cli.topology", "Inspect, validate and create topology files."),
    (
        "render",
        "choreoctl.cli.render",
        "Render every plane of a topology into kustomize directories and an install plan.",
    ),
    (
        "preflight",
        "choreoctl.cli.preflight",
        "Check every cluster of a topology before installing it.",
    ),
    (
        "install",
        "choreoctl.cli.install",
        "Install a topology: control plane → trust → observability → data → build.",
    ),
    (
        "upgrade",
        "choreoctl.cli.install",
        "Re-render with this choreoctl version and the (changed) topology, apply, prune.",
    ),
    (
        "diff",
        "choreoctl.cli.install",
        "Show what install (or upgrade) would change, object by object.",
    ),
    (
        "uninstall",
        "choreoctl.cli.install",
        "Remove exactly what the install record lists, in reverse order.",
    ),
    (
        "status",
        "choreoctl.cli.status",
        "Show clusters, planes, agents, CA fingerprints and environments of a topology.",
    ),
    (
        "doctor",
        "choreoctl.cli.doctor",
        "Diagnose an installed topology: agents, planes, environments, trust, workloads.",
    ),
    (
        "trust",
        "choreoctl.cli.trust",
        "Extract, distribute, check and rotate the cluster gateway CA.",
    ),
    ("plane", "choreoctl.cli.plane", "Register, list and unregister planes."),
    ("env", "choreoctl.cli.env", "Create, list and delete Environments."),
    ("gateway", "choreoctl.cli.gateway", "The cluster gateway every plane's agent dials."),
    ("agent", "choreoctl.cli.agent", "The cluster agent that dials the gateway."),
    ("controller", "choreoctl.cli.controller", "The plane status controller."),
    (
        "completion",
        "choreoctl.cli.completion",
        "Print the completion script for bash, zsh or fish.",
    ),
    ("version", "choreoctl.cli.version", "Print the choreoctl version."),
)
_MODULE_OF = {name: module for name, module, _ in COMMANDS}
_HELP_OF = {name: short for name, _, short in COMMANDS}
COMPLETE_VAR = "_CHOREOCTL_COMPLETE"

# Settings every typer app of choreoctl shares. Plain click help (``rich_markup_mode``
# None): typer's rich help path imports rich.markdown, rich.traceback and attrs
# (~100 ms), which would make --help slower than kubectl by far.
_TYPER_SETTINGS: dict[str, Any] = {
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
}


def build_module(module: str) -> dict[str, _click.Command]:
    """The click commands one command module registers, built from its typer app."""
    holder = typer.Typer(**_TYPER_SETTINGS)
    importlib.import_module(module).register(holder)
    _keep_examples_verbatim(holder)
    return dict(typer.main.get_group(holder).commands)


class LazyGroup(TyperGroup):
    """A root group that knows its commands by name and builds one only when used."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(_MODULE_OF)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in self.commands and cmd_name in _MODULE_OF:
            self.commands.update(build_module(_MODULE_OF[cmd_name]))
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        # TyperGroup suggests close matches among the commands built so far (none, here).
        try:
            return self._click_resolve_command(ctx, args)
        except _click.exceptions.UsageError as err:
            matches = difflib.get_close_matches(args[0], list(_MODULE_OF)) if args else []
            if matches:
                suggestions = ", ".join(repr(m) for m in matches)
                err.message = f"{err.message.rstrip('.')}. Did you mean {suggestions}?"
            raise

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in _HELP_OF)
        rows = [(name, make_default_short_help(short, limit)) for name, short in _HELP_OF.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def shell_complete(self, ctx: _click.Context, incomplete: str) -> list[CompletionItem]:
        from typer._click.shell_completion import CompletionItem

        items = [
            CompletionItem(name, help=short)
            for name, short in _HELP_OF.items()
            if name.startswith(incomplete)
        ]
        return items + _click.Command.shell_complete(self, ctx, incomplete)


app = typer.Typer(
    name="choreoctl",
    cls=LazyGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    **_TYPER_SETTINGS,
)


@app.callback()
def _root() -> None:
    """Install and manage a multi-plane internal developer platform (OpenChoreo style)."""


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
    if os.environ.get(COMPLETE_VAR):
        # A <TAB> from the shell: register typer's bash/zsh/fish answer classes.
        from typer._completion_classes import completion_init

        completion_init()
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as err:
        # Imported here, not at the top: --help and <TAB> never need the error tree.
        from choreoctl.errors import ChoreoError

        if isinstance(err, ChoreoError):
            fail(err)
        raise
