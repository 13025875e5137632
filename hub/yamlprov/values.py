"""Small pure helpers over JSON values and Link headers, shared by the provider and its fake."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_LINK = re.compile(r'<([^>]*)>\s*;([^,]*)')


def pick(value: Any, path: str | None) -> Any:
    """``value`` followed along ``path`` (``data.items``; a digit indexes a list), else ``None``."""
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def put(value: dict[str, Any], path: str, new: Any) -> None:
    """Set ``path`` in ``value`` (a mapping), making the mappings on the way."""
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(value.get(part), dict):
            value[part] = {}
        value = value[part]
    value[last] = new


def next_link_param(header: str, param: str) -> str | None:
    """The ``param`` query value of the ``rel="next"`` URL in a ``Link`` header (RFC 8288)."""
    for url, rest in _LINK.findall(header or ""):
        rels = re.search(r'rel="?([^";]+)"?', rest)
        if rels and "next" in rels.group(1).split():
            found = dict(parse_qsl(urlsplit(url).query)).get(param)
            return found or None
    return None
