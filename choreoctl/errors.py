"""The one exception tree of choreoctl.

Every failure a user can cause or meet is a ``ChoreoError``: a message, a hint that
tells the fix, and a kebab-case ``reference`` (shown as ``error[reference]``) that
names the section of the README to read. Only the CLI entry point catches it; it
prints the one-screen error and exits with ``exit_code``.

    ChoreoError                      exit 1 unless a subclass says otherwise
    ├── InputError                   exit 2: bad flags, files or values from the user
    │   ├── TopologyError            a topology file that cannot be loaded or is invalid
    │   └── RenderError              templates that cannot be rendered from the values
    ├── ClusterError                 exit 3: a cluster answered badly or not at all
    │   ├── ClusterUnreachable       no answer from the API server (DNS, TCP, TLS)
    │   ├── ApiError                 the API server answered with an error status
    │   │   └── ApplyConflict        server-side apply conflict with another manager
    │   └── WaitTimeout              a readiness wait ran out of time
    ├── TrustError                   exit 4: certificates, CAs and mTLS identity
    └── RuntimeFailure               exit 5: gateway, agent or controller cannot run

Errors from libraries (kubernetes, httpx, yaml, jinja2, aiohttp) are turned into one
of these where they enter, with ``raise ... from e``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One located problem, e.g. a topology validation finding.

    ``where`` is ``file:line:column`` (or just a file name) and ``path`` the dotted
    field path inside the document.
    """

    message: str
    where: str = ""
    path: str = ""
    expected: str = ""
    hint: str = ""

    def line(self) -> str:
        """The problem as one line: ``where: path: message (expected …)``."""
        parts = [p for p in (self.where, self.path) if p]
        head = ": ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        if self.expected:
            text += f" (expected {self.expected})"
        return text


@dataclass
class ChoreoError(Exception):
    """Base of every error choreoctl reports to a user."""

    message: str
    hint: str = ""
    reference: str = "errors-and-hints"
    problems: Sequence[Problem] = field(default_factory=tuple)
    exit_code: int = 1

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass
class InputError(ChoreoError):
    """Bad input from the user: flags, files, values."""

    reference: str = "bad-input"
    exit_code: int = 2


@dataclass
class TopologyError(InputError):
    """A topology file that cannot be read, parsed or validated."""

    reference: str = "topology-format"


@dataclass
class RenderError(InputError):
    """Manifests cannot be rendered from the given values."""

    reference: str = "render"


@dataclass
class ClusterError(ChoreoError):
    """A Kubernetes cluster answered with an error or not at all."""

    reference: str = "cluster-access"
    exit_code: int = 3


@dataclass
class ClusterUnreachable(ClusterError):
    """The API server of a cluster could not be reached.

    The constructors below word it the same whichever transport failed (the small
    HTTP/1.1 client, aiohttp's relay, httpx).
    """

    reference: str = "cluster-unreachable"

    @classmethod
    def no_answer(cls, cluster: str, server: str, what: str) -> ClusterUnreachable:
        """Nothing came back in time (``what``: which timeout, e.g. ReadTimeout)."""
        return cls(
            f"{cluster}: no answer from {server} ({what})",
            hint="check that the API server is up and reachable from here",
        )

    @classmethod
    def cannot_reach(cls, cluster: str, server: str, cause: object) -> ClusterUnreachable:
        """No connection (refused, no route, TLS refused, name unknown)."""
        return cls(
            f"{cluster}: cannot reach {server}: {_said(cause)}",
            hint="check the kubeconfig server address, the network and the cluster",
        )

    @classmethod
    def broken_off(cls, cluster: str, cause: object) -> ClusterUnreachable:
        """A response cut off mid-way (connection reset, server gone, garbled)."""
        return cls(
            f"{cluster}: the API server broke off the response: {_said(cause)}",
            hint="check the API server's health",
        )


def _said(cause: object) -> str:
    """An exception's message, or its type's name when it has none."""
    return str(cause) or type(cause).__name__


@dataclass
class ApiError(ClusterError):
    """The API server answered with an error status (``status`` and ``reason`` kept)."""

    status: int = 0
    reason: str = ""


@dataclass
class ApplyConflict(ApiError):
    """Server-side apply found fields owned by another field manager."""

    reference: str = "apply-conflicts"


@dataclass
class WaitTimeout(ClusterError):
    """A readiness wait ran out of time; the message says what it saw last."""

    reference: str = "wait-timeouts"


@dataclass
class TrustError(ChoreoError):
    """Certificates, CAs or mTLS identity are wrong or missing."""

    reference: str = "trust"
    exit_code: int = 4


@dataclass
class RuntimeFailure(ChoreoError):
    """The gateway, agent or controller cannot start or keep running."""

    reference: str = "runtime"
    exit_code: int = 5


__all__ = [
    "ApiError",
    "ApplyConflict",
    "ChoreoError",
    "ClusterError",
    "ClusterUnreachable",
    "InputError",
    "Problem",
    "RenderError",
    "RuntimeFailure",
    "TopologyError",
    "TrustError",
    "WaitTimeout",
]
