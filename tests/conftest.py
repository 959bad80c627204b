"""Shared pytest set-up: the real test clusters come from the testenv plugin."""

pytest_plugins = ["tests.testenv.pytest_plugin"]
