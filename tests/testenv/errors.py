"""Why the test environment could not give a test its clusters.

These are test-infrastructure errors, not product errors, so they are not ChoreoErrors; the
names avoid a ``Test`` prefix so pytest never tries to collect them.
"""

from __future__ import annotations


class ClusterEnvError(RuntimeError):
    """Base of every test environment failure."""


class BinariesMissing(ClusterEnvError):
    """The cluster binaries are not built (or are the wrong version): run build.sh."""


class CertManagerUnavailable(ClusterEnvError):
    """cert-manager was asked for but its controller could not be built here."""


class ClusterStartFailed(ClusterEnvError):
    """A process did not start or a cluster did not become ready; the message has the log tail."""
