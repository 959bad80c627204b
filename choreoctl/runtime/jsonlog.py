"""Structured logs: one JSON object per line on stderr, for the runtime processes.

Log collectors (and the tests) parse these lines; extra fields go in with
``log.info("msg", extra={"fields": {...}})``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            data["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(data, default=str)


def setup(level: str = "info") -> None:
    """Send every ``choreoctl`` logger to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("choreoctl")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("aiohttp").addHandler(handler)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


def fields(**kw: Any) -> dict[str, Any]:
    """``extra=`` for a log call: ``log.info("x", extra=fields(planeID=...))``."""
    return {"fields": kw}
