"""Redaction: what may be written to activity rows, server logs and error messages.

Two nets. By key name: any mapping key that names a credential has its value replaced.
By value: the exact secrets in play for a call (its token, the client secret) and
strings shaped like well-known credentials are masked wherever they appear, including
inside longer strings such as URLs or provider error messages.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|apikey|cookie|signature|verifier|"
    r"credential|private[_-]?key|^code$|^state$|^key$|^client_assertion$)",
    re.IGNORECASE,
)
# Shapes of credentials worth masking even when nobody told us the exact value.
_SECRET_SHAPES = re.compile(
    r"(xox[abposre]-[A-Za-z0-9-]{8,}"  # Slack tokens
    r"|xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9-]{8,}"  # Slack refresh tokens
    r"|ya29\.[A-Za-z0-9_-]{8,}"  # Google access tokens
    r"|1//[A-Za-z0-9_-]{16,}"  # Google refresh tokens
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWTs
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/-]{8,}=*"
    r"|oauth_token=\"[^\"]+\")"
)

# Credentials carried in a URL's query string (callback codes and states, API keys).
_SECRET_PARAMS = re.compile(
    r"([?&;](?:code|state|token|access_token|refresh_token|id_token|client_secret|key|api_key|apikey|signature)=)[^&#\s\"']+",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    # Cached: payloads repeat the same few keys on every call, and the answer for a key
    # never changes.
    return bool(_SECRET_KEY.search(key))


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like) with credentials masked."""
    known = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
    return _walk(value, known)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    known = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
    return _mask_string(text, known)


# Deeper than this, a value is replaced by TOO_DEEP. Action input is refused past
# hub.validation.MAX_DEPTH (64), so only an odd provider answer or plugin result is ever cut;
# the bound keeps what is stored within reach of the recursive JSON encoder.
MAX_DEPTH = 128
TOO_DEEP = "[NESTED TOO DEEPLY]"


def _walk(value: Any, known: list[str]) -> Any:
    # Iterative: redaction runs after a call has reached the provider, so no value may make
    # it fail (a recursion error here used to lose the call's activity row).
    out: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, out, 0, 1)]
    while stack:
        item, parent, slot, depth = stack.pop()
        if isinstance(item, str):
            parent[slot] = _mask_string(item, known)
        elif not isinstance(item, (Mapping, list, tuple)):
            parent[slot] = item
        elif depth > MAX_DEPTH:
            parent[slot] = TOO_DEEP
        elif isinstance(item, Mapping):
            copy: dict[str, Any] = {}
            parent[slot] = copy
            for k, v in item.items():
                key = str(k)
                if is_secret_key(key) and v not in (None, "", False):
                    copy[key] = MASK
                else:
                    copy[key] = None
                    stack.append((v, copy, key, depth + 1))
        else:
            items: list[Any] = [None] * len(item)
            parent[slot] = items
            stack.extend((v, items, i, depth + 1) for i, v in enumerate(item))
    return out[0]


def _mask_string(text: str, known: list[str]) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _SECRET_PARAMS.sub(lambda m: m.group(1) + MASK, text)
    return _SECRET_SHAPES.sub(MASK, text)


def capped(value: Any, limit: int) -> Any:
    """``value`` itself if its JSON form fits in ``limit`` bytes, else a marked preview.

    A value that is not plain JSON (a plugin may hand back a datetime, a set, a Decimal)
    comes back as its JSON round trip, which the database's JSON column accepts.
    """
    if value is None:
        return None
    try:
        text = json.dumps(value, ensure_ascii=False)
        plain = True
    except (TypeError, ValueError, RecursionError):
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            # Too deep, or refers to itself: nothing a JSON column could hold as it is.
            return {"truncated": True, "reason": "not representable as JSON"}
        plain = False
    # At most 4 bytes per character in UTF-8: skip the encoding when it cannot matter.
    if len(text) * 4 <= limit or len(text.encode("utf-8")) <= limit:
        return value if plain else json.loads(text)
    return {"truncated": True, "size": len(text), "preview": text[: max(0, limit - 100)]}
