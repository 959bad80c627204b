"""What a user chooses about one install run, checked against the topology."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from choreoctl.errors import InputError
from choreoctl.topology.model import Topology


@dataclass
class InstallOptions:
    """Everything a user can choose about one install run."""

    dry_run: bool = False
    force_conflicts: bool = False
    timeout: float = 300.0  # per wait
    wait: bool = True  # readiness waits (CRD Established before CRs happens regardless)
    wait_agents: bool = True  # plane registration waits for the agent to connect
    only: tuple[str, ...] = ()  # plane names or kinds (data-plane …)
    skip: tuple[str, ...] = ()
    concurrency: int = 16

    @classmethod
    def checked(
        cls,
        topology: Topology,
        *,
        only: Sequence[str] = (),
        skip: Sequence[str] = (),
        timeout: float = 300.0,
        **rest: bool,
    ) -> InstallOptions:
        """Options after checking ``only``/``skip`` name planes and ``timeout`` is sane."""
        known = {n for p in topology.planes for n in (p.name, p.kind.value, p.kind.name)}
        bad = [x for x in (*only, *skip) if x not in known]
        if bad:
            raise InputError(
                f"no plane called {', '.join(bad)} in topology {topology.name}",
                hint="use a plane name or kind: " + ", ".join(sorted(known)),
            )
        if timeout <= 0:
            raise InputError("--timeout must be more than 0 seconds")
        return cls(only=tuple(only), skip=tuple(skip), timeout=timeout, **rest)
