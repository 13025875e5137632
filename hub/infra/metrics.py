"""Prometheus metrics (prometheus-client).

With ``hub serve --workers N`` every worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before the workers start) and a scrape
on any worker reads them all, so ``/metrics`` shows the whole machine. The integrations
gauge is read from the database at scrape time: it is shared state, not a process's own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUESTS = Counter("hub_http_requests_total", "HTTP requests answered, by route and status", ["method", "route", "status"])
UPSTREAM_CALLS = Counter(
    "hub_upstream_calls_total", "Calls to providers (token, identity, action...), by outcome", ["provider", "action", "outcome"]
)
UPSTREAM_SECONDS = Histogram(
    "hub_upstream_call_seconds",
    "Duration of calls to providers",
    ["provider", "action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_DELIVERIES = Counter(
    "hub_event_deliveries_total", "Event delivery attempts, by subscriber and outcome", ["subscriber", "outcome"]
)
REFRESHES = Counter("hub_token_refreshes_total", "Token refreshes, by outcome", ["provider", "outcome"])
ACTIVITY_WRITTEN = Counter(
    "hub_activity_rows_written_total", "Call rows written by the activity writer (transitions are written with their change)"
)
READ_FALLBACKS = Counter(
    "hub_integration_read_fallbacks_total",
    "Action-path integration reads answered by the ORM session instead of the one-statement reader, by error type",
    ["error"],
)
ACTIVITY_BUFFERED = Gauge(
    "hub_activity_rows_buffered", "Activity rows waiting in the buffer", multiprocess_mode="livesum"
)


# The labelled children the hot path counts into, kept so that each call skips
# prometheus-client's label checks and lock (about 1.3 µs a lookup, three per call). A
# child lives as long as its metric does anyway; past the bound nothing more is kept.
_CHILDREN: dict[tuple[object, tuple[str, ...]], Any] = {}
_CHILDREN_BOUND = 10_000


def labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, remembered."""
    key = (metric, values)
    child = _CHILDREN.get(key)
    if child is None:
        child = metric.labels(*values)
        if len(_CHILDREN) < _CHILDREN_BOUND:
            _CHILDREN[key] = child
    return child


class _IntegrationsCollector:
    def __init__(self, counts: Mapping[tuple[str, str], int]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("hub_integrations", "Integrations by provider and status", labels=["provider", "status"])
        for (provider, status), n in sorted(self.counts.items()):
            family.add_metric([provider, status], n)
        yield family


def exposition(integration_counts: Mapping[tuple[str, str], int]) -> bytes:
    """The text format for one scrape: every process's samples plus the shared gauge."""
    registry = CollectorRegistry()
    if MULTIPROCESS:
        MultiProcessCollector(registry)
    else:
        for metric in (REQUESTS, UPSTREAM_CALLS, UPSTREAM_SECONDS, REFRESHES, ACTIVITY_WRITTEN, ACTIVITY_BUFFERED, READ_FALLBACKS):
            registry.register(metric)
    registry.register(_IntegrationsCollector(integration_counts))
    return generate_latest(registry)
