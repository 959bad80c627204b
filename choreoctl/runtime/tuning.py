"""Process-wide allocator tuning for the gateway and agent (large relays).

glibc serves an allocation above its mmap threshold (128 KiB, raised dynamically up to
the largest block freed so far) with a fresh ``mmap`` and gives it back with ``munmap``;
it also trims the heap top once more than twice that threshold is free. A relayed
megabyte passes through several such buffers (socket reads, WebSocket frames, TLS
records), so every one of them was faulted in page by page and zeroed by the kernel:
half the agent's CPU on a 5 MiB read was page faults (``perf``; README "Benchmarks").
Fixed thresholds keep those blocks in the heap for reuse. Memory of idle connections is
unaffected (they hold no large buffers); at most ``TRIM_THRESHOLD`` of freed heap stays
mapped.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger("choreoctl.runtime")

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's own ceiling for the dynamic threshold
TRIM_THRESHOLD = 64 * 1024 * 1024
_applied = False


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds once per process; False where there is no
    glibc (musl, macOS), which is harmless: only speed depends on it."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not ok:
        log.debug("mallopt refused the allocator thresholds")
    _applied = ok
    return ok
