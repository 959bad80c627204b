"""The check runner, reports, exit codes, the JSON schema and the people's view."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest

from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    Report,
    Status,
    failed,
    judged,
    passed,
    skipped,
    warned,
)
from choreoctl.checks.runner import Target, in_flight_for, parse_duration, run_targets
from choreoctl.errors import InputError
from choreoctl.topology.loader import load_topology

TOPO = load_topology("single-cluster")


def _check(cid: str, fn, category: Category = Category.cluster, fatal: bool = True) -> Check:
    return Check(cid, category, f"{cid} works", f"fix {cid}", fn, fatal=fatal)


def _ctx(name: str | None = "c1", timeout: float = 2.0) -> CheckContext:
    cluster = TOPO.clusters[0] if name else None
    ctx = CheckContext(TOPO, cluster, None, timeout=timeout)
    return ctx


async def ok(ctx: CheckContext) -> Outcome:
    return passed("fine")


async def bad(ctx: CheckContext) -> Outcome:
    return failed("broken", ["line one"])


async def meh(ctx: CheckContext) -> Outcome:
    return warned("hmm")


async def nope(ctx: CheckContext) -> Outcome:
    return skipped("n/a")


async def test_statuses_order_and_non_fatal_downgrade() -> None:
    checks = [_check("b", bad), _check("a", ok), _check("w", meh), _check("s", nope)]
    soft = _check("soft", bad, Category.tools, fatal=False)
    report = await run_targets("preflight", "t", [Target(_ctx(), checks + [soft])])
    assert [r.check for r in report.results] == ["b", "a", "w", "s", "soft"]
    assert [r.status for r in report.results] == [
        Status.fail,
        Status.ok,
        Status.warn,
        Status.skip,
        Status.warn,
    ]
    assert report.counts() == {"pass": 1, "warn": 2, "fail": 1, "skip": 1}
    assert report.exit_code() == 1


async def test_exit_codes_warnings_and_strict() -> None:
    report = await run_targets("doctor", "t", [Target(_ctx(), [_check("w", meh), _check("a", ok)])])
    assert report.exit_code() == 0
    assert report.exit_code(strict=True) == 1
    clean = await run_targets("doctor", "t", [Target(_ctx(), [_check("a", ok)])])
    assert clean.exit_code(strict=True) == 0


async def test_failed_gate_fails_the_rest_fast_without_running_them() -> None:
    ran: list[str] = []

    async def tracked(ctx: CheckContext) -> Outcome:
        ran.append("x")
        return passed()

    report = await run_targets(
        "preflight",
        "t",
        [Target(_ctx(), [_check("x", tracked), _check("y", tracked)], _check("api", bad))],
    )
    assert ran == []
    assert [r.status for r in report.results] == [Status.fail] * 3
    assert report.results[1].blocked_by == "api"
    assert "unreachable" in report.results[1].reason


async def test_timeout_of_one_check_does_not_stall_the_others() -> None:
    async def hang(ctx: CheckContext) -> Outcome:
        await asyncio.sleep(60)
        return passed()

    start = time.monotonic()
    report = await run_targets(
        "preflight",
        "t",
        [Target(_ctx(timeout=0.3), [_check("hang", hang)]), Target(_ctx("c2"), [_check("a", ok)])],
    )
    assert time.monotonic() - start < 5
    hang_result = next(r for r in report.results if r.check == "hang")
    assert hang_result.status is Status.fail and "timed out after 0.3s" in hang_result.reason


async def test_wait_retries_failing_checks_until_they_pass() -> None:
    calls = {"n": 0}

    async def flaky(ctx: CheckContext) -> Outcome:
        calls["n"] += 1
        return passed("now") if calls["n"] >= 3 else failed("not yet")

    report = await run_targets(
        "doctor",
        "t",
        [Target(_ctx(), [_check("flaky", flaky), _check("a", ok)])],
        wait=5,
        interval=0.05,
    )
    assert report.results[0].status is Status.ok
    assert report.attempts == 3
    assert calls["n"] == 3


async def test_wait_gives_up_at_the_deadline() -> None:
    start = time.monotonic()
    report = await run_targets(
        "doctor", "t", [Target(_ctx(), [_check("b", bad)])], wait=0.5, interval=0.1
    )
    assert report.failed
    assert report.attempts > 1
    assert time.monotonic() - start < 3


async def test_context_cache_computes_once() -> None:
    ctx = _ctx()
    calls = []

    async def make() -> int:
        calls.append(1)
        await asyncio.sleep(0.01)
        return 42

    assert await asyncio.gather(ctx.cached("k", make), ctx.cached("k", make)) == [42, 42]
    assert len(calls) == 1


async def test_json_schema_is_stable() -> None:
    report = await run_targets("preflight", "topo", [Target(_ctx(), [_check("b", bad)])])
    doc = json.loads(json.dumps(report.to_dict()))
    assert list(doc) == [
        "apiVersion",
        "kind",
        "schemaVersion",
        "command",
        "topology",
        "startedAt",
        "durationSeconds",
        "attempts",
        "summary",
        "results",
    ]
    assert doc["schemaVersion"] == 1 and doc["kind"] == "CheckReport"
    assert doc["summary"] == {"pass": 0, "warn": 0, "fail": 1, "skip": 0, "ok": False}
    result = doc["results"][0]
    assert set(result) == {
        "id",
        "category",
        "cluster",
        "status",
        "description",
        "reason",
        "hint",
        "docs",
        "details",
        "durationMs",
        "blockedBy",
    }
    assert result["docs"] == "README.md#check-b"
    assert result["hint"] == "fix b"
    assert result["status"] == "fail"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("2m", 120), ("1m30s", 90), ("1h", 3600), ("5", 5), ("250ms", 0.25)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad_text", ["", "5x", "m", "1m 30s", "-3s"])
def test_bad_duration_is_input_error(bad_text: str) -> None:
    with pytest.raises(InputError):
        parse_duration(bad_text)


@pytest.mark.parametrize(
    ("server", "in_flight"),
    [
        ("https://127.0.0.1:6443", 1),
        ("https://127.0.0.2:6443", 1),
        ("https://[::1]:6443", 1),
        ("https://localhost:6443", 1),
        ("https://10.0.0.5:6443", 2),
        ("https://api.prod.example.com", 2),
        ("https://[2001:db8::1]:6443", 2),
    ],
)
def test_an_api_server_on_this_machine_gets_one_connection(server: str, in_flight: int) -> None:
    assert in_flight_for(server) == in_flight


def test_table_is_plain_text_without_a_terminal() -> None:
    from rich.console import Console

    from choreoctl.checks.framework import Result
    from choreoctl.cli.preflight import draw_report

    report = Report("preflight", "t")
    report.results = [
        Result("api-reachable", Category.cluster, "alpha", Status.ok, "the API answers", "v1.36"),
        Result(
            "node-count",
            Category.nodes,
            "alpha",
            Status.fail,
            "3 nodes",
            "1 node",
            "add nodes",
            "README.md#check-node-count",
            ("n1",),
        ),
        Result(
            "dns",
            Category.dns,
            "",
            Status.warn,
            "names resolve",
            "1 missing",
            "add records",
            "README.md#check-dns",
        ),
    ]
    buf = io.StringIO()
    draw_report(Console(file=buf, width=200), report)
    text = buf.getvalue()
    assert "\x1b[" not in text
    lines = text.splitlines()
    assert lines[0] == "workstation"
    assert "    ‼ names resolve (1 missing)" in lines
    assert "cluster alpha" in lines
    assert "    √ the API answers (v1.36)" in lines
    assert "    × 3 nodes (1 node)" in lines
    assert "        hint: add nodes" in lines
    assert "        see README.md#check-node-count" in lines
    assert lines[-1].startswith("preflight failed: 1 passed, 1 warning(s), 1 failed, 0 skipped")


def test_judged_fails_then_warns_then_passes() -> None:
    out = judged(["a", "b"], ["w"], "fine")
    assert (out.status, out.reason, out.details) == (Status.fail, "a", ("b", "w"))
    out = judged([], ["w1", "w2"], "fine")
    assert (out.status, out.reason, out.details) == (Status.warn, "w1", ("w2",))
    out = judged([], [], "fine")
    assert (out.status, out.reason, out.details) == (Status.ok, "fine", ())
