"""One upstream call's outcome as an activity row: redacted, size-capped, timed, counted."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import HubError
from ..infra import metrics
from ..redact import Redaction, capped_json, redact, redact_text
from ..store.models import Integration
from .rollup import FAILED, SUCCESS
from .writer import ActivityWriter


# The rows the OAuth machinery writes itself: there ``code``, ``state`` and ``key`` name
# credentials. In an action's row they are the provider's data (an issue's state).
OAUTH_ROWS = frozenset({"exchange_code", "import_token", "refresh_token", "revoke_token", "account_identity"})

ORDINARY = Redaction.declared()


class Recorder:
    """Writes the rows the core asks for. ``secrets`` gives the configured secrets, masked
    by value in every row on top of the call's own tokens; ``redaction`` gives a provider's
    declared policy for which keys are secret by name."""

    def __init__(
        self,
        writer: ActivityWriter,
        *,
        max_payload_bytes: int,
        secrets: Callable[[], Sequence[str]],
        redaction: Callable[[str], Redaction] | None = None,
    ) -> None:
        self.writer = writer
        self.limit = max_payload_bytes
        self.secrets = secrets
        self.redaction = redaction or (lambda provider: ORDINARY)

    def policy(self, provider: str, action: str) -> Redaction:
        declared = self.redaction(provider)
        return declared.in_oauth() if action in OAUTH_ROWS else declared

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
        policy = self.policy(integration.provider, action)
        message = None
        if error is not None:
            message = redact_text(error.message if isinstance(error, HubError) else type(error).__name__, known)
            provider_code = getattr(error, "provider_code", None)
            if provider_code and provider_code not in message:
                message = f"{message} [{provider_code}]"
        elapsed = time.perf_counter() - started
        outcome = "success" if error is None else getattr(error, "code", None) or "error"
        metrics.labelled(metrics.UPSTREAM_CALLS, integration.provider, action, outcome).inc()
        metrics.labelled(metrics.UPSTREAM_SECONDS, integration.provider, action).observe(elapsed)
        row = {
            "integration_id": integration.id,
            "action": action,
            "status": FAILED if error is not None else SUCCESS,
            # Encoded once here, to measure them; the writer stores that text as it is.
            "request_data": capped_json(redact(request, known, policy), self.limit),
            "response_data": capped_json(redact(response, known, policy), self.limit),
            "error_message": message,
            "duration_ms": int(elapsed * 1000),
        }
        if pending_id is None:
            await self.writer.record(row)
        else:
            await self.writer.finish_pending(pending_id, row)

    async def start_pending(self, integration: Integration, action: str, request: Any, secrets_: tuple[str, ...]) -> int:
        """A PENDING row for a long call, written now and completed by :meth:`record`."""
        cleaned = redact(request, (*secrets_, *self.secrets()), self.policy(integration.provider, action))
        row = {"integration_id": integration.id, "action": action, "request_data": capped_json(cleaned, self.limit), "duration_ms": 0}
        return await self.writer.start_pending(row)
