"""Pieces of :class:`hub.testing.FakeProvider` that are not the OAuth rules themselves:
what a recorded request looks like, the records behind codes and tokens, and the pages."""

from __future__ import annotations

import base64
import binascii
import html
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

# An empty icon inline: a browser showing the page asks the fake for no /favicon.ico (a 404 in its console).
_ICON = '<link rel="icon" href="data:,">'
CONSENT_FIELDS = ("client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method")


@dataclass
class FakeCall:
    """One HTTP request as the fake received it: ``form`` for form bodies, ``json`` for JSON ones."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    form: dict[str, str]
    json: Any = None
    at: float = 0.0  # time.monotonic() when the request arrived


@dataclass
class FakeToken:
    """An access or refresh token the fake issued; ``account`` is the identity it speaks for."""

    value: str
    kind: str  # "access" or "refresh"
    account: dict[str, Any]
    scope: str
    expires_at: float | None = None
    revoked: bool = False
    spent: bool = False  # a rotated refresh token
    grant: str = ""  # the authorization it belongs to: revoking a refresh token ends them all
    extra: dict[str, Any] = field(default_factory=dict)  # whatever a subclass wants to keep with it

    def usable(self, now: float) -> bool:
        return not (self.revoked or self.spent or (self.expires_at is not None and now >= self.expires_at))


@dataclass
class Grant:
    """What a user approved on the consent page, waiting for its code to be exchanged."""

    redirect_uri: str
    scope: str
    challenge: str | None
    issued_at: float
    used: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # what a subclass read from the consent form


def new_secret(prefix: str) -> str:
    # Obviously fake values: nothing here may look like a real provider's credentials.
    return f"{prefix}-{secrets.token_hex(16)}"


def add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def basic_credentials(header: str) -> tuple[str, str] | None:
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret


async def record(request: web.Request) -> FakeCall:
    form: dict[str, str] = {}
    body: Any = None
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.can_read_body:
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        elif request.content_type == "application/json":
            try:
                body = json.loads(await request.text())
            except ValueError:
                body = None
    return FakeCall(request.method, request.path, dict(request.headers), dict(request.query), form, body, time.monotonic())


def state_of(codes: dict[str, Grant], tokens: dict[str, FakeToken], issued: list[str]) -> dict[str, Any]:
    """What a fake issued, as JSON-serialisable data (the sandbox keeps it across restarts)."""
    return {
        "codes": {code: asdict(grant) for code, grant in codes.items()},
        "tokens": {value: asdict(token) for value, token in tokens.items()},
        "issued": list(issued),
    }


def load_state(state: dict[str, Any]) -> tuple[dict[str, Grant], dict[str, FakeToken], list[str]]:
    codes = {code: Grant(**grant) for code, grant in state.get("codes", {}).items()}
    tokens = {value: FakeToken(**token) for value, token in state.get("tokens", {}).items()}
    return codes, tokens, list(state.get("issued", []))


def consent_page(
    title: str, params: dict[str, str], action: str, *, fields: tuple[str, ...] = CONSENT_FIELDS, separator: str = " ",
) -> web.Response:
    e = html.escape
    hidden = "".join(f'<input type="hidden" name="{name}" value="{e(params[name])}">' for name in fields if name in params)
    scopes = "".join(f"<li><code>{e(s)}</code></li>" for s in split_scopes(params.get("scope", ""), separator)) or "<li><em>none</em></li>"
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{_ICON}<title>Authorize | {e(title)}</title></head>'
        f'<body><main><h1>App <code id="client-id">{e(params.get("client_id", ""))}</code> asks for access to {e(title)}</h1>'
        f'<ul id="scopes">{scopes}</ul><form method="post" action="{e(action)}">{hidden}'
        '<button type="submit" name="decision" value="deny" id="deny">Deny</button>'
        '<button type="submit" name="decision" value="allow" id="allow">Allow</button>'
        "</form></main></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


def split_scopes(raw: str, separator: str = " ") -> list[str]:
    return [s.strip() for s in raw.split(separator.strip() or None) if s.strip()]


def error_page(problem: str) -> web.Response:
    page = f'<!doctype html><html lang="en"><head><meta charset="utf-8">{_ICON}</head><body><h1>Something went wrong</h1><p><code id="error">{html.escape(problem)}</code></p></body></html>'
    return web.Response(status=400, text=page, content_type="text/html")
