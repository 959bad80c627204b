"""The tunnel protocol between gateway and agent, wire-compatible with OpenChoreo's.

Messages are JSON objects in WebSocket text frames; byte fields are base64. OpenChoreo's
shapes (kept exact, camelCase):

- gateway → agent request: ``{requestID, gatewayRequestID?, target, method, path, query?,
  headers?: {name: [values]}, body?}``
- gateway → agent stream open: the same without body, plus ``isUpgrade`` (and
  ``upgradeProto``)
- agent → gateway response: ``{requestID, statusCode, headers?, body?, error?: {code?,
  message, details?}}``
- chunks, both ways: ``{requestID, data, streamId?, isClose?}``

choreoctl's extension, used only when both ends announced it in the WebSocket handshake
(header ``X-Choreoctl-Tunnel``): a stream open carries ``window`` (bytes the agent may
send before it waits) and the gateway grants more with ``{requestID, type: "credit",
credit}``. With ``X-Choreoctl-Binary-Chunks`` also announced by both, the agent sends
stream data as binary frames (:func:`encode_binary`): no base64 and no JSON for the
bulk of a large read. An OpenChoreo peer never sees these, so its exchange stays
exactly the reference's.

Decoding is strict and bounded: anything malformed raises :class:`ProtocolError`, which
the receiver logs and drops; it never takes a connection down by itself.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass, field
from typing import Any

EXTENSION_HEADER = "X-Choreoctl-Tunnel"
EXTENSION_VERSION = "1"
# Both ends sent it too: stream data may travel as binary frames (see encode_binary).
BINARY_HEADER = "X-Choreoctl-Binary-Chunks"

MAX_REQUEST_BODY = 10 * 1024 * 1024  # the proxy answers 413 above this
MAX_RESPONSE_BODY = 16 * 1024 * 1024  # the agent answers 502 above this; use paging/streams
MAX_FRAME = (MAX_RESPONSE_BODY * 4) // 3 + 256 * 1024  # base64 + JSON envelope
CHUNK_SIZE = 512 * 1024  # largest stream chunk payload (fewer, larger frames cost less CPU)
STREAM_WINDOW = 2 * 1024 * 1024  # bytes in flight per stream before the agent waits
INLINE_BODY = 256 * 1024  # a streamed read larger than this is sent as chunks
# On a stream's status line: chunks follow (absent: the response is complete).
CHUNKED_HEADER = "X-Choreoctl-Chunked"
MAX_ID = 128
MAX_PATH = 8192
MAX_HEADERS = 128
MAX_HEADER_BYTES = 64 * 1024

Headers = dict[str, list[str]]
# json.dumps with separators builds an encoder per call; one shared is ~2x cheaper
_ENCODER = json.JSONEncoder(separators=(",", ":"))


class ProtocolError(ValueError):
    """A frame that is not a valid tunnel message."""


@dataclass
class ErrorInfo:
    """``error`` of a response: what went wrong on the agent side."""

    message: str
    code: str = ""
    details: str = ""


@dataclass
class Request:
    """A request to run on the agent's side; ``stream`` marks OpenChoreo's stream open."""

    request_id: str
    method: str
    path: str
    target: str = "k8s"
    query: str = ""
    headers: Headers = field(default_factory=dict)
    body: bytes = b""
    gateway_request_id: str = ""
    stream: bool = False
    is_upgrade: bool = False
    upgrade_proto: str = ""
    window: int = 0


@dataclass
class Response:
    """The agent's answer (for a stream: the status line before the chunks)."""

    request_id: str
    status_code: int
    headers: Headers = field(default_factory=dict)
    body: bytes = b""
    error: ErrorInfo | None = None


@dataclass
class Chunk:
    """Stream data; ``is_close`` ends (or cancels) the stream from either side.

    ``data`` is a memoryview into the received frame after :func:`decode_binary` (no
    copy of a large chunk); compare and ``len`` it like bytes.
    """

    request_id: str
    data: bytes | memoryview = b""
    stream_id: str = ""
    is_close: bool = False


@dataclass
class Credit:
    """choreoctl extension: the gateway lets the agent send ``credit`` more stream bytes."""

    request_id: str
    credit: int


Message = Request | Response | Chunk | Credit


def is_watch(method: str, path: str, query: str) -> bool:
    """Whether a request is open-ended: ``watch=true``, or ``follow=true`` on a log."""
    if method.upper() != "GET" or ("watch" not in query and "follow" not in query):
        return False  # the common case, without parsing the query
    from urllib.parse import parse_qs

    q = parse_qs(query)
    truthy = ("true", "1")
    if q.get("watch", [""])[-1].lower() in truthy:
        return True
    return path.rstrip("/").endswith("/log") and q.get("follow", [""])[-1].lower() in truthy


def encode_bytes(msg: Message) -> bytes:
    """The UTF-8 JSON text of one message, with OpenChoreo's field names.

    A byte field is spliced in as base64 *last* rather than passed through
    ``json.dumps``, which would scan megabytes that cannot need escaping; the result is
    sent as a text frame as it is, without a round trip through ``str``.
    """
    out: dict[str, Any] = {"requestID": msg.request_id}
    payload: bytes | memoryview = b""
    if isinstance(msg, Request | Response) and msg.body and not getattr(msg, "stream", False):
        payload = msg.body
    elif isinstance(msg, Chunk):
        payload = msg.data
    text = _encode(msg, out, bool(payload)).encode()
    if not payload:
        return text
    key = b',"data":"' if isinstance(msg, Chunk) else b',"body":"'
    return b"".join((text[:-1], key, binascii.b2a_base64(payload, newline=False), b'"}'))


def encode(msg: Message) -> str:
    """:func:`encode_bytes` as ``str``."""
    return encode_bytes(msg).decode()


def _encode(msg: Message, out: dict[str, Any], spliced: bool) -> str:
    if isinstance(msg, Request):
        if msg.gateway_request_id:
            out["gatewayRequestID"] = msg.gateway_request_id
        out.update(target=msg.target, method=msg.method, path=msg.path)
        if msg.query:
            out["query"] = msg.query
        if msg.headers:
            out["headers"] = msg.headers
        if msg.stream:
            out["isUpgrade"] = msg.is_upgrade
            if msg.upgrade_proto:
                out["upgradeProto"] = msg.upgrade_proto
            if msg.window:
                out["window"] = msg.window
    elif isinstance(msg, Response):
        out["statusCode"] = msg.status_code
        if msg.headers:
            out["headers"] = msg.headers
        if msg.error is not None:
            err: dict[str, str] = {"message": msg.error.message}
            if msg.error.code:
                err["code"] = msg.error.code
            if msg.error.details:
                err["details"] = msg.error.details
            out["error"] = err
    elif isinstance(msg, Chunk):
        if not spliced:
            out["data"] = ""
        if msg.stream_id:
            out["streamId"] = msg.stream_id
        if msg.is_close:
            out["isClose"] = True
    else:
        out.update(type="credit", credit=msg.credit)
    return _ENCODER.encode(out)


def _str(d: dict[str, Any], key: str, limit: int, required: bool = False) -> str:
    value = d.get(key)
    if value is None:
        if required:
            raise ProtocolError(f"missing {key}")
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(f"{key} must be a string of at most {limit} characters")
    return value


def _unb64(value: str) -> bytes:
    """Strict base64 at the speed of the lenient decoder (~1.5x faster than
    ``strict_mode``): the lenient one skips characters outside the alphabet, so any such
    character, or padding out of place, shows as a short result."""
    n = len(value)
    if n % 4:
        raise ProtocolError("base64 length is not a multiple of 4")
    pad = 2 if value.endswith("==") else 1 if value.endswith("=") else 0
    try:
        out = binascii.a2b_base64(value)
    except (binascii.Error, ValueError) as e:
        raise ProtocolError(str(e)) from e
    if len(out) != n // 4 * 3 - pad:
        raise ProtocolError("characters outside the base64 alphabet")
    return out


def _bytes(d: dict[str, Any], key: str) -> bytes:
    value = d.get(key)
    if value is None:
        return b""
    if not isinstance(value, str):
        raise ProtocolError(f"{key} must be base64 text")
    try:
        return _unb64(value)
    except ProtocolError as e:
        raise ProtocolError(f"{key} is not valid base64") from e


def _headers(d: dict[str, Any]) -> Headers:
    value = d.get("headers")
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_HEADERS:
        raise ProtocolError(f"headers must be an object of at most {MAX_HEADERS} names")
    out: Headers = {}
    size = 0
    for name, values in value.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ProtocolError(f"header {name!r} must be a list of strings")
        size += len(name) + sum(len(v) for v in values)
        if size > MAX_HEADER_BYTES or any("\n" in v or "\r" in v for v in values):
            raise ProtocolError("headers too large or with line breaks")
        out[name] = list(values)
    return out


def _int(d: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ProtocolError(f"{key} must be an integer in [{lo}, {hi}]")
    return value


def encode_binary(chunk: Chunk) -> bytes:
    """A data chunk as a binary frame (choreoctl extension): one byte holding the length
    of ``requestID``, the ID, the raw data. ``streamId``/``isClose`` need the JSON form."""
    rid = chunk.request_id.encode()
    return b"".join((len(rid).to_bytes(1, "big"), rid, chunk.data))


def decode_binary(frame: bytes) -> Chunk:
    """Parse a binary data frame; :class:`ProtocolError` if it is not one. The data is a
    view into ``frame`` (a relayed megabyte is not copied once more)."""
    if not frame or len(frame) > MAX_FRAME:
        raise ProtocolError("empty or oversized binary frame")
    n = frame[0]
    if not 0 < n <= MAX_ID or len(frame) < 1 + n:
        raise ProtocolError("binary frame without a valid requestID")
    try:
        rid = frame[1 : 1 + n].decode("ascii")
    except UnicodeDecodeError as e:
        raise ProtocolError("requestID must be ASCII") from e
    return Chunk(rid, memoryview(frame)[1 + n :])


_SPLICED = (',"data":"', ',"body":"')


def _split_payload(text: str) -> dict[str, Any] | None:
    """Parse a frame whose last field is ``data`` or ``body`` without JSON-scanning the
    base64 (our own encoder's layout); None when the frame has another layout.

    Sound because base64 holds no ``"`` or ``\\``: the value runs from the last quote
    before the closing ``"}``, and a ``}`` that ends the text closes the top-level object.
    """
    if len(text) < 4096 or not text.endswith('"}'):
        return None
    q = text.rfind('"', 0, len(text) - 2)
    for key in _SPLICED:
        start = q + 1 - len(key)
        if start > 0 and text.startswith(key, start):
            value = text[q + 1 : -2]
            head = text[:start]
            if "\\" in value or head.rstrip().endswith("{"):
                return None  # an escape, or no member before: let the JSON parser decide
            d = json.loads(head + "}")
            if isinstance(d, dict):
                d[key[2:-3]] = value  # the last duplicate wins, as with json.loads
            return d if isinstance(d, dict) else None
    return None


def decode(text: str | bytes) -> Message:
    """Parse one frame into a message; :class:`ProtocolError` if it is not a valid one."""
    if len(text) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(text)} bytes exceeds {MAX_FRAME}")
    try:
        d = _split_payload(text) if isinstance(text, str) else None
        if d is None:
            d = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"not JSON: {e}") from e
    if not isinstance(d, dict):
        raise ProtocolError("a message must be a JSON object")
    rid = _str(d, "requestID", MAX_ID, required=True)
    if not rid:
        raise ProtocolError("requestID is empty")
    if d.get("type") == "credit":
        return Credit(rid, _int(d, "credit", 1, 1 << 40))
    if "data" in d:
        close = d.get("isClose", False)
        if not isinstance(close, bool):
            raise ProtocolError("isClose must be a boolean")
        return Chunk(rid, _bytes(d, "data"), _str(d, "streamId", MAX_ID), close)
    if "statusCode" in d:
        err = d.get("error")
        info = None
        if err is not None:
            if not isinstance(err, dict):
                raise ProtocolError("error must be an object")
            info = ErrorInfo(
                _str(err, "message", 64 * 1024),
                _str(err, "code", 256) if isinstance(err.get("code"), str) else "",
                _str(err, "details", 64 * 1024) if isinstance(err.get("details"), str) else "",
            )
        return Response(rid, _int(d, "statusCode", 100, 599), _headers(d), _bytes(d, "body"), info)
    if "method" in d:
        method = _str(d, "method", 16, required=True).upper()
        path = _str(d, "path", MAX_PATH, required=True)
        stream = "isUpgrade" in d
        upgrade = d.get("isUpgrade", False)
        if not isinstance(upgrade, bool):
            raise ProtocolError("isUpgrade must be a boolean")
        return Request(
            request_id=rid,
            method=method,
            path=path,
            target=_str(d, "target", 64),
            query=_str(d, "query", MAX_PATH),
            headers=_headers(d),
            body=b"" if stream else _bytes(d, "body"),
            gateway_request_id=_str(d, "gatewayRequestID", MAX_ID),
            stream=stream,
            is_upgrade=upgrade,
            upgrade_proto=_str(d, "upgradeProto", 64),
            window=_int(d, "window", 0, 1 << 40) if "window" in d else 0,
        )
    raise ProtocolError("unknown message: no method, statusCode, data or type")
