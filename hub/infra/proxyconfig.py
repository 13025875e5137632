"""``providers.<name>.proxy``: whether the hub forwards raw calls to a provider's API, and
within what bounds (docs/proxy.md).

Off unless ``enabled: true``. ``methods`` and ``path_prefixes`` narrow what may pass;
``forward_headers`` names the caller's headers allowed through on top of a safe default
set. A header that carries credentials or belongs to one connection can never be listed:
the hub adds the integration's own credentials, and nothing the caller sends may replace
or add to them.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

PROXY_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# Sent on whatever the config says: what an HTTP client needs to ask for a representation.
SAFE_REQUEST_HEADERS = ("Accept", "Accept-Language", "Content-Type", "If-Modified-Since", "If-None-Match")
# Headers that belong to one connection (RFC 9110 §7.6.1) or to the hop to a proxy.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"})
# Set by the hub (or the HTTP client) for every request; never taken from the caller.
HUB_SET = frozenset({"host", "content-length", "expect"})
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9._~:@!$&'()*+,;=-]+$")
# Header names that carry credentials by convention: Authorization, Cookie, X-Api-Key,
# X-Auth-Token, Private-Token, X-Client-Secret, ...
_CREDENTIAL = re.compile(r"auth|cookie|api-?key|token|secret|passw|session|signature|credential", re.IGNORECASE)


def header_refusal(name: str) -> str | None:
    """Why a caller's header named ``name`` may never be forwarded, or ``None``."""
    lower = name.lower()
    if lower in HOP_BY_HOP or lower.startswith("proxy-"):
        return "belongs to one connection (hop-by-hop)"
    if lower in HUB_SET:
        return "is set by the hub itself"
    if _CREDENTIAL.search(lower):
        return "may carry credentials; the hub sends the integration's own"
    return None


class ProxyConfig(BaseModel):
    """One provider's ``proxy`` section."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    # The HTTP methods the proxy forwards; others are answered 405 with Allow.
    methods: list[str] = Field(default_factory=lambda: list(PROXY_METHODS))
    # Paths under the API base the proxy may reach, matched by whole segments ("chat" admits
    # "chat/postMessage" but not "chatter"); empty admits every path.
    path_prefixes: list[str] = Field(default_factory=list)
    # Caller headers forwarded on top of the safe default set, by name.
    forward_headers: list[str] = Field(default_factory=list)

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"must list at least one method ({', '.join(PROXY_METHODS)}); to turn the proxy off, set enabled: false")
        out: list[str] = []
        for i, method in enumerate(v):
            upper = str(method).upper()
            if upper not in PROXY_METHODS:
                raise ValueError(f"entry {i} ({method!r}) must be one of {', '.join(PROXY_METHODS)}")
            if upper not in out:
                out.append(upper)
        return out

    @field_validator("path_prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for i, prefix in enumerate(v):
            segments = str(prefix).strip("/").split("/")
            bad = next((s for s in segments if s in ("", ".", "..") or not _PREFIX_SEGMENT.match(s)), None)
            if bad is not None:
                raise ValueError(
                    f"entry {i} ({prefix!r}) must be a path under the API base: segments of letters, digits and "
                    f"-._~:@!$&'()*+,;= separated by '/', without '.', '..', empty segments or percent-encoding"
                )
            out.append("/".join(segments))
        return out

    @field_validator("forward_headers")
    @classmethod
    def _headers(cls, v: list[str]) -> list[str]:
        for i, name in enumerate(v):
            if not _TOKEN.match(str(name)):
                raise ValueError(f"entry {i} ({name!r}) must be a header name")
            refusal = header_refusal(str(name))
            if refusal is not None:
                raise ValueError(f"entry {i} ({name!r}) cannot be forwarded: it {refusal}")
        return list(v)
