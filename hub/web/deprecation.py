"""Announcing a deprecation on the wire (docs/api.md, "Stability policy"): the answers of
a deprecated core route or provider action carry ``Deprecation`` (RFC 9745), ``Sunset``
(RFC 8594) and a ``Link`` to the successor; the OpenAPI document marks the operation."""

from __future__ import annotations

from calendar import timegm
from email.utils import formatdate

from aiohttp import web

from ..types import Deprecation

# Core routes on their way out, by (method, route template). None today; an entry is all
# it takes: the middleware and the document read it.
ROUTES: dict[tuple[str, str], Deprecation] = {}
# Set by a handler that knows its operation is deprecated (a provider action).
DEPRECATED = web.RequestKey("deprecated", Deprecation)


def headers(dep: Deprecation) -> dict[str, str]:
    out = {"Deprecation": f"@{timegm(dep.since.timetuple())}"}
    if dep.sunset is not None:
        out["Sunset"] = formatdate(timegm(dep.sunset.timetuple()), usegmt=True)
    if dep.successor:
        out["Link"] = f'<{dep.successor}>; rel="successor-version"'
    return out


def describe(dep: Deprecation) -> str:
    text = f"Deprecated since {dep.since.isoformat()}"
    if dep.sunset is not None:
        text += f"; may be removed after {dep.sunset.isoformat()}"
    if dep.successor:
        text += f"; use {dep.successor} instead"
    return text + "."


def mark(op: dict[str, object], dep: Deprecation | None) -> None:
    """Mark an OpenAPI operation deprecated."""
    if dep is not None:
        op["deprecated"] = True
        op["description"] = f"{describe(dep)} {op.get('description') or ''}".strip()


def deprecation_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Add the headers to the answer (not yet sent) of a deprecated operation: the
    handler's mark (:data:`DEPRECATED`) or the route's entry in :data:`ROUTES`. Called by
    ``middleware.answer`` on every answer, errors included."""
    dep = request.get(DEPRECATED)
    if dep is None and ROUTES:
        route = request.match_info.route
        resource = getattr(route, "resource", None)
        dep = ROUTES.get((request.method, resource.canonical)) if resource is not None else None
    if dep is not None:
        response.headers.update(headers(dep))
