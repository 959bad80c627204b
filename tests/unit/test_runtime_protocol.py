"""Tunnel codec, limits and fuzzing; backoff; Go durations; metrics text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from choreoctl.errors import InputError
from choreoctl.runtime import protocol as p
from choreoctl.runtime.backoff import Backoff
from choreoctl.runtime.config import parse_duration, plane_type
from choreoctl.runtime.metrics import Registry


def test_request_wire_shape_is_openchoreos() -> None:
    req = p.Request(
        "r1",
        "POST",
        "/api/v1/namespaces",
        query="dryRun=All",
        headers={"Content-Type": ["application/json"]},
        body=b"{}",
        gateway_request_id="g1",
    )
    wire = json.loads(p.encode(req))
    assert wire == {
        "requestID": "r1",
        "gatewayRequestID": "g1",
        "target": "k8s",
        "method": "POST",
        "path": "/api/v1/namespaces",
        "query": "dryRun=All",
        "headers": {"Content-Type": ["application/json"]},
        "body": "e30=",
    }
    assert p.decode(p.encode(req)) == req


def test_response_chunk_stream_open_and_credit_round_trip() -> None:
    resp = p.Response("r1", 500, {"X": ["a", "b"]}, b"\x00\xff", p.ErrorInfo("boom", "E1", "d"))
    assert json.loads(p.encode(resp))["error"] == {"message": "boom", "code": "E1", "details": "d"}
    opened = p.Request("r2", "GET", "/api/v1/pods", query="watch=true", stream=True, window=1024)
    wire = json.loads(p.encode(opened))
    assert wire["isUpgrade"] is False and "body" not in wire and wire["window"] == 1024
    for msg in (
        resp,
        opened,
        p.Chunk("r2", b"abc", "s1"),
        p.Chunk("r2", is_close=True),
        p.Credit("r2", 7),
    ):
        assert p.decode(p.encode(msg)) == msg


def test_openchoreo_frames_without_optional_fields_decode() -> None:
    assert p.decode('{"requestID":"x","statusCode":200}') == p.Response("x", 200)
    assert p.decode(
        '{"requestID":"x","target":"k8s","method":"get","path":"/version"}'
    ) == p.Request("x", "GET", "/version")
    # an OpenChoreo agent may answer with a single header value as a string
    assert p.decode('{"requestID":"x","statusCode":200,"headers":{"A":"b"}}').headers == {
        "A": ["b"]
    }


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "[]",
        "null",
        '{"statusCode":200}',
        '{"requestID":"","statusCode":200}',
        '{"requestID":"x","statusCode":99}',
        '{"requestID":"x","statusCode":"200"}',
        '{"requestID":"x","data":"***"}',
        '{"requestID":"x","data":"", "isClose":"yes"}',
        '{"requestID":"x","method":"GET"}',
        '{"requestID":"x","type":"credit","credit":0}',
        '{"requestID":"x","statusCode":200,"headers":{"a":["x\\r\\ny"]}}',
        '{"requestID":"x","statusCode":200,"error":"boom"}',
        '{"requestID":"x"}',
        '{"requestID":"' + "x" * 200 + '","statusCode":200}',
        "[" * 100000,
    ],
)
def test_malformed_frames_raise_protocol_error(frame: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode(frame)


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(p.ProtocolError, match="exceeds"):
        p.decode("x" * (p.MAX_FRAME + 1))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "requestID",
        "statusCode",
        "data",
        "method",
        "path",
        "headers",
        "body",
        "isClose",
        "isUpgrade",
        "type",
        "credit",
        "error",
        "query",
        "target",
        "window",
        "streamId",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=8) | _json)
def test_fuzz_decode_only_raises_protocol_error(value: object) -> None:
    try:
        msg = p.decode(json.dumps(value))
    except p.ProtocolError:
        return
    assert p.decode(p.encode(msg)) == msg  # whatever decodes re-encodes faithfully


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_decode_random_bytes(data: bytes) -> None:
    try:
        p.decode(data)
    except p.ProtocolError:
        pass


def test_backoff_full_jitter_capped_and_reset_after_healthy_period() -> None:
    now = [0.0]
    b = Backoff(base=1.0, cap=8.0, healthy_after=60.0, rng=lambda: 1.0, clock=lambda: now[0])
    assert [b.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.connected()
    now[0] = 10.0
    b.disconnected()  # a short-lived connection does not reset
    assert b.next_delay() == 8.0
    b.connected()
    now[0] = 100.0
    b.disconnected()
    assert b.next_delay() == 1.0
    jittered = Backoff(base=1.0, cap=8.0)
    draws = [jittered.next_delay() for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in draws) and len(set(draws)) > 40


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("250ms", 0.25), ("1h", 3600), ("2", 2), ("1.5s", 1.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "30", "3x", "1m 30s", "-1s", "30s5"])
def test_bad_durations(text: str) -> None:
    if text == "30":
        assert parse_duration(text) == 30
        return
    with pytest.raises(InputError, match="duration"):
        parse_duration(text, "--heartbeat-interval")


def test_plane_type_aliases() -> None:
    assert plane_type("workflowplane") == "buildplane"
    assert plane_type("DataPlane") == "dataplane"
    with pytest.raises(InputError):
        plane_type("controlplane")


def test_metrics_text_format() -> None:
    reg = Registry()
    c = reg.counter("x_total", "X.")
    c.inc(code="200")
    c.inc(2, code="200")
    reg.gauge("g", "G.", lambda: {(("t", 'a"b'),): 1.0})
    h = reg.histogram("lat_seconds", "L.")
    h.observe(0.003)
    h.observe(100)
    text = reg.render()
    assert 'x_total{code="200"} 3' in text
    assert 'g{t="a\\"b"} 1' in text
    assert 'lat_seconds_bucket{le="0.005"} 1' in text and 'lat_seconds_bucket{le="+Inf"} 2' in text
    assert "# TYPE lat_seconds histogram" in text and "lat_seconds_count 2" in text


def test_backoff_brief_window_after_a_restart() -> None:
    now = [0.0]
    b = Backoff(base=1.0, cap=30.0, rng=lambda: 1.0, clock=lambda: now[0])
    for _ in range(10):
        b.next_delay()
    assert b.ceiling() == 30.0
    b.brief(cap=2.0, window=30.0)
    assert [b.next_delay() for _ in range(4)] == [1.0, 2.0, 2.0, 2.0]
    now[0] = 31.0  # the window is over: back to the full exponential ceiling
    assert b.next_delay() == 16.0
