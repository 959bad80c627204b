"""Checks of clusters and installs: the framework, ``preflight`` and ``doctor``."""

from __future__ import annotations

from choreoctl.checks.framework import Category, Check, Report, Result, Status

__all__ = ["Category", "Check", "Report", "Result", "Status"]
