"""The sizing model behind docs/scaling.md, as arithmetic that bench/simulate.py checks.

Everything here is plain arithmetic on a :class:`Load` (how many users, integrations and
calls) and a :class:`Costs` (what one call, row or refresh costs, as measured: the
defaults come from docs/performance.md and from a bench/simulate run on PostgreSQL, and
each says where). Nothing is guessed here that a run can measure; what a run measures is
passed in instead.

``sizing(load, costs)`` is the full-scale table; ``load.scaled(100)`` is the same shape
a hundred times smaller, which is what bench/simulate drives, and ``predict_run`` is what
the model says such a run must show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

DAY = 86_400.0


@dataclass(frozen=True)
class Provider:
    """One provider's share of the integrations and how its tokens live."""

    name: str
    share: float  # of the integrations
    token_life_s: float | None  # None: the token never expires (Trello)
    call_share: float  # of the calls


# The mix of docs/scaling.md: one integration of each kind per user on average.
PROVIDERS = (
    Provider("slack", 1 / 3, 43_200.0, 0.40),  # rotating tokens, 12 hours (FakeSlack(rotation=True))
    Provider("google_calendar", 1 / 3, 3_599.0, 0.35),  # Google's access tokens: one hour
    Provider("trello", 1 / 3, None, 0.25),  # never-expiring tokens
)


@dataclass(frozen=True)
class Load:
    users: int = 1_000_000
    integrations: int = 3_000_000
    calls_per_day: float = 50_000_000
    peak_factor: float = 5.0  # peak rate over the mean rate (3,000/s against 600/s)
    failure_share: float = 0.05  # calls the provider refuses: they are logged like any other
    providers: tuple[Provider, ...] = PROVIDERS

    @property
    def mean_rate(self) -> float:
        return self.calls_per_day / DAY

    @property
    def peak_rate(self) -> float:
        return self.mean_rate * self.peak_factor

    def scaled(self, factor: float) -> Load:
        """The same shape ``factor`` times smaller: users, integrations and calls alike."""
        return replace(self, users=round(self.users / factor), integrations=round(self.integrations / factor),
                       calls_per_day=self.calls_per_day / factor)


@dataclass(frozen=True)
class Config:
    """The hub settings the model depends on (hub/infra/config.py defaults)."""

    pool_size: int = 10  # database.pool_size; each pool may open as many again as overflow
    refresh_ahead_s: float = 300.0  # refresh.ahead_seconds
    refresh_interval_s: float = 30.0  # refresh.interval_seconds
    refresh_batch: int = 100  # refresh.batch_size
    refresh_concurrency: int = 4  # refresh.concurrency
    upstream_concurrency: int = 64  # upstream.max_concurrency, per provider and process
    retention_days: int = 90  # activity.retention_days


@dataclass(frozen=True)
class Costs:
    """Measured costs. Each default names the run it comes from."""

    # docs/performance.md, P1 on PostgreSQL: CPU time of the server process per proxied call
    # (bench/run of 2026-12-04; 860 µs the run before).
    hub_cpu_per_call_s: float = 633e-6
    # bench/simulate on PostgreSQL (docs/scaling.md): bytes per stored activity row, heap
    # and TOAST, and all six indexes of integration_logs; and per activity_hourly row.
    log_heap_bytes: float = 850.0
    log_index_bytes: float = 300.0
    rollup_row_bytes: float = 160.0  # heap and primary key together
    # New activity_hourly rows per call: nearly every call opens a key of its own
    # (integration x hour x action x duration bucket) when integrations make a few calls a day.
    rollup_rows_per_call: float = 0.95
    # New activity_daily rows per call. A day gathers more of an integration's calls than an
    # hour, so keys repeat more often and this is at most the hourly figure; a run of
    # minutes cannot measure a day's reuse, so the model takes the hourly figure as its bound.
    daily_rows_per_call: float = 0.95
    # CPU a PostgreSQL backend spends per call (the hub's connections only), from the same run.
    pg_cpu_per_call_s: float = 690e-6
    upstream_latency_s: float = 0.2  # a provider across the internet, p50 (bench/simulate uses its own)
    refresh_latency_s: float = 0.3  # a provider's token endpoint
    target_cpu_use: float = 0.6  # a process is sized to run at most this busy at the peak


def refresh_period_s(life_s: float, ahead_s: float) -> float:
    """How often one integration's token is renewed by the background sweep: its life
    less the time ahead it is renewed (never more than half its life; hub/core/refresher.py)."""
    return life_s - min(ahead_s, life_s / 2)


def refreshes_per_s(load: Load, config: Config) -> float:
    """Background refreshes a second in the steady state: every integration with an
    expiring token is renewed once per period, whether it is called or not."""
    total = 0.0
    for p in load.providers:
        if p.token_life_s:
            total += load.integrations * p.share / refresh_period_s(p.token_life_s, config.refresh_ahead_s)
    return total


def sweep_capacity_per_process(config: Config, costs: Costs) -> float:
    """Refreshes a second one process's sweep can make when it is behind: a full batch per
    pass, and a pass lasts the interval (which starts when the previous pass ends,
    hub/core/periodic.py) plus the batch's refreshes, ``concurrency`` at a time."""
    pass_s = config.refresh_interval_s + config.refresh_batch * costs.refresh_latency_s / config.refresh_concurrency
    return config.refresh_batch / pass_s


def rows_per_s(load: Load, config: Config, rate: float) -> float:
    """Activity rows written a second at ``rate`` calls a second: one per call, one per refresh."""
    return rate + refreshes_per_s(load, config)


def hub_processes(rate: float, costs: Costs, *, spare: int = 1) -> int:
    """Single-threaded hub processes (one core each) for ``rate`` calls a second, each at
    most ``target_cpu_use`` busy, plus ``spare`` to lose one without overload."""
    return math.ceil(rate * costs.hub_cpu_per_call_s / costs.target_cpu_use) + spare


def connections_per_process(config: Config) -> dict[str, int]:
    """The most database connections one hub process can hold: the session engine and the
    action path's row reader each have a pool of ``pool_size`` and as many again in overflow."""
    engine = reader = 2 * config.pool_size
    return {"engine": engine, "reader": reader, "total": engine + reader, "steady": 2 * config.pool_size}


@dataclass
class Sizing:
    figures: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        return self.figures[key]


def sizing(load: Load = Load(), config: Config = Config(), costs: Costs = Costs()) -> Sizing:
    """The whole table of docs/scaling.md for ``load``."""
    f: dict[str, float] = {}
    f["mean_calls_per_s"] = load.mean_rate
    f["peak_calls_per_s"] = load.peak_rate
    f["refreshes_per_s"] = refreshes_per_s(load, config)
    f["refreshes_per_day"] = f["refreshes_per_s"] * DAY
    f["rows_per_day"] = load.calls_per_day + f["refreshes_per_day"]
    f["rows_per_s_mean"] = rows_per_s(load, config, load.mean_rate)
    f["rows_per_s_peak"] = rows_per_s(load, config, load.peak_rate)
    row_bytes = costs.log_heap_bytes + costs.log_index_bytes
    f["log_bytes_per_day"] = f["rows_per_day"] * row_bytes
    f["log_heap_bytes_per_day"] = f["rows_per_day"] * costs.log_heap_bytes
    f["log_index_bytes_per_day"] = f["rows_per_day"] * costs.log_index_bytes
    f["partition_rows"] = f["rows_per_day"] * 30.44  # one month
    f["partition_bytes"] = f["log_bytes_per_day"] * 30.44
    f["partitions_kept"] = math.ceil(config.retention_days / 30.44) + 1  # the current month is partial
    f["retained_bytes"] = f["log_bytes_per_day"] * config.retention_days
    f["rollup_rows_per_day"] = f["rows_per_day"] * costs.rollup_rows_per_call
    f["rollup_bytes_per_day"] = f["rollup_rows_per_day"] * costs.rollup_row_bytes
    f["rollup_retained_bytes"] = f["rollup_bytes_per_day"] * config.retention_days
    f["daily_rows_per_day"] = f["rows_per_day"] * costs.daily_rows_per_call
    f["daily_retained_bytes"] = f["daily_rows_per_day"] * costs.rollup_row_bytes * config.retention_days
    f["hub_processes_peak"] = hub_processes(load.peak_rate + f["refreshes_per_s"], costs)
    f["hub_cores_peak"] = (load.peak_rate + f["refreshes_per_s"]) * costs.hub_cpu_per_call_s
    f["pg_cores_peak"] = (load.peak_rate + f["refreshes_per_s"]) * costs.pg_cpu_per_call_s
    conns = connections_per_process(config)
    f["connections_per_process_max"] = conns["total"]
    f["connections_per_process_steady"] = conns["steady"]
    f["connections_at_peak_max"] = conns["total"] * f["hub_processes_peak"]
    f["sweep_capacity_per_process"] = sweep_capacity_per_process(config, costs)
    f["sweep_processes_needed"] = math.ceil(f["refreshes_per_s"] / f["sweep_capacity_per_process"])
    # Calls in flight at the peak, per process: Little's law over the provider's latency.
    f["in_flight_per_process"] = load.peak_rate * costs.upstream_latency_s / f["hub_processes_peak"]
    return Sizing(f)


def predict_run(load: Load, config: Config, costs: Costs, *, rate: float, duration_s: float, processes: int) -> dict[str, float]:
    """What a run of ``duration_s`` at ``rate`` calls a second against ``load`` (already
    scaled) should show, in the units bench/simulate measures."""
    refreshes = refreshes_per_s(load, config)
    return {
        "calls": rate * duration_s,
        "rows_per_s": rate + refreshes,
        "refreshes_per_min": refreshes * 60,
        "rows_minus_calls_per_min": refreshes * 60,  # every stored row is a call or a refresh
        "hub_cpu_share": (rate + refreshes) * costs.hub_cpu_per_call_s / processes,
        "sweep_capacity_per_s": processes * sweep_capacity_per_process(config, costs),
    }
