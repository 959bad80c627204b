"""The lazy root group: its command table matches the commands the modules build."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from choreoctl.cli.app import COMMANDS, build_module

CHOREOCTL = str(Path(sys.executable).parent / "choreoctl")


def choreoctl(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHOREOCTL, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_every_module_builds_exactly_the_commands_the_table_names() -> None:
    names_of: dict[str, set[str]] = defaultdict(set)
    for name, module, _ in COMMANDS:
        names_of[module].add(name)
    for module, names in names_of.items():
        assert set(build_module(module)) == names, module


@pytest.mark.parametrize(("name", "module", "short"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_table_line_is_the_commands_own_first_help_line(name: str, module: str, short: str) -> None:
    command = build_module(module)[name]
    assert command.get_short_help_str(limit=1000) == short


def test_root_help_lists_every_command_without_importing_one() -> None:
    probe = (
        "import sys\n"
        "from choreoctl.cli.app import main\n"
        "sys.argv = ['choreoctl', '--help']\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('choreoctl.cli.') "
        "and m != 'choreoctl.cli.app')\n"
        "print('LOADED', loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for name, _, _ in COMMANDS:
        assert f"\n  {name} " in out, name
    assert "LOADED []" in out


def test_completion_of_the_root_lists_commands_with_their_help() -> None:
    result = choreoctl(
        _CHOREOCTL_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="choreoctl up", COMP_CWORD="1"
    )
    assert result.returncode == 0, result.stderr
    assert '"upgrade":"Re-render with this choreoctl version' in result.stdout
    assert "uninstall" not in result.stdout


def test_a_mistyped_command_suggests_the_close_ones() -> None:
    result = choreoctl("instal")
    assert result.returncode == 2
    assert "No such command 'instal'. Did you mean 'install', 'uninstall'?" in result.stderr


def test_a_subcommand_runs_and_its_group_help_works() -> None:
    assert choreoctl("version").stdout.startswith("choreoctl ")
    group_help = choreoctl("trust", "--help")
    assert group_help.returncode == 0
    assert "rotate" in group_help.stdout
