"""The install command's pure parts: progress lines, JSON events, diffs, option checks."""

from __future__ import annotations

import json

import pytest

from choreoctl.cli.install import _options
from choreoctl.cli.output import OutputFormat
from choreoctl.cli.progress import Progress
from choreoctl.errors import InputError
from choreoctl.install.diff import unified
from choreoctl.install.engine import Event, State
from choreoctl.install.objects import ObjectRef
from choreoctl.topology.loader import load_topology


def test_plain_progress_prints_one_line_per_finished_step(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "1")
    with Progress(OutputFormat.table, "install t") as p:
        p.on_event(Event("control", State.pending, "apply control", "local"))
        p.on_event(Event("control", State.running, "apply control", "local"))
        p.on_event(Event("control", State.running, cluster="local", elapsed=0.1, message="w"))
        p.on_event(
            Event("control", State.done, cluster="local", elapsed=1.25, message="45 applied")
        )
        p.on_event(Event("trust", State.failed, cluster="local", elapsed=0.5, message="boom"))
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "done      control (local) 1.2s: 45 applied",
        "failed    trust (local) 0.5s: boom",
    ]


def test_json_progress_is_one_event_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(OutputFormat.json, "install t") as p:
        p.on_event(
            Event(
                "data-plane/us", State.done, "data-plane us", "data-us", elapsed=2.0, message="ok"
            )
        )
    [line] = capsys.readouterr().out.splitlines()
    event = json.loads(line)
    assert event == {
        "event": "step",
        "step": "data-plane/us",
        "state": "done",
        "title": "data-plane us",
        "cluster": "data-us",
        "plane": "",
        "elapsed": 2.0,
        "message": "ok",
    }


def test_yaml_output_is_refused_for_an_event_stream() -> None:
    with pytest.raises(InputError, match="-o json"), Progress(OutputFormat.yaml, "t"):
        pass


def test_options_reject_unknown_planes_and_bad_timeouts() -> None:
    topo = load_topology("multi-region")
    opts = _options(False, False, 60, False, True, ["eu", "data-plane"], None, topo)
    assert opts.only == ("eu", "data-plane") and not opts.wait_agents
    with pytest.raises(InputError, match="no plane called mars"):
        _options(False, False, 60, False, False, None, ["mars"], topo)
    with pytest.raises(InputError, match="--timeout"):
        _options(False, False, 0, False, False, None, None, topo)


def test_unified_diff_strips_server_fields() -> None:
    ref = ObjectRef("v1", "ConfigMap", "ns", "cfg")
    live = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "resourceVersion": "7", "uid": "u"},
            "data": {"a": "1"}}  # fmt: skip
    want = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "resourceVersion": "8", "uid": "u"},
            "data": {"a": "2"}}  # fmt: skip
    text = unified("local", ref, live, want)
    assert "-  a: '1'" in text and "+  a: '2'" in text
    assert "resourceVersion" not in text
    assert unified("local", ref, live, live) == ""
