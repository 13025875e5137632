"""The control routes of a running :class:`hub.testing.FakeProvider`: the fault switches and the
request record, reachable over HTTP for a sandbox, a browser test or a process the test does
not share memory with. They are neither recorded nor subject to the switches they set."""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web


class FakeProvider(Protocol):
    """What the control routes use of :class:`hub.testing.FakeProvider` (named here, not
    imported, so the two modules do not import each other)."""

    calls: list[Any]

    def fail_next(self, status: int, body: Any = None, *, path: str | None = None, count: int = 1) -> None: ...
    def rate_limit_next(self, count: int = 1, retry_after: int = 1, *, path: str | None = None) -> None: ...
    def expire_tokens(self) -> None: ...
    def revoke_all(self) -> None: ...

# Each switch: the fields its JSON body may carry, with their types.
_SWITCHES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "fail_next": {"status": int, "body": (dict, list, str, int, float, bool, type(None)), "path": (str, type(None)), "count": int},
    "rate_limit_next": {"count": int, "retry_after": int, "path": (str, type(None))},
    "expire_tokens": {},
    "revoke_all": {},
}


def add_control_routes(fake: FakeProvider, app: web.Application, prefix: str) -> None:
    for name in _SWITCHES:
        app.router.add_post(f"{prefix}/{name}", _switch(fake, name))
    app.router.add_get(f"{prefix}/calls", _calls(fake))
    app.router.add_delete(f"{prefix}/calls", _forget_calls(fake))


def _problem(message: str) -> web.Response:
    return web.json_response({"error": "bad_request", "message": message}, status=400)


def _switch(fake: FakeProvider, name: str) -> Any:
    allowed = _SWITCHES[name]

    async def handler(request: web.Request) -> web.Response:
        raw = await request.text()
        try:
            args = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _problem("the body is not JSON")
        if not isinstance(args, dict):
            return _problem("the body must be a JSON object")
        for key, value in args.items():
            if key not in allowed:
                return _problem(f"{name} takes no field {key!r} (it takes: {', '.join(allowed) or 'none'})")
            # bool is an int in Python; a switch's counts and statuses never are booleans.
            if not isinstance(value, allowed[key]) or (allowed[key] is int and isinstance(value, bool)):
                return _problem(f"field {key!r} has the wrong type")
        if name == "fail_next" and "status" not in args:
            return _problem("fail_next needs a 'status'")
        if not 1 <= int(args.get("count", 1)) <= 10_000:
            return _problem("field 'count' must be between 1 and 10000")
        if name == "fail_next" and not 100 <= args["status"] <= 599:
            return _problem("field 'status' must be an HTTP status (100-599)")
        getattr(fake, name)(**args)
        return web.json_response({"ok": True, "switch": name})

    return handler


def _calls(fake: FakeProvider) -> Any:
    async def handler(request: web.Request) -> web.Response:
        path = request.query.get("path", "")
        calls = [c for c in fake.calls if c.path.startswith(path)]
        # Method, path and the query's names only: headers, bodies and some providers' query
        # strings carry the very tokens the fake issued.
        return web.json_response({"calls": [{"method": c.method, "path": c.path, "query": sorted(c.query)} for c in calls]})

    return handler


def _forget_calls(fake: FakeProvider) -> Any:
    async def handler(request: web.Request) -> web.Response:
        fake.calls.clear()
        return web.json_response({"ok": True})

    return handler
