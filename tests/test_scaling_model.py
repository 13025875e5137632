"""bench/model.py, the arithmetic behind docs/scaling.md and bench/simulate, adds up, and
its settings are the hub's own defaults (so a changed default cannot leave the sizing stale)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from hub.infra.config import HubConfig
from hub.store.engine import create_engine

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model():
    spec = importlib.util.spec_from_file_location("scaling_model", ROOT / "bench" / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scaling_model"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("scaling_model", None)


def test_the_model_settings_are_the_hubs_defaults(model):
    hub, cfg = HubConfig(), model.Config()
    assert cfg.pool_size == hub.database.pool_size
    assert cfg.refresh_ahead_s == hub.refresh.ahead_seconds
    assert cfg.refresh_interval_s == hub.refresh.interval_seconds
    assert cfg.refresh_batch == hub.refresh.batch_size
    assert cfg.refresh_concurrency == hub.refresh.concurrency
    assert cfg.upstream_concurrency == hub.upstream.max_concurrency
    assert cfg.retention_days == hub.activity.retention_days


def test_connections_per_process_follow_the_engine_pool(model):
    # The session engine's pool: pool_size kept, as many again in overflow (the reader's
    # engine is built the same way, hub/store/rowread.py).
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_size=7)
    pool = engine.sync_engine.pool
    assert pool.size() + pool._max_overflow == model.connections_per_process(model.Config(pool_size=7))["engine"]
    assert model.connections_per_process(model.Config(pool_size=7))["total"] == 2 * (pool.size() + pool._max_overflow)


def test_the_load_of_the_issue_is_about_600_a_second_with_a_peak_of_3000(model):
    load = model.Load()
    assert 570 < load.mean_rate < 600
    assert 2_850 < load.peak_rate < 3_000
    assert math.isclose(sum(p.share for p in load.providers), 1.0)
    assert math.isclose(sum(p.call_share for p in load.providers), 1.0)


def test_a_scaled_load_scales_every_rate_by_the_same_factor(model):
    full, small = model.Load(), model.Load().scaled(100)
    cfg, costs = model.Config(), model.Costs()
    assert small.integrations * 100 == full.integrations and small.users * 100 == full.users
    assert math.isclose(small.peak_rate * 100, full.peak_rate)
    assert math.isclose(model.refreshes_per_s(small, cfg) * 100, model.refreshes_per_s(full, cfg))
    run = model.predict_run(small, cfg, costs, rate=small.peak_rate, duration_s=60, processes=3)
    assert math.isclose(run["rows_per_s"] * 100, model.sizing(full, cfg, costs)["rows_per_s_peak"])
    assert math.isclose(run["calls"], small.peak_rate * 60)


def test_rows_are_calls_plus_refreshes_and_bytes_follow_rows(model):
    s = model.sizing()
    assert math.isclose(s["rows_per_day"], model.Load().calls_per_day + s["refreshes_per_day"])
    costs = model.Costs()
    assert math.isclose(s["log_bytes_per_day"], s["rows_per_day"] * (costs.log_heap_bytes + costs.log_index_bytes))
    assert math.isclose(s["partition_bytes"], s["log_bytes_per_day"] * 30.44)


def test_refresh_period_and_sweep_capacity(model):
    # A one-hour token renewed 300 s ahead is renewed every 3,299 s; a 400 s one at half its life.
    assert model.refresh_period_s(3_599, 300) == 3_299
    assert model.refresh_period_s(400, 300) == 200
    # One pass renews a batch, then waits the interval: 100 / (30 + 100 * 0.3 / 4) a second.
    cap = model.sweep_capacity_per_process(model.Config(), model.Costs())
    assert math.isclose(cap, 100 / 37.5)
    # Only expiring tokens are renewed: without Slack and Google there is nothing to do.
    never = model.Load(providers=(model.Provider("trello", 1.0, None, 1.0),))
    assert model.refreshes_per_s(never, model.Config()) == 0


def test_processes_cover_the_peak_at_the_target_use(model):
    costs = model.Costs()
    n = model.hub_processes(3_000, costs, spare=0)
    assert (n - 1) * costs.target_cpu_use < 3_000 * costs.hub_cpu_per_call_s <= n * costs.target_cpu_use
