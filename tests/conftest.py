"""Shared pytest set-up: the real test clusters come from the testenv plugin."""

import pytest

# kubelet_thread: the `kubelet` fixture that runs choreoctl's own pods as processes.
pytest_plugins = ["tests.testenv.pytest_plugin", "tests.testenv.kubelet_thread"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--update-golden``: rewrite tests/golden/ from the current renderer output."""
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ instead of comparing with them",
    )
