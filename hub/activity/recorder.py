"""One upstream call's outcome as an activity row: redacted, size-capped, timed, counted."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import HubError
from ..infra import metrics
from ..redact import capped, redact, redact_text
from ..store.models import Integration
from .rollup import FAILED, SUCCESS
from .writer import ActivityWriter


class Recorder:
    """Writes the rows the core asks for. ``secrets`` gives the configured secrets, masked
    by value in every row on top of the call's own tokens."""

    def __init__(self, writer: ActivityWriter, *, max_payload_bytes: int, secrets: Callable[[], Sequence[str]]) -> None:
        self.writer = writer
        self.limit = max_payload_bytes
        self.secrets = secrets

    async def record(
        self,
        integration: Integration,
        action: str,
        started: float,
        *,
        request: Any = None,
        response: Any = None,
        error: BaseException | None = None,
        secrets_: tuple[str, ...] = (),
        pending_id: int | None = None,
    ) -> None:
        known = (*secrets_, *self.secrets())
        message = None
        if error is not None:
            message = redact_text(error.message if isinstance(error, HubError) else type(error).__name__, known)
            provider_code = getattr(error, "provider_code", None)
            if provider_code and provider_code not in message:
                message = f"{message} [{provider_code}]"
        elapsed = time.perf_counter() - started
        outcome = "success" if error is None else getattr(error, "code", None) or "error"
        metrics.UPSTREAM_CALLS.labels(integration.provider, action, outcome).inc()
        metrics.UPSTREAM_SECONDS.labels(integration.provider, action).observe(elapsed)
        row = {
            "integration_id": integration.id,
            "action": action,
            "status": FAILED if error is not None else SUCCESS,
            "request_data": capped(redact(request, known), self.limit),
            "response_data": capped(redact(response, known), self.limit),
            "error_message": message,
            "duration_ms": int(elapsed * 1000),
        }
        if pending_id is None:
            await self.writer.record(row)
        else:
            await self.writer.finish_pending(pending_id, row)

    async def start_pending(self, integration: Integration, action: str, request: Any, secrets_: tuple[str, ...]) -> int:
        """A PENDING row for a long call, written now and completed by :meth:`record`."""
        row = {"integration_id": integration.id, "action": action, "request_data": capped(redact(request, secrets_), self.limit), "duration_ms": 0}
        return await self.writer.start_pending(row)
