"""CORS, as configured by ``server.cors`` (docs/api.md).

A small middleware rather than aiohttp-cors: that library registers an ``OPTIONS`` route
per resource and refuses a resource that has a ``*`` route ("already has a '*' handler for
all methods"), which is how every provider action is routed here (one resource, any
method); its preflight handler would also have to be taught to the JWT middleware, and it
sends no ``Vary: Origin``. Here a preflight is answered before authentication and
routing matter, and every answer to an allowed origin, errors included, carries the
headers a browser needs to read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..errors import HubError
from ..infra.config import CorsConfig
from .middleware import Handler, respond_to

# The methods the API answers; a preflight for any other is refused.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Response headers a page's script may read besides the always-readable simple ones.
EXPOSED = ("X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Idempotent-Replayed", "Allow")


class CorsRefused(HubError):
    status, code = 403, "cors_refused"


@dataclass(frozen=True)
class _Policy:
    config: CorsConfig

    @property
    def wildcard(self) -> bool:
        return self.config.allowed_origins == ["*"]

    def allow_origin(self, origin: str) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None if refused.
        A wildcard answers ``*`` itself (configuration forbids it with credentials)."""
        if self.wildcard:
            return "*"
        return origin if origin in self.config.allowed_origins else None

    def decorate(self, response: web.StreamResponse, allow: str | None) -> None:
        if allow is not None:
            response.headers["Access-Control-Allow-Origin"] = allow
            if self.config.allow_credentials:
                response.headers["Access-Control-Allow-Credentials"] = "true"
        if not self.wildcard:
            # The answer depends on the Origin: a shared cache must keep one per origin.
            response.headers.add("Vary", "Origin")

    def preflight(self, request: web.Request, origin: str, wanted: str) -> web.StreamResponse:
        """204 with what may be sent, or 403 naming what may not."""
        allow = self.allow_origin(origin)
        asked = [h.strip() for h in request.headers.get("Access-Control-Request-Headers", "").split(",") if h.strip()]
        known = {h.lower() for h in self.config.allowed_headers}
        refused = [h for h in asked if h.lower() not in known]
        field, problem = "", ""
        if allow is None:
            field, problem = "Origin", f"{origin} is not in server.cors.allowed_origins"
        elif wanted not in METHODS:
            field, problem = "Access-Control-Request-Method", f"{wanted} is not a method the API answers ({', '.join(METHODS)})"
        elif refused:
            field, problem = "Access-Control-Request-Headers", f"{', '.join(refused)} not in server.cors.allowed_headers"
        if problem:
            response = respond_to(request, CorsRefused(f"{field}: {problem}", details={"field": field}))
            self.decorate(response, None)
            return response
        response = web.Response(status=204)
        self.decorate(response, allow)
        response.headers["Access-Control-Allow-Methods"] = ", ".join(METHODS)
        if asked:
            response.headers["Access-Control-Allow-Headers"] = ", ".join(asked)
        response.headers["Access-Control-Max-Age"] = str(self.config.max_age)
        response.headers.add("Vary", "Access-Control-Request-Method")
        response.headers.add("Vary", "Access-Control-Request-Headers")
        return response


def cors_middleware(config: CorsConfig) -> Middleware:
    """The middleware for ``config``; the app installs it only when origins are allowed.
    It sits outside authentication: a preflight carries no JWT, by design of CORS."""
    policy = _Policy(config)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        wanted = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and wanted is not None:
            return policy.preflight(request, origin, wanted)
        response = await handler(request)
        if not response.prepared:
            allow = policy.allow_origin(origin)
            policy.decorate(response, allow)
            if allow is not None:
                response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED)
        return response

    return cors
