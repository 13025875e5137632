"""Events to the host application (docs/events.md): the outbox written with each change,
the loop that delivers it signed, and what the API and the CLI read and redo of it."""

from .outbox import EVENT_STATUSES, Outbox
from .service import EventService

__all__ = ["EVENT_STATUSES", "EventService", "Outbox"]
