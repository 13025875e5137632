"""hub serve --workers 2: two processes on one port share everything through the database."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from datetime import timedelta
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from helpers import consent
from hub.store.engine import create_engine, sessionmaker
from hub.store.models import Integration, IntegrationLog, utcnow
from hub_slack.fake import FakeSlack
from procs import until
from support import JWT_SECRET, auth
from procs import free_port

HUB = str(Path(sys.executable).with_name("hub"))


async def start_workers(tmp_path, db_url, keys, fake_base, port):
    config = tmp_path / "hub.yaml"
    config.write_text(f"""
server: {{host: 127.0.0.1, port: {port}, public_url: "http://127.0.0.1:{port}", shutdown_timeout: 20}}
database: {{url: "{db_url}"}}
auth: {{jwt_secret: "{JWT_SECRET}"}}
security: {{encryption_keys: "{keys}"}}
activity: {{flush_interval_ms: 50}}
providers:
  slack:
    client_id: slack-client
    client_secret: slack-secret-value-123
    scopes: [channels:read, chat:write, users:read]
    urls: {{authorize: "{fake_base}/oauth/v2/authorize", token: "{fake_base}/api/oauth.v2.access", api: "{fake_base}/api"}}
""")
    log = open(tmp_path / "hub.log", "wb")
    proc = await asyncio.create_subprocess_exec(HUB, "serve", "--workers", "2", "--config", str(config), cwd=tmp_path, stdout=log, stderr=log)
    async with aiohttp.ClientSession() as session:
        for _ in range(150):  # bounded: 15 s
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200 and (tmp_path / "hub.log").read_text().count("serving on") == 2:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)  # a poll interval: the condition is checked above, the loop is bounded
    proc.kill()
    raise AssertionError("the workers did not start:\n" + (tmp_path / "hub.log").read_text()[-3000:])


async def test_two_workers_share_connects_refreshes_metrics_and_drain_on_sigterm(tmp_path, db_url, encryption_keys):
    fake = FakeSlack(client_id="slack-client", client_secret="slack-secret-value-123", rotation=True)
    fake_base = await fake.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = await start_workers(tmp_path, db_url, encryption_keys, fake_base, port)
    engine = create_engine(db_url)
    sessions = sessionmaker(engine)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as http:
            # 1. Connects begun on one worker and finished on the other. Fresh connections
            #    (force_close) let the kernel pick a worker each time.
            for i in range(12):
                async with http.get(f"{base}/api/integrations/slack/connect", headers=auth(f"user{i}")) as resp:
                    auth_url = (await resp.json())["data"]["authUrl"]
                location = await consent(auth_url)
                async with http.get(location, headers={"Accept": "application/json"}) as resp:
                    assert resp.status == 200, await resp.text()
            served = {}
            for line in (tmp_path / "hub.log").read_text().splitlines():
                m = re.search(r"\[(\d+)\] INFO +hub\.access: GET /api/integrations/slack/(connect|callback) 200", line)
                if m:
                    served.setdefault(m.group(2), []).append(m.group(1))
            pairs = list(zip(served["connect"], served["callback"]))
            assert len(pairs) == 12
            assert any(a != b for a, b in pairs), "no connect crossed workers; the kernel sent every request to one"

            # 2. 200 concurrent calls on an expired, rotating token: exactly one refresh.
            async with sessions.begin() as s:
                await s.execute(update(Integration).where(Integration.user_id == "user0").values(token_expiry=utcnow() - timedelta(seconds=5)))
            fake.expire_tokens()
            before = len([c for c in fake.calls_to("/api/oauth.v2.access") if c.form.get("grant_type") == "refresh_token"])

            async def post(i):
                async with http.post(f"{base}/api/integrations/slack/message", json={"channel": "general", "text": f"m{i}"}, headers=auth("user0")) as r:
                    return r.status

            statuses = await asyncio.gather(*(post(i) for i in range(200)))
            assert statuses == [200] * 200
            refreshes = [c for c in fake.calls_to("/api/oauth.v2.access") if c.form.get("grant_type") == "refresh_token"]
            assert len(refreshes) - before == 1
            assert not any(c for c in fake.calls if c.path == "/api/oauth.v2.access" and "invalid" in str(c))

            # 3. /metrics on either worker shows both workers' requests.
            for _ in range(40):
                async with http.get(f"{base}/healthz"):
                    pass
            async with http.get(f"{base}/metrics") as resp:
                text = await resp.text()
            healthz = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                       if s.name == "hub_http_requests_total" and s.labels.get("route") == "/healthz"]
            assert sum(healthz) >= 40

            # 4. SIGTERM under load: in-flight calls finish, every answer has its row.
            fake.delay = 0.3
            reached = len(fake.calls_to("/api/chat.postMessage"))
            async def post_counted(i):
                try:
                    return await post(i)
                except aiohttp.ClientError:
                    return None  # refused after the workers stopped accepting: fine
            load = [asyncio.create_task(post_counted(1000 + i)) for i in range(100)]
            # Signal only once calls are in flight: Slack has them and holds each for
            # fake.delay, so a worker is mid-request for every one of them.
            await until(lambda: len(fake.calls_to("/api/chat.postMessage")) > reached, 20, "calls to reach Slack")
            in_flight = len(fake.calls_to("/api/chat.postMessage")) - reached
            proc.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*load)
            code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0, (tmp_path / "hub.log").read_text()[-3000:]
        answered = sum(1 for r in results if r == 200)
        assert answered >= in_flight > 0  # every call that was in flight at SIGTERM was answered
        assert not any(r is not None and r >= 500 for r in results)
        async with sessions() as s:
            rows = await s.scalar(select(func.count()).select_from(IntegrationLog).where(IntegrationLog.action == "post_message"))
        assert rows == 200 + answered
        assert "Traceback" not in (tmp_path / "hub.log").read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await engine.dispose()
        await fake.stop()
