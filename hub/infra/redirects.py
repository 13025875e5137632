"""Return URLs: where a callback may send the browser afterwards.

A return URL is compared with ``server.allowed_redirects`` as the place a browser (and the
server behind it) would reach, not as the text it was written as: the path is normalised
first (RFC 3986 §6.2.2: percent-decoding of unreserved characters, upper-case escapes,
and §5.2.4: dot-segment removal), and an allowed path matches whole segments only. Forms
that browsers and servers disagree about, or read differently from what the text seems to
say, are refused outright rather than guessed at: backslashes, encoded slashes and
backslashes, an encoded ``%`` (double encoding), ``..;`` segments, user information, and
control characters.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# Everything printable in ASCII stays as written; only other characters get escaped.
_KEEP = "".join(chr(c) for c in range(0x21, 0x7F))


class Refused(ValueError):
    """A URL that cannot be a return URL. ``code`` is the API error code to answer with."""

    def __init__(self, message: str, code: str = "return_url_not_allowed") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Place:
    """A URL reduced to what decides where the browser ends up."""

    scheme: str
    host: str
    port: int
    path: str
    query: str
    fragment: str

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        query = f"?{self.query}" if self.query else ""
        fragment = f"#{self.fragment}" if self.fragment else ""
        return f"{self.scheme}://{host}{port}{self.path}{query}{fragment}"

    def within(self, allowed: Place) -> bool:
        """Same origin, and the path is the allowed path or below it (whole segments)."""
        if (self.scheme, self.host, self.port) != (allowed.scheme, allowed.host, allowed.port):
            return False
        base = allowed.path.rstrip("/")
        return self.path == base or self.path.startswith(base + "/")


def parse(url: str) -> Place:
    """``url`` normalised, or :class:`Refused` saying what is wrong with it."""
    if any(c <= " " or c == "\x7f" for c in url):
        raise Refused("must not contain spaces or control characters", code="validation_error")
    if "\\" in url:
        raise Refused("must not contain a backslash (browsers read it as a slash)")
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1": an IPv6 literal without its closing bracket
        raise Refused("has an invalid host or port", code="validation_error") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        raise Refused("must be an absolute http(s) URL", code="validation_error")
    if "@" in parts.netloc:
        raise Refused("must not carry user information (user@host)")
    try:
        port = DEFAULT_PORTS[parts.scheme] if parts.port is None else parts.port
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise Refused("has an invalid host or port", code="validation_error") from None
    if not host:
        raise Refused("must be an absolute http(s) URL", code="validation_error")
    return Place(
        scheme=parts.scheme,
        host=host.lower(),
        port=port,
        path=normalise_path(parts.path),
        query=quote(parts.query, safe=_KEEP),
        fragment=quote(parts.fragment, safe=_KEEP),
    )


def normalise_path(path: str) -> str:
    path = _ESCAPE.sub(_decode_escape, quote(path, safe=_KEEP)) or "/"
    for segment in path.split("/"):
        # Some servers drop ";params" before resolving dot segments, so "..;x" climbs there.
        if ";" in segment and segment.split(";", 1)[0] in (".", ".."):
            raise Refused("must not contain a dot segment with parameters ('..;')")
    return remove_dot_segments(path)


def _decode_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    if char in "/\\":
        raise Refused("must not contain an encoded slash or backslash in its path")
    if char == "%":
        raise Refused("must not contain an encoded '%' in its path (double encoding)")
    return char if char in UNRESERVED else f"%{match.group(1).upper()}"


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for an absolute path."""
    out: list[str] = []
    rest = path
    while rest:
        if rest.startswith("../"):
            rest = rest[3:]
        elif rest.startswith("./"):
            rest = rest[2:]
        elif rest.startswith("/./") or rest == "/.":
            rest = "/" + rest[3:]
        elif rest.startswith("/../") or rest == "/..":
            rest = "/" + rest[4:]
            if out:
                out.pop()
        elif rest in (".", ".."):
            rest = ""
        else:
            end = rest.find("/", 1)
            end = len(rest) if end == -1 else end
            out.append(rest[:end])
            rest = rest[end:]
    return "".join(out) or "/"
