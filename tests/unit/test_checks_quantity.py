"""Quantity parsing and summing, version comparison: the arithmetic of capacity checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from choreoctl.checks.quantity import (
    bytes_of,
    format_bytes,
    format_cpu,
    millicores,
    parse_version,
    pod_requests,
    version_at_least,
)
from choreoctl.errors import InputError


@pytest.mark.parametrize(
    ("text", "mcpu"),
    [
        ("100m", 100),
        ("2", 2000),
        ("0.5", 500),
        ("1500m", 1500),
        ("0", 0),
        (4, 4000),
        ("1e3m", 1000),
    ],
)
def test_cpu_in_millicores(text: str, mcpu: int) -> None:
    assert millicores(text) == mcpu


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("128Mi", 128 * 2**20),
        ("8Gi", 8 * 2**30),
        ("1G", 10**9),
        ("500M", 5 * 10**8),
        ("1024", 1024),
        ("1.5Gi", 3 * 2**29),
        ("1k", 1000),
        ("1Ki", 1024),
    ],
)
def test_memory_in_bytes(text: str, n: int) -> None:
    assert bytes_of(text) == n


@pytest.mark.parametrize("bad", ["", "abc", "1XB", "Mi", "1.2.3"])
def test_bad_quantity_is_input_error(bad: str) -> None:
    with pytest.raises(InputError):
        bytes_of(bad)


@given(st.lists(st.integers(min_value=0, max_value=100_000), max_size=20))
def test_summing_millicores_is_exact(values: list[int]) -> None:
    assert sum(millicores(f"{v}m") for v in values) == sum(values)


def test_formatting_for_people() -> None:
    assert format_cpu(3500) == "3.5"
    assert format_cpu(250) == "250m"
    assert format_cpu(4000) == "4"
    assert format_bytes(8 * 2**30) == "8Gi"
    assert format_bytes(3 * 2**29) == "1.5Gi"
    assert format_bytes(512 * 2**20) == "512Mi"


def test_pod_requests_follow_scheduler_rules() -> None:
    pod = {
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"resources": {"requests": {"cpu": "200m"}}},
                {},
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "32Mi"}}}],
            "overhead": {"cpu": "10m", "memory": "1Mi"},
        }
    }
    # CPU: the init container (1000m) beats the containers' sum (300m); memory the reverse.
    assert pod_requests(pod) == (1010, 65 * 2**20)
    assert pod_requests({"spec": {}}) == (0, 0)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("v1.36.3", (1, 36, 3)),
        ("1.32+", (1, 32, 0)),
        ("v1.12.0-beta.1", (1, 12, 0)),
        ("v1.32.4-dispatcher", (1, 32, 4)),
        ("1.9", (1, 9, 0)),
    ],
)
def test_parse_version(text: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(text) == parsed


def test_version_comparison_is_numeric_not_lexical() -> None:
    assert version_at_least("v1.32.0", "1.32.0")
    assert version_at_least("v1.100.0", "1.32.0")
    assert not version_at_least("v1.9.9", "1.12.0")
    assert not version_at_least("v1.31.9", "1.32.0")
    with pytest.raises(InputError):
        parse_version("latest")
