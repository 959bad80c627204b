"""``choreoctl completion bash|zsh|fish``: print the shell completion script.

The scripts call ``choreoctl`` back with ``_CHOREOCTL_COMPLETE=complete_<shell>``; typer
answers that before any command runs. typer's completion classes (click
``ShellComplete`` subclasses) are registered only when such a request comes in (see
``choreoctl.cli.app.main``), so normal runs and ``--help`` do not pay for them.
"""

from __future__ import annotations

import enum
import sys

import typer

PROG_NAME = "choreoctl"


class Shell(enum.StrEnum):
    """Shells with a completion script."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion_script(shell: Shell) -> str:
    """The completion script for ``shell``: it calls choreoctl back on every <TAB>."""
    from typer._click.shell_completion import get_completion_class
    from typer._completion_classes import completion_init

    from choreoctl.cli.app import COMPLETE_VAR, app

    completion_init()
    cls = get_completion_class(shell.value)
    if cls is None:  # completion_init registers all three; a typer change would land here
        raise RuntimeError(f"typer has no completion class for {shell.value}")
    command = typer.main.get_command(app)
    source = cls(command, {}, PROG_NAME, COMPLETE_VAR).source()
    return source.strip("\n") + "\n"


def register(app: typer.Typer) -> None:
    """Add ``completion`` to the app."""

    @app.command()
    def completion(shell: Shell) -> None:
        """Print the completion script for bash, zsh or fish.

        Examples:
            source <(choreoctl completion bash)
            choreoctl completion zsh > "${fpath[1]}/_choreoctl"
            choreoctl completion fish > ~/.config/fish/completions/choreoctl.fish
        """
        sys.stdout.write(completion_script(shell))
