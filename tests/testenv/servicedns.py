"""The test kubelet's DNS: a Service name or outside host name → the loopback port behind it.

A pod's args and env name Services (``cluster-gateway``, ``svc.ns``, ``svc.ns.svc…``), as
cluster DNS would resolve them within the pod's cluster. An agent in another cluster dials
the topology's ``gateway.externalHost``, which real DNS would point at the LoadBalancer.
Here any host that is not a Service name resolves to the one LoadBalancer Service (across
all clusters) that exposes the dialed port and is backed by a process of the kubelet, or
to an explicit ``hosts`` entry.
"""

from __future__ import annotations

import re
from typing import Any

from choreoctl.errors import ChoreoError
from tests.testenv.podspec import Pod

_URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://([A-Za-z0-9.\-]+)(?::(\d+))?")
_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


class ServiceDns:
    """Name resolution over the Services, Deployments and pods the kubelet last read.

    A part of :class:`~tests.testenv.kubelet.Kubelet`, which sets these attributes.
    """

    hosts: dict[str, str]  # external host -> "cluster/namespace/service"
    pods: dict[str, Pod]
    services: dict[str, list[dict[str, Any]]]
    deployments: dict[str, list[dict[str, Any]]]

    def _rewrite_urls(self, pod: Pod, value: str) -> str:
        def repl(m: re.Match[str]) -> str:
            scheme, host, port = m.group(1), m.group(2), m.group(3)
            number = int(port) if port else _DEFAULT_PORTS.get(scheme, 0)
            target = self.resolve(pod.cluster, pod.namespace, host, number)
            if target is None:
                raise ChoreoError(f"cannot resolve {host}:{number} to a running process yet")
            return f"{scheme}://127.0.0.1:{target}"

        if "://" not in value:
            return value
        return _URL.sub(repl, value)

    def resolve(self, cluster: str, namespace: str, host: str, port: int) -> int | None:
        """The loopback port behind ``host:port`` as seen from a pod in ``cluster``."""
        if host in ("127.0.0.1", "localhost"):
            return port
        parts = host.split(".")
        if host in self.hosts:
            c, ns, svc = self.hosts[host].split("/")
            return self._service_port(c, ns, svc, port)
        if len(parts) == 1:
            return self._service_port(cluster, namespace, parts[0], port)
        if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
            return self._service_port(cluster, parts[1], parts[0], port)
        found = [
            hit
            for c, svcs in self.services.items()
            for s in svcs
            if (s.get("spec") or {}).get("type") == "LoadBalancer"
            and (
                hit := self._service_port(
                    c, s["metadata"]["namespace"], s["metadata"]["name"], port
                )
            )
        ]
        return found[0] if len(found) == 1 else None

    def _service_port(self, cluster: str, namespace: str, name: str, port: int) -> int | None:
        svc = next(
            (
                s
                for s in self.services.get(cluster, [])
                if s["metadata"]["name"] == name and s["metadata"]["namespace"] == namespace
            ),
            None,
        )
        if svc is None:
            return None
        sp = next((p for p in svc["spec"].get("ports") or [] if int(p["port"]) == port), None)
        selector = svc["spec"].get("selector") or {}
        if sp is None or not selector:
            return None
        for pod in self.pods.values():
            if pod.cluster != cluster or pod.namespace != namespace:
                continue
            deploy = next(
                (
                    d
                    for d in self.deployments.get(cluster, [])
                    if d["metadata"]["name"] == pod.name and d["metadata"]["namespace"] == namespace
                ),
                None,
            )
            if deploy is None:
                continue
            labels = deploy["spec"]["template"]["metadata"].get("labels") or {}
            if not all(labels.get(k) == v for k, v in selector.items()):
                continue
            target = sp.get("targetPort", sp["port"])
            if isinstance(target, str) and not target.isdigit():
                container = deploy["spec"]["template"]["spec"]["containers"][0]
                named = {
                    p.get("name"): int(p["containerPort"]) for p in container.get("ports") or []
                }
                target = named.get(target)
            if target is not None and int(target) in pod.ports:
                return pod.ports[int(target)]
        return None
