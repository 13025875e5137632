"""The fake Slack in a process of its own: the upstream every benchmark talks to.

It is ``hub_slack.fake.FakeSlack`` unchanged, served on loopback, with two adjustments
that belong to benchmarking rather than to the fake:

* its record of every request (``calls``) and of every posted message (``messages``)
  are replaced by a bounded deque and a counter, so a run of 100,000 requests neither
  grows the fake's memory nor slows it down as the lists get long;
* ``GET /_bench/counts`` answers how many requests of each API method it has served,
  and how many ``oauth.v2.access`` calls were refresh grants (the P5 check).

Started by ``bench/bench.py``; prints one JSON line (``{"url": ...}``) once it listens.
"""

from __future__ import annotations

import argparse
import collections

from aiohttp import web
from serving import run, serve_until_signalled

from hub.testing import FakeCall
from hub_slack.fake import FakeSlack


class CountingCalls:
    """Stands in for ``FakeSlack.calls``: counts requests instead of keeping them."""

    def __init__(self) -> None:
        self.by_method: collections.Counter[str] = collections.Counter()
        self.refresh_grants = 0
        self.code_grants = 0
        self.recent: collections.deque[FakeCall] = collections.deque(maxlen=16)

    def append(self, call: FakeCall) -> None:
        method = call.path.removeprefix("/api/")
        self.by_method[method] += 1
        if method == "oauth.v2.access":
            if call.form.get("grant_type") == "refresh_token":
                self.refresh_grants += 1
            else:
                self.code_grants += 1
        self.recent.append(call)

    def __iter__(self):  # calls_to() iterates; only recent calls are kept
        return iter(self.recent)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", default="bench-slack-client")
    parser.add_argument("--client-secret", default="bench-slack-secret-value")
    parser.add_argument("--rotation", action="store_true", help="expiring access tokens with refresh tokens")
    parser.add_argument("--expires-in", type=int, default=43200)
    parser.add_argument("--delay-ms", type=float, default=0, help="answer every API call this much later (FakeSlack.delay)")
    args = parser.parse_args()

    fake = FakeSlack(args.client_id, args.client_secret, rotation=args.rotation, expires_in=args.expires_in, delay=args.delay_ms / 1000)
    counts = CountingCalls()
    fake.calls = counts  # type: ignore[assignment]
    fake.messages = collections.deque(maxlen=16)  # type: ignore[assignment]

    async def counts_view(_request: web.Request) -> web.Response:
        return web.json_response(
            {"methods": dict(counts.by_method), "refresh_grants": counts.refresh_grants, "code_grants": counts.code_grants}
        )

    app = fake.make_app()
    app.router.add_get("/_bench/counts", counts_view)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    await serve_until_signalled(runner, f"http://{args.host}:{runner.addresses[0][1]}")


if __name__ == "__main__":
    run(main)
