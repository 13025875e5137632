"""What binds an OAuth state to the browser that started it: the connect session's cookie.

A state started from a connect session's page carries the session's id and the SHA-256 of
the cookie that page set. Whatever finishes such a state (the provider's callback, the
token flow's page and post) must bring that very cookie, so an authorization URL that
reaches another browser cannot be finished there (docs/connect-sessions.md).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from ..errors import HubError
from ..store.models import ConnectSession, OAuthState
from ..store.sessions import secret_hash

COOKIE_PREFIX = "hub_cs_"


class SessionCookieRefused(HubError):
    status, code = 401, "connect_session_cookie_missing"


class SessionGone(HubError):
    status, code = 410, "connect_session_used"


def cookie_name(session_id: str) -> str:
    """One cookie per session, so two sessions open in one browser do not undo each other."""
    return COOKIE_PREFIX + session_id


def check_cookie(session_id: str, cookie_hash: str | None, cookies: Mapping[str, str]) -> None:
    """Refuse unless ``cookies`` holds the session's cookie and it hashes to ``cookie_hash``."""
    presented = cookies.get(cookie_name(session_id))
    if not presented:
        raise SessionCookieRefused(
            "this connection was started in another browser (its connect session's cookie is missing here); "
            "start again from the application you are connecting to",
            code="connect_session_cookie_missing",
        )
    if cookie_hash is None or not hmac.compare_digest(secret_hash(presented), cookie_hash):
        raise SessionCookieRefused(
            "this browser's connect session cookie does not match the one this connection was started with; "
            "start again from the application you are connecting to",
            code="connect_session_cookie_mismatch",
        )


def check_state_binding(state: OAuthState, session: ConnectSession | None, cookies: Mapping[str, str]) -> None:
    """For a state started from a connect session: the cookie must match, and the session
    must not have been cancelled since. A state of the plain connect route passes."""
    if state.session_id is None:
        return
    check_cookie(state.session_id, state.cookie_hash, cookies)
    if session is None or session.status == "cancelled":
        raise SessionGone("the connect session was cancelled; nothing was connected", code="connect_session_cancelled")
