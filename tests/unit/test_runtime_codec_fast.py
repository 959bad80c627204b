"""The codec's fast paths give exactly what the plain JSON path gives, and refuse the same.

Large frames skip the JSON scan of their base64 and use the lenient base64 decoder with a
length check; binary chunk frames (choreoctl extension) carry stream data raw.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from choreoctl.runtime import protocol as p

_ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
_payloads = st.binary(max_size=9000) | st.integers(4000, 70000).map(
    lambda n: bytes(n % 251 for n in range(n))
)


@settings(max_examples=150, deadline=None)
@given(_ids, _payloads, st.booleans())
def test_spliced_frames_match_the_json_path(rid: str, data: bytes, chunk: bool) -> None:
    msg: p.Message = (
        p.Chunk(rid, data)
        if chunk
        else p.Response(rid, 200, {"Content-Type": ["application/json"]}, data)
    )
    text = p.encode(msg)
    assert p.decode(text) == msg
    # OpenChoreo's (Go's) layout puts the byte field elsewhere: the JSON path parses it
    d = json.loads(text)
    key = "data" if chunk else "body"
    reordered = json.dumps({key: d.pop(key, ""), **d})
    assert p.decode(reordered) == msg


def _big(key: str, value: str) -> str:
    return '{"requestID":"r1","statusCode":200,"' + key + '":"' + value + '"}'


def test_escaped_base64_goes_through_the_json_parser() -> None:
    raw = bytes(range(256)) * 40
    b64 = base64.b64encode(raw).decode().replace("/", "\\/")  # legal JSON for "/"
    assert "\\/" in b64
    msg = p.decode(_big("body", b64))
    assert isinstance(msg, p.Response) and msg.body == raw


@pytest.mark.parametrize(
    "value",
    [
        "QUJD" * 2000 + "-_-_",  # URL-safe alphabet is not OpenChoreo's
        "QUJD" * 1000 + "QQ==" + "QUJD" * 1000,  # padding in the middle
        "QUJD" * 2000 + "QUJ",  # not a multiple of 4
        "QUJD" * 1000 + " \n  " + "QUJD" * 1000,  # whitespace
        "QUJD" * 2000 + "QUJ\u00e9",  # not ASCII
    ],
)
def test_invalid_base64_in_a_large_frame_is_refused(value: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode(_big("body", value))


def test_a_nested_data_key_is_not_mistaken_for_the_payload() -> None:
    inner = "QUJD" * 2000
    text = '{"requestID":"r1","statusCode":200,"x":{"data":"' + inner + '"}}'
    msg = p.decode(text)
    assert isinstance(msg, p.Response) and msg.body == b""
    with pytest.raises(p.ProtocolError):
        p.decode('{,"data":"' + inner + '"}')  # not JSON, even if the tail looks right


@given(_ids, st.binary(max_size=5000))
def test_binary_chunks_round_trip(rid: str, data: bytes) -> None:
    assert p.decode_binary(p.encode_binary(p.Chunk(rid, data))) == p.Chunk(rid, data)


@pytest.mark.parametrize(
    "frame", [b"", b"\x00abc", b"\x05ab", b"\x02\xff\xfe", b"\xc8" + b"x" * 300]
)
def test_malformed_binary_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode_binary(frame)


@given(st.binary(max_size=300))
def test_fuzz_binary_frames_only_raise_protocol_error(frame: bytes) -> None:
    try:
        chunk = p.decode_binary(frame)
    except p.ProtocolError:
        return
    assert 1 + len(chunk.request_id) + len(chunk.data) == len(frame)
