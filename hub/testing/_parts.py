"""Pieces of :class:`hub.testing.FakeProvider` that are not the OAuth rules themselves:
what a recorded request looks like, the records behind codes and tokens, and the pages."""

from __future__ import annotations

import base64
import binascii
import html
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

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
    tokens: list[FakeToken] = field(default_factory=list)


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
    return FakeCall(request.method, request.path, dict(request.headers), dict(request.query), form, body)


def consent_page(title: str, params: dict[str, str], action: str) -> web.Response:
    e = html.escape
    hidden = "".join(f'<input type="hidden" name="{name}" value="{e(params.get(name, ""))}">' for name in CONSENT_FIELDS)
    scopes = "".join(f"<li><code>{e(s)}</code></li>" for s in params.get("scope", "").split() if s) or "<li><em>none</em></li>"
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Authorize | {e(title)}</title></head>'
        f'<body><main><h1>App <code id="client-id">{e(params.get("client_id", ""))}</code> asks for access to {e(title)}</h1>'
        f'<ul id="scopes">{scopes}</ul><form method="post" action="{e(action)}">{hidden}'
        '<button type="submit" name="decision" value="deny" id="deny">Deny</button>'
        '<button type="submit" name="decision" value="allow" id="allow">Allow</button>'
        "</form></main></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


def error_page(problem: str) -> web.Response:
    page = f'<!doctype html><html lang="en"><body><h1>Something went wrong</h1><p><code id="error">{html.escape(problem)}</code></p></body></html>'
    return web.Response(status=400, text=page, content_type="text/html")
