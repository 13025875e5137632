"""The baseline: the least a proxy in front of Slack can do.

One aiohttp server, one pooled ``ClientSession``. ``POST /api/integrations/slack/message``
(the hub's URL, so the load generator sends byte-for-byte the same request to both) is
forwarded as it came to the upstream's ``chat.postMessage`` with a fixed token, and the
upstream's answer goes back unchanged. No authentication of the caller, no database, no
validation, no logging (aiohttp's access log is off), no JSON parsing.

Two more routes, neither forwarded:

* ``GET /healthz`` answers ``{"status":"ok"}`` (the load generator's drain requests, and
  readiness, as on the hub);
* ``GET /hello`` answers a constant small JSON body: what one HTTP answer costs on this
  machine, used to show the load generator is not the bottleneck and as the HTTP floor
  beside the statistics and logs timings.

Prints one JSON line (``{"url": ...}``) once it listens.
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web
from serving import run, serve_until_signalled

HEALTH = b'{"status":"ok"}'
HELLO = b'{"success":true,"data":{"hello":"world"},"message":"OK"}'


def make_app(upstream: str, token: str) -> web.Application:
    target = upstream.rstrip("/") + "/api/chat.postMessage"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    app = web.Application()
    holder: dict[str, aiohttp.ClientSession] = {}

    async def session_ctx(_app: web.Application):
        # The same client settings as the hub's Upstream: no connection limit.
        holder["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await holder["s"].close()

    async def message(request: web.Request) -> web.Response:
        body = await request.read()
        async with holder["s"].post(target, data=body, headers=headers) as resp:
            data = await resp.read()
            return web.Response(body=data, status=resp.status, content_type="application/json")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(body=HEALTH, content_type="application/json")

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(body=HELLO, content_type="application/json")

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/api/integrations/slack/message", message)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/hello", hello)
    return app


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", required=True, help="base URL of the fake Slack")
    parser.add_argument("--token", required=True, help="a Slack access token the upstream accepts")
    args = parser.parse_args()

    runner = web.AppRunner(make_app(args.upstream, args.token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    await serve_until_signalled(runner, f"http://{host}:{port}")


if __name__ == "__main__":
    run(main)
