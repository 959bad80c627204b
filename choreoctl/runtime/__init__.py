"""The runtime choreoctl deploys: cluster gateway, cluster agent and plane status controller.

Everything here is asyncio and speaks OpenChoreo's tunnel protocol
(:mod:`choreoctl.runtime.protocol`); the CLI commands ``gateway serve``, ``agent run``
and ``controller run`` are thin wrappers around :func:`gateway.server.serve`,
:func:`agent.run` and :func:`controller.run`.
"""
