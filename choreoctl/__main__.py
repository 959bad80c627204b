"""``python -m choreoctl`` runs the CLI, as the container image does."""

from choreoctl.cli.app import main

main()
