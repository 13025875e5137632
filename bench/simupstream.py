"""The three providers bench/simulate.py talks to, in one process: the fakes of the Slack,
Google Calendar and Trello plugins, each on a port of its own, unchanged but for what a
long run needs:

* their records of requests are bounded deques (a run makes tens of thousands);
* every API answer and token answer waits ``--delay-ms`` (a provider across the internet);
* ``POST /_sim/mint?count=N`` on each issues N token pairs at once, as N users having
  consented would hold (the simulation stores them in the hub's database, encrypted, instead
  of walking N consent pages), and ``GET /_sim/counts`` answers how many API calls and
  refresh grants the fake has served.

Prints one JSON line, ``{"slack": {...hub settings}, ...}``, once every fake listens.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
from typing import Any

from aiohttp import web

from hub.testing import FakeCall
from hub_google_calendar.fake import FakeGoogle
from hub_slack.fake import DEFAULT_TEAM_ID, FakeSlack
from hub_trello.fake import FakeTrello


class Tally:
    """Stands in for a fake's ``calls`` list: counts, keeps only the last few."""

    def __init__(self, token_path: str | None) -> None:
        self.token_path = token_path
        self.api = 0
        self.refresh_grants = 0
        self.recent: collections.deque[FakeCall] = collections.deque(maxlen=16)

    def append(self, call: FakeCall) -> None:
        if call.path.startswith("/_sim"):
            return
        if call.form.get("grant_type") == "refresh_token":
            self.refresh_grants += 1
        elif call.path != self.token_path:
            self.api += 1
        self.recent.append(call)

    def __iter__(self):  # calls_to() iterates; only recent calls are kept
        return iter(self.recent)


def mint_pairs(fake: Any, count: int, provider: str) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        if provider == "trello":
            out.append({"access_token": fake.issue_token(expiration="never"), "refresh_token": None})
            continue
        if provider == "slack":  # a bot install with rotating tokens, as the consent would give
            pair = fake._issue_side("bot", DEFAULT_TEAM_ID, fake.bot_user_id, ",".join(SCOPES[provider]), f"sim{len(fake.issued)}", rotating=True)
            out.append({"access_token": pair["access_token"], "refresh_token": pair["refresh_token"]})
            continue
        # The fake's own tokens live long; the simulation stores its own expiry times.
        access = fake.mint("access", fake.account, fake.scope_separator.join(SCOPES[provider]), grant=f"sim{len(fake.issued)}", expires_in=7 * 86_400)
        refresh = fake.mint("refresh", fake.account, access.scope, grant=access.grant)
        out.append({"access_token": access.value, "refresh_token": refresh.value})
    return out


SCOPES = {
    "slack": ["channels:read", "chat:write", "users:read"],
    "google_calendar": ["openid", "email", "https://www.googleapis.com/auth/calendar"],
}


async def serve(fake: Any, provider: str, tally: Tally) -> tuple[web.AppRunner, dict[str, Any]]:
    fake.calls = tally
    app = fake.make_app()

    async def mint(request: web.Request) -> web.Response:
        count = int(request.query.get("count", "1"))
        return web.json_response(mint_pairs(fake, count, provider))

    async def counts(_request: web.Request) -> web.Response:
        return web.json_response({"api": tally.api, "refresh_grants": tally.refresh_grants})

    app.router.add_post("/_sim/mint", mint)
    app.router.add_get("/_sim/counts", counts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    fake.base_url = base
    return runner, {"base": base, "settings": fake.hub_settings(base)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    args = parser.parse_args()
    delay = args.delay_ms / 1000
    fakes = {
        "slack": FakeSlack("sim-slack-client", "sim-slack-secret-value", rotation=True, expires_in=43_200, delay=delay),
        "google_calendar": FakeGoogle("sim-google-client.apps.googleusercontent.com", "sim-google-secret", delay=delay),
        "trello": FakeTrello(api_key="sim-trello-key", delay=delay),
    }
    fakes["slack"].messages = collections.deque(maxlen=16)
    runners, out = [], {}
    for name, fake in fakes.items():
        token_path = fake.paths.get("token") if name != "slack" else "/api/oauth.v2.access"
        runner, info = await serve(fake, name, Tally(token_path))
        runners.append(runner)
        out[name] = info
    print(json.dumps(out), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
