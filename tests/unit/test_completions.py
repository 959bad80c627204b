"""Shell completion: the checked-in scripts are current and actually complete."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHELLS = ("bash", "zsh", "fish")


def choreoctl(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "choreoctl"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_checked_in_script_is_current(shell: str) -> None:
    result = choreoctl("completion", shell)
    assert result.returncode == 0, result.stderr
    checked_in = (ROOT / "completions" / f"choreoctl.{shell}").read_text()
    assert result.stdout == checked_in, (
        f"completions/choreoctl.{shell} is stale: "
        f"choreoctl completion {shell} > completions/choreoctl.{shell}"
    )
    assert "_CHOREOCTL_COMPLETE=complete_" + shell in checked_in


def test_unknown_shell_is_bad_input() -> None:
    result = choreoctl("completion", "tcsh")
    assert result.returncode == 2
    assert "tcsh" in result.stderr


def test_completion_request_answers_commands_and_options() -> None:
    words = choreoctl(
        _CHOREOCTL_COMPLETE="complete_bash", COMP_WORDS="choreoctl ren", COMP_CWORD="1"
    )
    assert words.stdout.split() == ["render"]
    opts = choreoctl(
        _CHOREOCTL_COMPLETE="complete_bash", COMP_WORDS="choreoctl render --top", COMP_CWORD="2"
    )
    assert opts.stdout.split() == ["--topology"]
    fish = choreoctl(
        _CHOREOCTL_COMPLETE="complete_fish",
        _TYPER_COMPLETE_FISH_ACTION="get-args",
        _TYPER_COMPLETE_ARGS="choreoctl completion ",
    )
    assert fish.stdout.split() == ["bash", "zsh", "fish"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_script_completes_in_a_real_bash() -> None:
    script = ROOT / "completions" / "choreoctl.bash"
    program = (
        f"source {script}; COMP_WORDS=(choreoctl ren); COMP_CWORD=1; "
        "_choreoctl_completion choreoctl; printf '%s\\n' \"${COMPREPLY[@]}\""
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["render"]


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("choreoctl render --topology m", "3", ["multi-cluster", "multi-region"]),
        ("choreoctl install -t s", "3", ["single-cluster"]),
        ("choreoctl topology show multi-r", "3", ["multi-region"]),
        ("choreoctl status --topology x", "3", []),
    ],
)
def test_topology_values_complete_built_in_names(
    words: str, cword: str, expected: list[str]
) -> None:
    result = choreoctl(_CHOREOCTL_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=cword)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


def test_help_shows_readable_metavars() -> None:
    result = choreoctl("install", "--help")
    assert result.returncode == 0, result.stderr
    for shown in ("--set PATH=VALUE", "-f, --values FILE", "-t, --topology NAME|FILE"):
        assert shown in result.stdout
    assert "list[str]" not in result.stdout
