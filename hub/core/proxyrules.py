"""The proxy's rules for paths and headers: pure functions, no I/O (docs/security.md).

A path taken from the caller is joined under the provider's API base, so it must never be
able to leave it. It is checked as sent (still percent-encoded) and again after each
round of decoding, because a server or proxy further on may decode it once more: a dot
segment, a separator or a scheme that appears at any round is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from yarl import URL

from ..errors import BadRequest
from ..infra.proxyconfig import SAFE_REQUEST_HEADERS, header_refusal

# Response headers handed back to the caller: what describes the representation, paging,
# caching and the provider's request budget. Everything else (Set-Cookie, Server, ...) stays.
SAFE_RESPONSE_HEADERS = frozenset({"content-type", "etag", "last-modified", "cache-control", "link", "retry-after", "content-language"})
_RATE_LIMIT = re.compile(r"^(x-)?(rate-?limit|ratelimit)[-_]", re.IGNORECASE)
_ENCODED_UNSAFE = re.compile(r"%(?:2e|2f|5c)", re.IGNORECASE)
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9a-f]|7f)", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:$")
# Rounds of percent-decoding looked at; a path still changing after these is refused.
MAX_DECODING_ROUNDS = 4


class BadProxyPath(BadRequest):
    """The path would leave the provider's API base, or cannot be sent as it is."""

    code = "proxy_bad_path"


def _bad(problem: str) -> BadProxyPath:
    return BadProxyPath(f"path: {problem}; the proxy only reaches paths under the provider's API base", details={"field": "path"})


def check_path(raw: str) -> str:
    """``raw`` (the part of the request path after ``…/proxy/``, as sent) if it is safe to
    join under the API base; :class:`BadProxyPath` naming the problem otherwise."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw) or _ENCODED_CONTROL.search(raw):
        raise _bad("holds a control character")
    if not raw.strip("/"):
        raise _bad("is empty")
    if raw.startswith("/"):
        raise _bad("starts with '//' (a scheme-relative URL names another host)")
    if _ENCODED_UNSAFE.search(raw):
        raise _bad("holds a percent-encoded '.', '/' or '\\' (%2e, %2f, %5c), which a server on the way may decode")
    layer = raw
    for _ in range(MAX_DECODING_ROUNDS):
        _check_layer(layer)
        decoded = unquote(layer)
        if decoded == layer:
            return raw
        if _ENCODED_UNSAFE.search(decoded) or _ENCODED_CONTROL.search(decoded):
            raise _bad("holds a doubly percent-encoded '.', '/', '\\' or control character (such as %252f)")
        layer = decoded
    raise _bad(f"is percent-encoded more than {MAX_DECODING_ROUNDS} times over")


def _check_layer(path: str) -> None:
    if "\\" in path:
        raise _bad("holds a backslash, which some servers read as '/'")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise _bad("holds a control character")
    if "://" in path:
        raise _bad("holds an absolute URL ('://')")
    segments = path.split("/")
    if _SCHEME.match(segments[0]):
        raise _bad(f"starts with a URL scheme ({segments[0]!r})")
    body = segments[:-1] if len(segments) > 1 and segments[-1] == "" else segments  # one trailing '/' is fine
    for segment in body:
        if segment in (".", ".."):
            raise _bad(f"holds a {segment!r} segment")
        if segment == "":
            raise _bad("holds an empty segment ('//')")


def target(base_url: str, path: str, query: str) -> URL:
    """The provider URL for a checked ``path``: under ``base_url``, on its scheme, host and
    port, whatever the path holds (checked once more on the built URL)."""
    base = URL(base_url.rstrip("/"), encoded=True)
    url = URL(f"{base}/{path}" + (f"?{query}" if query else ""), encoded=True)
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        raise _bad("would reach a different scheme, host or port than the API base")
    base_segments = _resolved(base.raw_path)
    if _resolved(url.raw_path)[: len(base_segments)] != base_segments or "//" in url.raw_path:
        raise _bad("would leave the API base's path once decoded and normalised")
    return url


def _resolved(raw_path: str) -> list[str]:
    """The path's segments as the most lenient server would read them: decoded until it
    stops changing, backslashes as separators, dot segments applied."""
    text = raw_path
    for _ in range(MAX_DECODING_ROUNDS + 1):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    out: list[str] = []
    for segment in text.replace("\\", "/").split("/"):
        if segment == "..":
            if out:
                out.pop()
            else:
                out.append("..")  # above the root: never a prefix of the base
        elif segment not in ("", "."):
            out.append(segment)
    return out


def within(path: str, prefixes: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or under one, by whole segments (no
    prefixes: every path). Compared after one round of decoding, as the provider reads it."""
    listed = list(prefixes)
    if not listed:
        return True
    readable = unquote(path).strip("/")
    return any(readable == p or readable.startswith(p + "/") for p in listed)


def request_headers(sent: Iterable[tuple[str, str]], forward: Iterable[str]) -> dict[str, str]:
    """The caller's headers that may go to the provider: the safe default set and the
    configured ``forward`` names, never one that carries credentials or belongs to the
    connection (the config refuses to list those; this holds whatever it says). A header
    that ``Connection`` names is dropped too."""
    pairs = list(sent)
    named_by_connection = {
        token.strip().lower() for name, value in pairs if name.lower() == "connection" for token in value.split(",")
    }
    allowed = {h.lower() for h in (*SAFE_REQUEST_HEADERS, *forward)}
    out: dict[str, str] = {}
    for name, value in pairs:
        lower = name.lower()
        if lower not in allowed or lower in named_by_connection or header_refusal(name) is not None:
            continue
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def response_headers(received: Mapping[str, str]) -> list[tuple[str, str]]:
    """The provider's response headers the caller gets back."""
    return [(k, v) for k, v in received.items() if k.lower() in SAFE_RESPONSE_HEADERS or _RATE_LIMIT.match(k)]
