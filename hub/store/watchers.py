"""Who wants to hear that a user's integrations changed status: in-process watchers, told
after the transaction that changed a row has committed.

This is how an open MCP session learns that its user connected or disconnected an account
(its tool list changed). It is per process: a change made by another worker process is not
heard here, and a client that missed a notification still sees the truth on its next
``tools/list``, which always reads the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

log = logging.getLogger("hub")

Watcher = Callable[[str], None]


class StatusWatchers:
    def __init__(self) -> None:
        self._by_user: dict[str, dict[object, Watcher]] = {}

    def watch(self, user_id: str, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher(user_id)`` after each committed status change of the user's
        integrations; returns the (idempotent) call that stops it. Watchers are plain
        functions run on the event loop: they must not block and should not raise."""
        token = object()
        self._by_user.setdefault(user_id, {})[token] = watcher

        def stop() -> None:
            mine = self._by_user.get(user_id)
            if mine is not None:
                mine.pop(token, None)
                if not mine:
                    self._by_user.pop(user_id, None)

        return stop

    def watching(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, {}))

    def changed(self, user_ids: Iterable[str]) -> None:
        for user_id in set(user_ids):
            for watcher in list(self._by_user.get(user_id, {}).values()):
                try:
                    watcher(user_id)
                except Exception as exc:  # one broken watcher must not stop the others, or the change
                    log.warning("a status watcher failed (%s)", type(exc).__name__)
