"""Redaction: what may be written to activity rows, server logs and error messages.

Two nets. By key name: a mapping key that names a credential has its value replaced.
Which names do is decided by a :class:`Redaction` policy: names that mean a credential
anywhere (``access_token``, ``client_secret``, ``password``...), the OAuth machinery's
own names (``code``, ``state``, ``key``) in the rows it writes itself, and the keys a
provider declares secret; a provider may also declare keys that are never secret by name
alone. By value: the exact secrets in play for a call (its token, the client secret) and
strings shaped like well-known credentials (the core's JWT and Bearer shapes, and each
provider's declared ``token_shapes``) are masked wherever they appear, including inside
longer strings such as URLs or provider error messages.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import jsontext

MASK = "[REDACTED]"

# Names that mean a credential wherever they appear.
_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|apikey|cookie|signature|verifier|"
    r"credential|private[_-]?key|^client_assertion$)",
    re.IGNORECASE,
)
# Credentials in the OAuth machinery's own records (the callback's code and state, an API
# key), and ordinary words in a provider's data (an issue's state, an error code).
OAUTH_KEYS = frozenset({"code", "state", "key"})

# Shapes of credentials worth masking even when nobody told us the exact value. Providers
# add their own (ProviderInfo.token_shapes) through declare_shapes.
_CORE_SHAPES = re.compile(
    r"(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWTs
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/-]{8,}=*"
    r"|oauth_token=\"[^\"]+\")"
)
# Every match of _CORE_SHAPES holds "eyJ", "bearer" in any case, or 'oauth_token="'. Having
# no literal start, the expression is tried at every position of a string, ten times the
# cost of a provider's shape: _mask_string lets a string with none of them by without it.
_declared: dict[str, tuple[re.Pattern[str], ...]] = {}
_shapes: tuple[re.Pattern[str], ...] = ()

# Credentials carried in a URL's query string (callback codes and states, API keys).
_SECRET_PARAMS = re.compile(
    r"([?&;](?:code|state|token|access_token|refresh_token|id_token|client_secret|key|api_key|apikey|signature)=)[^&#\s\"']+",
    re.IGNORECASE,
)


def declare_shapes(owner: str, shapes: Iterable[str]) -> None:
    """Mask strings matching ``shapes`` everywhere in this process from now on: in rows,
    error messages and server logs alike. Declaring again for ``owner`` replaces its set."""
    global _shapes
    _declared[owner] = tuple(re.compile(s) for s in shapes)
    _shapes = tuple(p for patterns in _declared.values() for p in patterns)


@functools.lru_cache(maxsize=4096)
def _credential_name(key: str) -> bool:
    # Cached: payloads repeat the same few keys on every call, and the answer for a key
    # never changes.
    return bool(_SECRET_KEY.search(key))


@dataclass(frozen=True)
class Redaction:
    """Which mapping keys have their values masked.

    ``secret_keys`` and ``safe_keys`` are a provider's declarations (compared
    case-insensitively), secret winning over safe. ``oauth`` marks the rows the OAuth
    machinery writes itself: there the OAuth names (:data:`OAUTH_KEYS`) are secret too and
    no key is safe. A safe key's value is still masked by value and by shape.
    """

    secret_keys: frozenset[str] = frozenset()
    safe_keys: frozenset[str] = frozenset()
    oauth: bool = True

    @classmethod
    def declared(cls, secret_keys: Iterable[str] = (), safe_keys: Iterable[str] = (), *, oauth: bool = False) -> Redaction:
        return cls(frozenset(k.lower() for k in secret_keys), frozenset(k.lower() for k in safe_keys), oauth)

    def in_oauth(self) -> Redaction:
        return self if self.oauth else replace(self, oauth=True)

    def is_secret(self, key: str) -> bool:
        lower = key.lower()
        if lower in self.secret_keys:
            return True
        if self.oauth:  # the OAuth machinery's own rows: nothing a provider says is safe
            return lower in OAUTH_KEYS or _credential_name(key)
        return lower not in self.safe_keys and _credential_name(key)


# What a caller that names no policy gets: every name the hub knows as a credential.
STRICT = Redaction()


def is_secret_key(key: str) -> bool:
    return STRICT.is_secret(key)


def redact(value: Any, secrets: Iterable[str] = (), policy: Redaction = STRICT) -> Any:
    """A copy of ``value`` (JSON-like) with credentials masked; ``policy`` says which keys
    are secret by name (by default every name the hub knows)."""
    known = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
    return _walk(value, known, policy)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    return _mask_string(text, known_secrets(secrets))


def known_secrets(secrets: Iterable[str]) -> list[str]:
    """The secrets :func:`redact_text` masks, in the order it masks them (longest first):
    for a caller that masks many texts with the same secrets (:func:`mask_known`)."""
    return sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)


def mask_known(text: str, known: list[str]) -> str:
    """:func:`redact_text` with the secrets already put through :func:`known_secrets`."""
    return _mask_string(text, known)


# Deeper than this, a value is replaced by TOO_DEEP. Action input is refused past
# hub.validation.MAX_DEPTH (64), so only an odd provider answer or plugin result is ever cut;
# the bound keeps what is stored within reach of the recursive JSON encoder.
MAX_DEPTH = 128
TOO_DEEP = "[NESTED TOO DEEPLY]"


_LEAVES = frozenset({int, float, bool, type(None)})


def _walk(value: Any, known: list[str], policy: Redaction) -> Any:
    # Iterative: redaction runs after a call has reached the provider, so no value may make
    # it fail (a recursion error here used to lose the call's activity row).
    out: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, out, 0, 1)]
    while stack:
        item, parent, slot, depth = stack.pop()
        if isinstance(item, str):
            parent[slot] = _mask_string(item, known)
            continue
        # What JSON decodes to is told apart by its exact type first: isinstance against
        # the Mapping ABC is a Python-level call, paid only by other kinds of value.
        kind = type(item)
        if kind in _LEAVES:
            parent[slot] = item
            continue
        mapping = kind is dict or (kind is not list and isinstance(item, Mapping))
        if not (mapping or isinstance(item, (list, tuple))):
            parent[slot] = item
        elif depth > MAX_DEPTH:
            parent[slot] = TOO_DEEP
        elif mapping:
            copy: dict[str, Any] = {}
            parent[slot] = copy
            for k, v in item.items():
                key = str(k)
                if policy.is_secret(key) and v not in (None, "", False):
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
    if "=" in text:  # every match of _SECRET_PARAMS holds one
        text = _SECRET_PARAMS.sub(lambda m: m.group(1) + MASK, text)
    lower = text.lower()
    if "eyj" in lower or "bearer" in lower or 'oauth_token="' in lower:
        text = _CORE_SHAPES.sub(MASK, text)
    for shape in _shapes:
        text = shape.sub(MASK, text)
    return text


class EncodedJSON(str):
    """A JSON document already encoded, by :func:`capped_json`. ``plain`` says it is the
    value's own encoding (nothing was cut, nothing turned into text). The activity columns
    (``hub.store.models.StoredJSON``) write it as it is instead of encoding the value again."""

    plain: bool = False


_UNREPRESENTABLE = {"truncated": True, "reason": "not representable as JSON"}


def capped_json(value: Any, limit: int) -> EncodedJSON | None:
    """The JSON text of :func:`capped`'s answer, encoded once: measuring the value's size
    needs its encoding anyway, and the activity row stores that same text."""
    if value is None:
        return None
    try:
        text, size = _encoded(value, None)
        plain = True
    except (TypeError, ValueError, RecursionError):
        try:
            text, size = _encoded(value, str)
        except (TypeError, ValueError, RecursionError):
            # Too deep, or refers to itself: nothing a JSON column could hold as it is.
            return EncodedJSON(json.dumps(_UNREPRESENTABLE))
        plain = False
    if size > limit:
        # Rare, and read by people: the preview and its size are those of the standard
        # library's spacing, as they always were.
        spaced = _spaced(value, None if plain else str)
        text = json.dumps({"truncated": True, "size": len(spaced), "preview": spaced[: max(0, limit - 100)]}, ensure_ascii=False)
        plain = False
    encoded = EncodedJSON(text)
    encoded.plain = plain
    return encoded


def _encoded(value: Any, default: Any) -> tuple[str, int]:
    """``value``'s JSON text and its size in UTF-8 bytes."""
    try:
        data = jsontext.dumps(value, default=default)
    except UnicodeEncodeError:
        # A lone surrogate (JSON input may carry one as an escape): no database takes it
        # raw, so it is stored escaped, as the column's own encoder would have written it.
        text = json.dumps(value, default=default)
        return text, len(text)
    return data.decode("utf-8"), len(data)


def _spaced(value: Any, default: Any) -> str:
    text = json.dumps(value, default=default, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, default=default)  # a lone surrogate, escaped as above
    return text


def capped(value: Any, limit: int) -> Any:
    """``value`` itself if its JSON form fits in ``limit`` bytes, else a marked preview.

    A value that is not plain JSON (a plugin may hand back a datetime, a set, a Decimal)
    comes back as its JSON round trip, which the database's JSON column accepts.
    """
    encoded = capped_json(value, limit)
    if encoded is None:
        return None
    return value if encoded.plain else json.loads(encoded)
