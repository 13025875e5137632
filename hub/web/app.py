"""The aiohttp application: middlewares, the router's routes, and the hub's life in
``cleanup_ctx`` (started with the server, stopped after the last request)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ..core.hub import Hub
from . import mcp_http, proxy, routes, sessions
from .cors import cors_middleware
from .idempotency import idempotency
from .middleware import HUB_KEY, answer, request_context
from .routes import CORE_ROUTES

__all__ = ["CORE_ROUTES", "HUB_KEY", "create_app"]


def create_app(hub: Hub, *, manage_lifecycle: bool = True, migrate: bool = True) -> web.Application:
    """The hub's web application. With ``manage_lifecycle`` (the default) the app starts
    the hub when the server starts and stops it when the server stops."""
    cors = [cors_middleware(hub.config.server.cors)] if hub.config.server.cors.allowed_origins else []
    app = web.Application(
        middlewares=[request_context, *cors, answer, idempotency],
        client_max_size=hub.config.server.max_body_bytes,
        # Room for every query an action's schema admits, percent-encoded non-ASCII
        # included, so that a too-long value is a 400 naming the field rather than
        # the HTTP parser's own plain-text refusal.
        # keepalive_timeout is aiohttp's only bound on a request head still arriving: its
        # timer runs from the connection's start (or its last response), whatever trickles
        # in meanwhile. Set here, it holds wherever the app is served (serve, sandbox,
        # workers, tests); it overrides run_app's default of 75 s.
        handler_args={"max_line_size": 65536, "max_field_size": 16384, "keepalive_timeout": hub.config.server.header_timeout},
    )
    app[HUB_KEY] = hub
    app.on_response_prepare.append(_static_headers)
    if manage_lifecycle:

        async def hub_context(_app: web.Application) -> AsyncIterator[None]:
            await hub.start(migrate=migrate)
            yield
            await hub.stop()

        app.cleanup_ctx.append(hub_context)
    mcp_http.setup(app, hub)
    proxy.setup(app)  # first: the provider actions' resource would take its paths
    routes.setup(app)
    sessions.setup(app)
    return app


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    # Revalidate the page's script and style, so an upgrade never pairs new HTML with old code.
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
