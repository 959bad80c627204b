"""The aiohttp application key under which every gateway listener finds its :class:`Gateway`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from choreoctl.runtime.gateway.server import Gateway

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
