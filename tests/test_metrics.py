"""GET /metrics: Prometheus text that prometheus-client's own parser reads, and counters
that move with the traffic sent."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from helpers import connect_slack
from support import auth


async def scrape(client) -> dict[tuple[str, tuple], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_move_with_traffic(hub_app, fake_slack):
    h = auth("alice")
    before = await scrape(hub_app)
    await connect_slack(hub_app, h)
    for _ in range(3):
        assert (await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "x"}, headers=h)).status == 200
    fake_slack.slack_error_next("chat.postMessage", "fatal_error")
    assert (await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "x"}, headers=h)).status == 502
    await hub_app.db.settle()
    after = await scrape(hub_app)

    route = "/api/integrations/{provider}/{action}"
    assert value(after, "hub_http_requests_total", method="POST", route=route, status="200") - value(before, "hub_http_requests_total", method="POST", route=route, status="200") == 3
    assert value(after, "hub_http_requests_total", method="POST", route=route, status="502") - value(before, "hub_http_requests_total", method="POST", route=route, status="502") == 1
    connect = "/api/integrations/{provider}/connect"
    assert value(after, "hub_http_requests_total", method="GET", route=connect, status="200") > value(before, "hub_http_requests_total", method="GET", route=connect, status="200")

    ok = dict(provider="slack", action="post_message", outcome="success")
    assert value(after, "hub_upstream_calls_total", **ok) - value(before, "hub_upstream_calls_total", **ok) == 3
    bad = dict(provider="slack", action="post_message", outcome="provider_error")
    assert value(after, "hub_upstream_calls_total", **bad) - value(before, "hub_upstream_calls_total", **bad) == 1
    count = dict(provider="slack", action="post_message")
    assert value(after, "hub_upstream_call_seconds_count", **count) - value(before, "hub_upstream_call_seconds_count", **count) == 4
    # the code exchange and four messages; the ACTIVE transition is written with its change
    assert value(after, "hub_activity_rows_written_total") - value(before, "hub_activity_rows_written_total") == 5
    assert value(after, "hub_integrations", provider="slack", status="ACTIVE") == 1


async def test_refresh_outcomes_are_counted(hub_app, fake_slack):
    fake_slack.rotation = True
    h = auth("alice")
    await connect_slack(hub_app, h)
    before = await scrape(hub_app)
    assert (await hub_app.post("/api/integrations/slack/refresh", headers=h)).status == 200
    fake_slack.revoke_all()
    assert (await hub_app.post("/api/integrations/slack/refresh", headers=h)).status == 409
    after = await scrape(hub_app)
    for outcome in ("success", "rejected"):
        labels = dict(provider="slack", outcome=outcome)
        assert value(after, "hub_token_refreshes_total", **labels) - value(before, "hub_token_refreshes_total", **labels) == 1
    assert value(after, "hub_integrations", provider="slack", status="ERROR") == 1


async def test_unknown_routes_do_not_explode_label_cardinality(hub_app):
    for i in range(5):
        await hub_app.get(f"/nowhere/{i}")
    samples = await scrape(hub_app)
    routes = {dict(labels).get("route") for (name, labels) in samples if name == "hub_http_requests_total"}
    assert not any(r and r.startswith("/nowhere") for r in routes)
