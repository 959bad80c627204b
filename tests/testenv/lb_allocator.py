"""LoadBalancer address allocator: a tiny cloud controller for one test cluster.

Run as its own process per cluster (``python -m tests.testenv.lb_allocator``), started and
stopped by PID like the cluster's other processes, so it also serves clusters left running by
``python -m tests.testenv up``. It watches Services and gives each ``type: LoadBalancer``
Service without a ``loadBalancerClass`` an ``status.loadBalancer.ingress[0].ip`` from the
cluster's loopback /24 (``--prefix``, e.g. 127.200.17 → 127.200.17.1 … .254), and clears it
again when the type changes. It exits by itself when the API server has been unreachable for
``--give-up`` seconds, so an orphan never spins.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from typing import Any

import httpx


class Allocator:
    def __init__(self, http: httpx.Client, prefix: str) -> None:
        self.http = http
        self.prefix = prefix
        self.used: dict[str, str] = {}  # "ns/name" -> ip

    def _owned(self, ip: str) -> bool:
        return ip.startswith(f"{self.prefix}.")

    def _next_ip(self) -> str | None:
        taken = set(self.used.values())
        for n in range(1, 255):
            ip = f"{self.prefix}.{n}"
            if ip not in taken:
                return ip
        return None

    def _patch(self, svc: dict[str, Any], load_balancer: dict[str, Any]) -> None:
        meta = svc["metadata"]
        r = self.http.patch(
            f"/api/v1/namespaces/{meta['namespace']}/services/{meta['name']}/status",
            json={"status": {"loadBalancer": load_balancer}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if r.status_code >= 400 and r.status_code != 404:
            print(f"patch {meta['namespace']}/{meta['name']}: {r.status_code} {r.text[:200]}")

    def observe(self, kind: str, svc: dict[str, Any]) -> None:
        meta = svc["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        spec = svc.get("spec", {})
        ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []
        ours = [i["ip"] for i in ingress if self._owned(i.get("ip", ""))]
        if kind == "DELETED":
            self.used.pop(key, None)
            return
        wanted = spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")
        if wanted:
            if ours:
                self.used[key] = ours[0]
                return
            if ingress:  # someone else's address: not ours to touch
                return
            ip = self.used.get(key) or self._next_ip()
            if ip is None:
                print(f"{key}: no free address left in {self.prefix}.0/24")
                return
            self.used[key] = ip
            self._patch(svc, {"ingress": [{"ip": ip, "ipMode": "VIP"}]})
            print(f"{key}: assigned {ip}", flush=True)
        elif ours:
            self.used.pop(key, None)
            self._patch(svc, {"ingress": None})
            print(f"{key}: type is {spec.get('type')}, released {ours[0]}", flush=True)

    def run_once(self) -> None:
        """List, then watch until the server ends the watch (timeoutSeconds) or it breaks."""
        r = self.http.get("/api/v1/services")
        r.raise_for_status()
        listed = r.json()
        for svc in listed["items"]:
            self.observe("ADDED", svc)
        rv = listed["metadata"]["resourceVersion"]
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "300"}
        with self.http.stream("GET", "/api/v1/services", params=params, timeout=None) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":  # e.g. 410 Gone: list again
                    return
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    self.observe(event["type"], event["object"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--prefix", required=True, help="first three octets, e.g. 127.200.17")
    parser.add_argument("--give-up", type=float, default=30.0)
    args = parser.parse_args(argv)
    token = open(args.token_file).read().strip()
    http = httpx.Client(
        base_url=args.server,
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=args.ca_file),
        timeout=10,
    )
    allocator = Allocator(http, args.prefix)
    print(f"allocating {args.prefix}.1-254 for LoadBalancer Services on {args.server}", flush=True)
    failing_since: float | None = None
    while True:
        try:
            allocator.run_once()
            failing_since = None
        except (httpx.HTTPError, KeyError, ValueError) as e:
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > args.give_up:
                print(f"API server unreachable for {args.give_up:.0f} s ({e}); exiting", flush=True)
                return 0
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
