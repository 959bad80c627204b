"""Fixtures shared by several unit-test modules.

``env``: a gateway with a fake Kubernetes API and an agent executor (see gateway_harness.py),
used by the test_runtime_gateway_* modules.
"""

from __future__ import annotations

from tests.unit.gateway_harness import env

__all__ = ["env"]
