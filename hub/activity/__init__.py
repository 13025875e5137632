"""Activity: the record of every upstream call, and the queries over it.

- :mod:`.recorder` turns one call's outcome into a redacted, size-capped row.
- :mod:`.writer` buffers rows and inserts them in batches, never dropping one.
- :mod:`.rollup` keeps the hourly and daily statistics tables in step with the rows.
- :mod:`.queries` reads log pages, statistics, summaries, and prunes old rows.
- :mod:`.partitions` keeps ``integration_logs``' monthly partitions on PostgreSQL.
"""

from __future__ import annotations

from .partitions import MONTHS_AHEAD, ensure_partitions, partitions
from .queries import LogQuery, Pruned, daily, decode_cursor, encode_cursor, list_logs, prune, prune_expired, stats, summaries
from .recorder import Recorder
from .rollup import (
    EXACT_PERCENTILES_UP_TO,
    FAILED,
    LOG_STATUSES,
    PENDING,
    SUCCESS,
    bucket_value,
    duration_bucket,
    hour_of,
    rebuild_rollups,
    rebuild_rollups_sync,
)
from .writer import ActivityWriter

__all__ = [
    "EXACT_PERCENTILES_UP_TO",
    "FAILED",
    "LOG_STATUSES",
    "MONTHS_AHEAD",
    "PENDING",
    "SUCCESS",
    "ActivityWriter",
    "LogQuery",
    "Pruned",
    "Recorder",
    "bucket_value",
    "daily",
    "decode_cursor",
    "duration_bucket",
    "encode_cursor",
    "ensure_partitions",
    "hour_of",
    "list_logs",
    "partitions",
    "prune",
    "prune_expired",
    "rebuild_rollups",
    "rebuild_rollups_sync",
    "stats",
    "summaries",
]
