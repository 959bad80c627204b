"""Short-lived probe objects in a scratch namespace, removed on every exit path.

Used by the ``--probe`` checks (a LoadBalancer Service, a connectivity Pod). The
namespace is deleted in ``finally``, so a timeout, an error or Ctrl-C (which cancels
the task) leaves nothing behind; the delete itself is shielded from a second cancel.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from choreoctl.errors import ClusterError
from choreoctl.kube.client import KubeClient

SCRATCH_PREFIX = "choreoctl-preflight-"
SCRATCH_LABEL = "choreoctl.dev/preflight-probe"


@asynccontextmanager
async def scratch_namespace(kc: KubeClient) -> AsyncIterator[str]:
    """A fresh namespace ``choreoctl-preflight-<random>``, deleted on exit."""
    name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:8]}"
    try:
        # Inside the try: a cancel can arrive after the server created the namespace
        # but before its answer, and the delete must still happen then.
        await kc.create(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {SCRATCH_LABEL: "true"}},
            }
        )
        yield name
    finally:
        cleanup = asyncio.ensure_future(_delete(kc, name))
        try:
            await asyncio.shield(cleanup)
        except asyncio.CancelledError:
            await cleanup  # a second cancel: still finish the delete before leaving
            raise


async def _delete(kc: KubeClient, name: str) -> None:
    # A create cut off by a cancel may still land after a first delete found nothing,
    # so a miss is retried a few times before giving up.
    try:
        for attempt in range(4):
            if await kc.delete("v1", "Namespace", name):
                return
            await asyncio.sleep(0.25 * (attempt + 1))
    except ClusterError:
        pass  # the probe's own result already says what went wrong with the cluster
