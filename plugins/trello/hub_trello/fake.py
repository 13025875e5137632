"""A fake Trello for tests and for a local sandbox, built on :class:`hub.testing.FakeProvider`.

One server plays both hosts the hub talks to: ``trello.com`` (the consent page at
``/1/authorize``) and ``api.trello.com`` (the REST API under ``/1``). The base brings the
recording of every request (``calls``, each with its arrival time ``at``), the fault switches
(``fail_next``, ``rate_limit_next``, ``expire_tokens``, ``revoke_all``, also as ``/_fake``
control routes), ``delay`` and the state the sandbox keeps across restarts. This module
imitates Trello's side:

* the token flow (not OAuth 2.0): ``GET /1/authorize`` shows a consent page naming the app,
  each permission and how long the token lasts; "Allow" sends the browser to
  ``return_url#token=<64 hex chars>`` (``callback_method=fragment``). There is no token
  endpoint and no refresh: a token lasts its ``expiration`` (``dateExpires``);
* ``GET``/``DELETE /1/tokens/{token}``: token info and revocation (``{"_value": null}``);
* ``/1/members/me`` (also by member id or username), ``/1/members/me/boards``,
  ``/1/boards/{id}`` (with ``lists=`` / ``cards=``), ``/1/boards/{id}/lists``,
  ``/1/boards/{id}/cards``, ``GET``/``POST``/``PUT`` cards and card comments;
* credentials as the header ``Authorization: OAuth oauth_consumer_key="…", oauth_token="…"``
  or as query parameters ``key`` and ``token``; :func:`credentials_in` says where a recorded
  call carried them;
* Trello's error style: mostly **plain text** (``invalid key``, ``invalid token``,
  ``unauthorized permission requested``, ``invalid id``, ``invalid value for idList``,
  ``The requested resource was not found.``), but 429 answers are JSON;
* the rate limits: a sliding window per token (``token_limit`` per ``window`` seconds) and per
  API key (``key_limit``), counted when requests arrive, answered with 429
  ``{"error": "API_TOKEN_LIMIT_EXCEEDED" | "API_KEY_LIMIT_EXCEEDED", …}`` and **no**
  ``Retry-After``; every API answer carries the ``x-rate-limit-api-token-*`` and
  ``x-rate-limit-api-key-*`` headers. ``/1/members/{id}`` itself (not nested routes) has its own
  limit of ``members_limit`` per ``members_window`` seconds (100 per 900 s) per token, and past
  ``key_refusal_limit`` (200) refusals of one key within a window every request of that key is
  refused for one more window.

Deliberate simplifications and choices:

* One API key (``api_key``) and one member (``member``, "ada"), who owns every board. There are
  no organizations, checklists, attachments, webhooks or OAuth 1.0a endpoints.
* The consent page never asks anyone to log in: the member is always signed in.
* ``return_url`` is required and must be an absolute http(s) URL whose origin is in
  ``allowed_origins`` (any origin when that is ``None``); otherwise 400 ``Invalid return_url``.
  (Real Trello without a ``return_url`` shows the token on a page of its own.) An unknown
  ``key`` is a 401 ``invalid key``; every refusal of the consent page is plain text.
* ``response_type`` must be ``token`` and ``callback_method`` must be ``fragment``: the fake
  cannot play ``postMessage`` (Trello's other mode), so a hub that forgets the parameter finds
  out here rather than against the real thing.
* On "Deny" real Trello just shows a page; the fake redirects to
  ``return_url#error=access_denied`` so that tests can see the refusal.
* Reads need the ``read`` scope, writes the ``write`` scope; without them the answer is 401
  ``unauthorized permission requested``. ``email`` of ``/1/members/me`` is ``null`` without the
  ``account`` scope.
* Credentials are read from the header or the query string only, never from a body. When both
  carry them, the header wins (:func:`credentials_in` says ``"both"``).
* ``GET``/``DELETE /1/tokens/{token}`` need the key; the token in the path counts as the
  credential when neither header nor query carries one (Trello's own examples pass only the key
  for the GET). Unavoidably the token is then part of the URL.
* A request refused with 429 does not use up quota; a request refused for the token limit still
  counts against the key's refusals. Requests with an unknown key are not counted at all.
* Ids are 24 hex chars (ObjectId layout); ``shortLink``s are not accepted in place of ids.
  Seeded ids are deterministic; new ids are not secret, tokens are (``secrets``).
* ``cards=visible`` means open cards in open lists; ``open`` means every open card.
* Time: dates (``dateCreated``, ``dateExpires``, ``dateLastActivity``, new ids) come from
  ``clock`` (wall-clock seconds, replaceable); rate windows use each call's arrival ``at``
  (``time.monotonic()``).
* Fault switches: ``fail_next(status)`` without a body answers Trello's way, in plain text (the
  status's reason phrase); ``rate_limit_next()`` answers 429 ``API_TOKEN_LIMIT_EXCEEDED`` with
  the rate headers and without ``Retry-After`` (its ``retry_after`` is ignored), and counts in
  ``throttled``. As for every fake on the base, no switch applies to the consent page.
"""

from __future__ import annotations

import copy
import html
import random
import re
import secrets
import string
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from aiohttp import web

from hub.testing import FakeCall, FakeProvider, FakeToken

from .fake_webhooks import TrelloWebhooks

__all__ = ["FakeTrello", "credentials_in"]

EXPIRATIONS: dict[str, int | None] = {"1hour": 3600, "1day": 86400, "30days": 30 * 86400, "never": None}
EXPIRATION_TEXT = {"1hour": "for 1 hour", "1day": "for 1 day", "30days": "for 30 days", "never": "until you revoke it"}
SCOPE_TEXT = {
    "read": "Read all of your boards, lists, cards and comments",
    "write": "Create and change cards, lists and comments on your boards",
    "account": "Read your account details, including your email address",
}

NOT_FOUND = "The requested resource was not found."
POS_STEP = 16384  # Trello spaces new positions this far apart
MAX_TEXT = 16384  # longest name, desc or comment Trello accepts
SEED_TIME = 0x5F5E1000  # 2020-09-13: the timestamp part of seeded ids
SEED_DATE = "2024-01-15T10:00:00.000Z"

BOARD_FIELDS = ("id", "name", "desc", "closed", "idOrganization", "idMemberCreator", "pinned", "starred",
                "url", "shortUrl", "shortLink", "prefs", "labelNames", "dateLastActivity")
LIST_FIELDS = ("id", "name", "closed", "pos", "idBoard", "subscribed")
CARD_FIELDS = ("id", "idShort", "name", "desc", "closed", "idList", "idBoard", "pos", "due", "start",
               "dueComplete", "idLabels", "labels", "idMembers", "url", "shortUrl", "shortLink",
               "dateLastActivity")
MEMBER_FIELDS = ("id", "username", "fullName", "initials", "url", "avatarUrl", "email", "idBoards",
                 "confirmed", "memberType")

_HEX24 = re.compile(r"^[0-9a-fA-F]{24}$")
_OAUTH_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*"([^"]*)"')
_MEMBERS_ITSELF = re.compile(r"^/1/members/[^/]+/?$")
_PAGE_STYLE = """body { font-family: system-ui, sans-serif; background: #0079bf; margin: 0; color: #172b4d; }
main { max-width: 30rem; margin: 4rem auto; background: #fff; border-radius: 6px; padding: 2rem; }
.who { color: #5e6c84; } .buttons { display: flex; gap: 1rem; } button { flex: 1; padding: .7rem; }
#allow { background: #5aac44; color: #fff; border: none; }"""


class TrelloError(Exception):
    """Raised inside handlers; becomes a plain-text answer (or JSON, for 429s)."""

    def __init__(self, status: int, text: str, *, json_body: dict | None = None, headers: dict | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.json_body, self.headers = status, text, json_body, dict(headers or {})

    def response(self, headers: dict) -> web.Response:
        headers = {**headers, **self.headers}
        if self.json_body is not None:
            return web.json_response(self.json_body, status=self.status, headers=headers)
        return web.Response(status=self.status, text=self.text, content_type="text/plain", headers=headers)


def _bad_value(name: str) -> TrelloError:
    return TrelloError(400, f"invalid value for {name}")


def _iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _credentials(call: FakeCall) -> tuple[str, str, str | None]:
    """(key, token, where they travelled) of a recorded call; the header wins over the query."""
    header = next((v for k, v in call.headers.items() if k.lower() == "authorization"), "")
    scheme, _, rest = header.strip().partition(" ")
    # OAuth 1.0 header values are percent-encoded; plain keys and tokens are unaffected.
    oauth = {name: unquote(raw) for name, raw in _OAUTH_PARAM.findall(rest)} if scheme.lower() == "oauth" else {}
    in_header = bool(oauth.get("oauth_consumer_key") or oauth.get("oauth_token"))
    in_query = "key" in call.query or "token" in call.query
    where = "both" if in_header and in_query else "header" if in_header else "query" if in_query else None
    return (oauth.get("oauth_consumer_key") or call.query.get("key", ""),
            oauth.get("oauth_token") or call.query.get("token", ""), where)


def credentials_in(call: FakeCall) -> str | None:
    """Where a recorded call carried its key and token: ``"header"``, ``"query"``, ``"both"`` or None."""
    return _credentials(call)[2]


def _origin(url: str) -> str | None:
    """scheme://host[:port] of an absolute http(s) URL, normalised; None if it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # already lower case
    return f"{scheme}://{host}" + (f":{port}" if port and port != (443 if scheme == "https" else 80) else "")


def _scopes(raw: str) -> frozenset[str] | None:
    items = [s.strip() for s in raw.split(",") if s.strip()]
    return frozenset(items) if items and all(s in SCOPE_TEXT for s in items) else None


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _number(pos: float) -> int | float:
    return int(pos) if float(pos).is_integer() else pos


def _bool(value: Any, name: str) -> bool:
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in ("true", "1", "false", "0"):
        return value if isinstance(value, bool) else text in ("true", "1")
    raise _bad_value(name)


def _id_list(value: Any, name: str) -> list[str]:
    items = value if isinstance(value, list) else [] if value is None else str(value).split(",")
    ids = [str(item).strip().lower() for item in items if str(item).strip()]
    if not all(_HEX24.match(i) for i in ids):
        raise _bad_value(name)
    return list(dict.fromkeys(ids))


def _date(value: Any, name: str) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null")):
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise _bad_value(name) from None
    return _iso((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _text(value: Any, name: str) -> str:
    text = "" if value is None else str(value)
    if len(text) > MAX_TEXT:
        raise _bad_value(name)
    return text


class FakeTrello(TrelloWebhooks, FakeProvider):
    """State and routes of the fake; see the module docstring for what it imitates."""

    title = "Fake Trello"
    api_path = "/1"
    # Only the consent page is the base's: no token endpoint, and revocation is DELETE /1/tokens/{token}.
    paths = {"authorize": "/1/authorize", "token": None, "revoke": None, "userinfo": None}
    consent_fields = ("key", "name", "scope", "expiration", "response_type", "return_url", "callback_method")

    def __init__(
        self,
        api_key: str = "fake-trello-key",
        app_secret: str = "fake-trello-secret",  # signs webhook deliveries (fake_webhooks.py)
        *,
        token_limit: int = 100,
        key_limit: int = 300,
        window: float = 10.0,
        allowed_origins: list[str] | None = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__(api_key, app_secret, scope_separator=",", expires_in=None, delay=delay)
        self.token_limit, self.key_limit, self.window = token_limit, key_limit, window
        self.allowed_origins = None if allowed_origins is None else list(allowed_origins)
        # Limits the constructor does not take; tests may change them on the instance.
        self.members_limit, self.members_window, self.key_refusal_limit = 100, 900.0, 200
        self.comments: list[dict] = []
        self.webhooks: dict[str, dict] = {}  # fake_webhooks.py: created webhooks, and deliveries sent
        self.deliveries: list[dict] = []
        self.throttled = 0  # requests answered 429
        self._token_hits: dict[str, deque[float]] = {}
        self._key_hits: deque[float] = deque()
        self._members_hits: dict[str, deque[float]] = {}
        self._key_refusals: deque[float] = deque()
        self._key_locked_until = float("-inf")
        # Ids are not secrets; a seeded generator keeps the seed data identical run after run.
        self._rng = random.Random(20240115)
        self._counter = 0
        self.member: dict = {}
        self.boards: dict[str, dict] = {}
        self.lists: dict[str, dict] = {}
        self.cards: dict[str, dict] = {}
        self.labels: dict[str, dict] = {}
        self._seed()

    @property
    def api_key(self) -> str:
        return self.client_id

    @property
    def issued_tokens(self) -> list[str]:
        """The member tokens issued so far, oldest first (the base's ``issued``: Trello hands out no codes)."""
        return self.issued

    @property
    def revoked_tokens(self) -> set[str]:
        """The values of the tokens revoked so far (by ``DELETE /1/tokens/{token}`` or ``revoke_all``)."""
        return {value for value, token in self.tokens.items() if token.revoked}

    def hub_settings(self, base_url: str | None = None) -> dict[str, Any]:
        """The hub's ``providers.trello`` section that points at this fake, served at ``base_url``."""
        base = base_url or self.base_url
        return {"api_key": self.api_key, "app_secret": self.client_secret, "urls": {"authorize": f"{base}/1/authorize", "api": f"{base}/1"}}

    def issue_token(self, *, expiration: str = "30days", scope: str = "read,write", name: str = "Integration Hub") -> str:
        """Mint a member token as if the member had clicked "Allow"; for tests that skip the browser."""
        if expiration not in EXPIRATIONS:
            raise ValueError(f"expiration must be one of {', '.join(EXPIRATIONS)}")
        scopes = _scopes(scope)
        if scopes is None:
            raise ValueError(f"scope must be a comma-separated subset of {', '.join(SCOPE_TEXT)}")
        token = self.mint("access", {"idMember": self.member["id"]}, ",".join(sorted(scopes)), expires_in=EXPIRATIONS[expiration],
                          id=self._new_id(), identifier=name, expiration=expiration, created=self.clock())
        return token.value

    # ------------------------------------------------------------------ keeping state across restarts

    def export_state(self) -> dict[str, Any]:
        """The base's tokens plus the boards, lists, cards, comments and the id generator."""
        version, internal, gauss = self._rng.getstate()
        data = {"member": self.member, "boards": self.boards, "lists": self.lists, "cards": self.cards, "labels": self.labels}
        return {**super().export_state(), "data": data, "comments": self.comments, "counter": self._counter,
                "rng": [version, list(internal), gauss]}

    def import_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`export_state` gave; everything is read before anything changes."""
        data, comments, counter = copy.deepcopy(state["data"]), list(state["comments"]), int(state["counter"])
        version, internal, gauss = state["rng"]
        rng = random.Random()
        rng.setstate((version, tuple(internal), gauss))
        super().import_state(state)
        self.member, self.boards, self.lists, self.cards, self.labels = (
            data["member"], data["boards"], data["lists"], data["cards"], data["labels"])
        self.comments, self._counter, self._rng = comments, counter, rng
        self.account = self._identity()

    # ------------------------------------------------------------------ the consent page (base hooks)

    def authorize_problem(self, params: dict[str, str]) -> str | None:
        if params.get("key", "") != self.api_key:
            return "invalid key"
        if params.get("response_type") != "token":
            return "Invalid response_type"
        if params.get("callback_method") != "fragment":
            return "Invalid callback_method: the fake only supports fragment"
        origin = _origin(params.get("return_url", ""))
        if origin is None or (self.allowed_origins is not None and origin not in {_origin(o) for o in self.allowed_origins}):
            return "Invalid return_url"
        if _scopes(params.get("scope", "read")) is None:
            return "Invalid scope"
        if params.get("expiration", "30days") not in EXPIRATIONS:
            return "Invalid expiration"
        return None

    def refusal_answer(self, problem: str) -> web.Response:
        return web.Response(status=401 if problem == "invalid key" else 400, text=problem, content_type="text/plain")

    def consent_answer(self, params: dict[str, str], action: str) -> web.Response:
        e = html.escape
        fields = {**{k: v for k, v in params.items() if k in self.consent_fields}, "name": params.get("name") or "An unknown application",
                  "scope": params.get("scope", "read"), "expiration": params.get("expiration", "30days")}
        hidden = "".join(f'<input type="hidden" name="{k}" value="{e(fields[k])}">' for k in self.consent_fields)
        items = "".join(f'<li data-scope="{e(s)}"><strong>{e(s)}</strong>: {SCOPE_TEXT[s]}</li>'
                        for s in (s.strip() for s in fields["scope"].split(",")) if s)
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Authorize {e(fields["name"])} | {self.title}</title>
<style>{_PAGE_STYLE}</style></head>
<body><main>
<h1>Let <span id="app-name">{e(fields["name"])}</span> use your account?</h1>
<p class="who">Signed in as {e(self.member["fullName"])} (@{e(self.member["username"])})</p>
<p>It will be able to:</p><ul id="scopes">{items}</ul>
<p id="expiration">Access lasts {EXPIRATION_TEXT[fields["expiration"]]}.</p>
<form method="post" action="{e(action)}">{hidden}
<div class="buttons">
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
</div></form>
</main></body></html>
"""
        return web.Response(text=page, content_type="text/html")

    def approve(self, params: dict[str, str]) -> str:
        token = self.issue_token(expiration=params.get("expiration", "30days"), scope=params.get("scope", "read"),
                                 name=params.get("name") or "An unknown application")
        return self._back_to(params["return_url"], f"token={token}")

    def deny(self, params: dict[str, str]) -> str:
        return self._back_to(params["return_url"], "error=access_denied")

    @staticmethod
    def _back_to(return_url: str, fragment: str) -> str:
        # Any fragment already on return_url is replaced: a URL has only one.
        return urlunsplit(urlsplit(return_url)._replace(fragment=fragment))

    def new_token_value(self, kind: str, extra: dict[str, Any]) -> str:
        return secrets.token_hex(32)  # 64 hex chars, the shape of a classic Trello token

    # ------------------------------------------------------------------ fault switches (base hooks)

    def fault_answer(self, status: int, body: Any) -> web.Response:
        if body is None:  # Trello's own errors are plain text
            try:
                body = HTTPStatus(status).phrase
            except ValueError:
                body = "Error"
        return super().fault_answer(status, body)

    def rate_limit_answer(self, retry_after: int) -> web.Response:
        # Trello documents no Retry-After: ``retry_after`` is not sent.
        call = self.current_call()
        key, value, _ = _credentials(call)
        self.throttled += 1
        headers = self._limit_headers(call.at, self.tokens.get(value), key_ok=key == self.api_key, token_spent=True)
        return self._too_many("API_TOKEN_LIMIT_EXCEEDED", headers).response({})

    # ------------------------------------------------------------------ routes, credentials and limits

    def add_routes(self, app: web.Application) -> None:
        for method, path, handler, needs in (
            ("GET", "/tokens/{token}", self._token_info, "key"),
            ("DELETE", "/tokens/{token}", self._token_delete, "key"),
            ("GET", "/members/{member}", self._member_get, "read"),
            ("GET", "/members/{member}/boards", self._member_boards, "read"),
            ("GET", "/boards/{board}", self._board_get, "read"),
            ("GET", "/boards/{board}/lists", self._board_lists, "read"),
            ("GET", "/boards/{board}/cards", self._board_cards, "read"),
            ("POST", "/cards", self._card_create, "write"),
            ("GET", "/cards/{card}", self._card_get, "read"),
            ("PUT", "/cards/{card}", self._card_update, "write"),
            ("POST", "/cards/{card}/actions/comments", self._card_comment, "write"),
        ):
            app.router.add_route(method, self.api_path + path, self._api(handler, needs))
        self.add_webhook_routes(app)

    def _api(self, handler: Callable[[web.Request, FakeToken, dict], Any], needs: str) -> Callable[[web.Request], Any]:
        """A route that checks key, token, limits and scope (``needs``: "read", "write", or just
        "key" for the token routes), then answers ``handler``'s result as JSON."""

        async def endpoint(request: web.Request) -> web.Response:
            call = self.current_call()
            headers: dict = {}
            try:
                token, headers = self._admit(request, call)
                if needs != "key" and needs not in token.scope.split(","):
                    raise TrelloError(401, "unauthorized permission requested")
                return self.json(handler(request, token, await self._params(request, call)), headers=headers)
            except TrelloError as err:
                return err.response(headers)

        return endpoint

    @staticmethod
    async def _params(request: web.Request, call: FakeCall) -> dict:
        """Query, form and JSON parameters together; never the credentials."""
        form = call.form
        if request.content_type == "multipart/form-data":
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if request.content_type == "application/json" and call.json is None and (await request.text()).strip():
            raise TrelloError(400, "invalid json")  # the base records an unreadable body as None
        if call.json is not None and not isinstance(call.json, dict):
            raise TrelloError(400, "invalid json")
        return {**{k: v for k, v in call.query.items() if k not in ("key", "token")}, **form, **(call.json or {})}

    def _admit(self, request: web.Request, call: FakeCall) -> tuple[FakeToken, dict]:
        """Check key, token and rate limits, in Trello's order; count the request if admitted.
        Returns the token and the rate headers of the answer."""
        now = call.at
        key, value, _ = _credentials(call)
        value = value or request.match_info.get("token", "")
        if key != self.api_key:
            raise TrelloError(401, "invalid key")
        token = self.tokens.get(value)
        if token is None or not token.usable(self.clock()):
            # Refused before any limit applies; the key's quota is left alone.
            raise TrelloError(401, "invalid token", headers=self._limit_headers(now, None))
        key_hits = self._window(self._key_hits, now, self.window)
        token_hits = self._window(self._token_hits.setdefault(value, deque()), now, self.window)
        refusal = None
        if now < self._key_locked_until or len(key_hits) >= self.key_limit:
            refusal = "API_KEY_LIMIT_EXCEEDED"
        elif len(token_hits) >= self.token_limit:
            refusal = "API_TOKEN_LIMIT_EXCEEDED"
        elif _MEMBERS_ITSELF.match(call.path):
            members_hits = self._window(self._members_hits.setdefault(value, deque()), now, self.members_window)
            if len(members_hits) >= self.members_limit:
                refusal = "API_TOKEN_LIMIT_EXCEEDED"
            else:
                members_hits.append(now)
        if refusal is not None:
            self.throttled += 1
            # Trello: past 200 refusals per key in a window, the key is refused for the rest of it.
            refusals = self._window(self._key_refusals, now, self.window)
            refusals.append(now)
            if len(refusals) > self.key_refusal_limit:
                self._key_locked_until = now + self.window
            raise self._too_many(refusal, self._limit_headers(now, token, key_spent=refusal == "API_KEY_LIMIT_EXCEEDED",
                                                              token_spent=refusal == "API_TOKEN_LIMIT_EXCEEDED"))
        key_hits.append(now)
        token_hits.append(now)
        return token, self._limit_headers(now, token)

    @staticmethod
    def _window(hits: deque[float], now: float, width: float) -> deque[float]:
        while hits and hits[0] <= now - width:
            hits.popleft()
        return hits

    def _limit_headers(self, now: float, token: FakeToken | None, *, key_ok: bool = True,
                       key_spent: bool = False, token_spent: bool = False) -> dict:
        headers: dict = {}
        counted = [("key", self.key_limit, self._key_hits, key_spent)] if key_ok else []
        if token is not None:
            counted.append(("token", self.token_limit, self._token_hits.setdefault(token.value, deque()), token_spent))
        for name, limit, hits, spent in counted:
            used = len(self._window(hits, now, self.window))
            headers.update({f"x-rate-limit-api-{name}-interval-ms": str(int(self.window * 1000)),
                            f"x-rate-limit-api-{name}-max": str(limit),
                            f"x-rate-limit-api-{name}-remaining": str(0 if spent else max(limit - used, 0))})
        return headers

    @staticmethod
    def _too_many(code: str, headers: dict) -> TrelloError:
        # JSON, unlike most Trello errors, and deliberately without Retry-After.
        return TrelloError(429, "Rate limit exceeded", json_body={"error": code, "message": "Rate limit exceeded"}, headers=headers)

    # ------------------------------------------------------------------ tokens

    def _named_token(self, request: web.Request) -> FakeToken:
        token = self.tokens.get(request.match_info["token"])
        if token is None or not token.usable(self.clock()):
            raise TrelloError(401, "invalid token")
        return token

    def _token_info(self, request: web.Request, caller: FakeToken, params: dict) -> dict:
        token = self._named_token(request)
        scopes = token.scope.split(",")
        return {
            "id": token.extra["id"],
            "identifier": token.extra["identifier"],
            "idMember": self.member["id"],
            "dateCreated": _iso(token.extra["created"]),
            "dateExpires": None if token.expires_at is None else _iso(token.expires_at),
            "permissions": [{"idModel": "*", "modelType": model, "read": "read" in scopes, "write": "write" in scopes}
                            for model in ("board", "organization")],
        }

    def _token_delete(self, request: web.Request, caller: FakeToken, params: dict) -> dict:
        self._named_token(request).revoked = True
        return {"_value": None}

    # ------------------------------------------------------------------ members & boards

    @staticmethod
    def _select(obj: dict, raw: Any, allowed: Iterable[str], param: str = "fields") -> dict:
        """Keep only the requested fields (``all`` or absent: every field); ``id`` always stays."""
        if raw is None or str(raw).strip() in ("", "all"):
            return obj
        wanted = [f.strip() for f in str(raw).split(",") if f.strip()]
        if any(f not in allowed for f in wanted):
            raise _bad_value(param)
        return {k: v for k, v in obj.items() if k == "id" or k in wanted}

    @staticmethod
    def _filter(raw: Any, allowed: tuple[str, ...], default: str, param: str = "filter") -> str:
        value = default if raw is None or raw == "" else str(raw)
        if value not in allowed:
            raise _bad_value(param)
        return value

    def _find_member(self, request: web.Request) -> dict:
        if request.match_info["member"] in ("me", self.member["id"], self.member["username"]):
            return self.member
        raise TrelloError(404, NOT_FOUND)

    def _member_get(self, request: web.Request, token: FakeToken, params: dict) -> dict:
        member = {**copy.deepcopy(self._find_member(request)), "idBoards": list(self.boards)}
        if "account" not in token.scope.split(","):
            member["email"] = None
        return self._select(member, params.get("fields"), MEMBER_FIELDS)

    def _member_boards(self, request: web.Request, token: FakeToken, params: dict) -> list:
        self._find_member(request)
        which = self._filter(params.get("filter"), ("all", "open", "closed"), "all")
        return [self._select(copy.deepcopy(b), params.get("fields"), BOARD_FIELDS)
                for b in self.boards.values() if which == "all" or b["closed"] == (which == "closed")]

    @staticmethod
    def _lookup(table: dict[str, dict], ref: str) -> dict:
        if not _HEX24.match(ref):
            raise TrelloError(400, "invalid id")
        found = table.get(ref.lower())
        if found is None:
            raise TrelloError(404, NOT_FOUND)
        return found

    def _lists_of(self, board_id: str, which: str) -> list[dict]:
        chosen = [lst for lst in self.lists.values() if lst["idBoard"] == board_id
                  and (which == "all" or lst["closed"] == (which == "closed"))]
        return [copy.deepcopy(lst) for lst in sorted(chosen, key=lambda lst: lst["pos"])]

    def _cards_of(self, board_id: str, which: str) -> list[dict]:
        def wanted(card: dict) -> bool:
            if which in ("all", "closed", "open"):
                return which == "all" or card["closed"] == (which == "closed")
            # "visible": what the board shows, i.e. open cards in open lists
            return not card["closed"] and not self.lists[card["idList"]]["closed"]

        chosen = [c for c in self.cards.values() if c["idBoard"] == board_id and wanted(c)]
        list_pos = {lst["id"]: lst["pos"] for lst in self.lists.values()}
        chosen.sort(key=lambda c: (list_pos.get(c["idList"], 0), c["pos"]))
        return [self._card_view(c) for c in chosen]

    def _card_view(self, card: dict) -> dict:
        return {**copy.deepcopy(card), "labels": [copy.deepcopy(self.labels[i]) for i in card["idLabels"] if i in self.labels]}

    def _board_get(self, request: web.Request, token: FakeToken, params: dict) -> dict:
        board = self._lookup(self.boards, request.match_info["board"])
        body = self._select(copy.deepcopy(board), params.get("fields"), BOARD_FIELDS)
        lists = self._filter(params.get("lists"), ("none", "all", "open", "closed"), "none", "lists")
        cards = self._filter(params.get("cards"), ("none", "all", "open", "closed", "visible"), "none", "cards")
        if lists != "none":
            body["lists"] = [self._select(lst, params.get("list_fields"), LIST_FIELDS, "list_fields")
                             for lst in self._lists_of(board["id"], lists)]
        if cards != "none":
            body["cards"] = [self._select(c, params.get("card_fields"), CARD_FIELDS, "card_fields")
                             for c in self._cards_of(board["id"], cards)]
        return body

    def _board_lists(self, request: web.Request, token: FakeToken, params: dict) -> list:
        board = self._lookup(self.boards, request.match_info["board"])
        which = self._filter(params.get("filter"), ("none", "all", "open", "closed"), "open")
        lists = [] if which == "none" else self._lists_of(board["id"], which)
        return [self._select(lst, params.get("fields"), LIST_FIELDS) for lst in lists]

    def _board_cards(self, request: web.Request, token: FakeToken, params: dict) -> list:
        board = self._lookup(self.boards, request.match_info["board"])
        which = self._filter(params.get("filter"), ("none", "all", "open", "closed", "visible"), "visible")
        cards = [] if which == "none" else self._cards_of(board["id"], which)
        return [self._select(c, params.get("fields"), CARD_FIELDS) for c in cards]

    # ------------------------------------------------------------------ cards

    def _position(self, raw: Any, list_id: str, exclude: str | None = None) -> float:
        positions = [c["pos"] for c in self.cards.values() if c["idList"] == list_id and c["id"] != exclude]
        if raw == "top":
            return min(positions) / 2 if positions else POS_STEP
        if raw == "bottom":
            return max(positions, default=0) + POS_STEP
        try:
            pos = float(raw)
        except (TypeError, ValueError):
            raise _bad_value("pos") from None
        if not pos > 0 or pos == float("inf"):
            raise _bad_value("pos")
        return pos

    def _list_for(self, raw: Any) -> dict:
        list_id = str(raw or "").strip().lower()
        if not _HEX24.match(list_id) or list_id not in self.lists:
            raise _bad_value("idList")
        return self.lists[list_id]

    def _labels(self, raw: Any, board_id: str) -> list[str]:
        ids = _id_list(raw, "idLabels")
        if any(self.labels.get(i, {}).get("idBoard") != board_id for i in ids):
            raise _bad_value("idLabels")
        return ids

    def _members(self, raw: Any) -> list[str]:
        ids = _id_list(raw, "idMembers")
        if any(i != self.member["id"] for i in ids):
            raise _bad_value("idMembers")
        return ids

    def _card_create(self, request: web.Request, token: FakeToken, params: dict) -> dict:
        target = self._list_for(params.get("idList"))
        board_id = target["idBoard"]
        # Everything is validated before anything is stored, so a 400 leaves no half-made card.
        fields = {
            "desc": _text(params.get("desc"), "desc"),
            "due": _date(params.get("due"), "due"),
            "start": _date(params.get("start"), "start"),
            "dueComplete": _bool(params.get("dueComplete", False), "dueComplete"),
            "idLabels": self._labels(params.get("idLabels"), board_id),
            "idMembers": self._members(params.get("idMembers")),
        }
        name = _text(params.get("name"), "name")
        pos = self._position(params.get("pos", "bottom"), target["id"])
        card_id, now = self._new_id(), _iso(self.clock())
        self.cards[card_id] = self._card_record(card_id, target["id"], name, pos, now, **fields)
        self.boards[board_id]["dateLastActivity"] = now
        return self._card_view(self.cards[card_id])

    def _card_get(self, request: web.Request, token: FakeToken, params: dict) -> dict:
        card = self._lookup(self.cards, request.match_info["card"])
        return self._select(self._card_view(card), params.get("fields"), CARD_FIELDS)

    def _card_update(self, request: web.Request, token: FakeToken, params: dict) -> dict:
        card = self._lookup(self.cards, request.match_info["card"])
        changes: dict = {}
        list_id, board_id = card["idList"], card["idBoard"]
        if "idList" in params:
            target = self._list_for(params["idList"])
            list_id, board_id = target["id"], target["idBoard"]
        if "idBoard" in params:
            wanted = str(params["idBoard"] or "").strip().lower()
            if not _HEX24.match(wanted) or wanted not in self.boards:
                raise _bad_value("idBoard")
            if wanted != board_id:
                if "idList" in params:  # idList names a list of another board
                    raise _bad_value("idList")
                # Moved to another board without a list: like Trello, land in its first open list.
                first = self._lists_of(wanted, "open")
                if not first:
                    raise _bad_value("idBoard")
                list_id, board_id = first[0]["id"], wanted
        if list_id != card["idList"]:
            changes["idList"], changes["idBoard"] = list_id, board_id
        for name, parse in (("name", _text), ("desc", _text), ("closed", _bool), ("dueComplete", _bool), ("due", _date),
                            ("start", _date)):
            if name in params:
                changes[name] = parse(params[name], name)
        if "idLabels" in params:
            changes["idLabels"] = self._labels(params["idLabels"], board_id)
        elif board_id != card["idBoard"]:
            changes["idLabels"] = []  # labels belong to a board and do not travel with the card
        if "idMembers" in params:
            changes["idMembers"] = self._members(params["idMembers"])
        if "pos" in params:
            changes["pos"] = _number(self._position(params["pos"], list_id, exclude=card["id"]))
        now = _iso(self.clock())
        card.update(changes, dateLastActivity=now)
        self.boards[board_id]["dateLastActivity"] = now
        return self._card_view(card)

    def _card_comment(self, request: web.Request, token: FakeToken, params: dict) -> dict:
        card = self._lookup(self.cards, request.match_info["card"])
        text = params.get("text")
        if text is None or not str(text).strip() or len(str(text)) > MAX_TEXT:
            raise _bad_value("text")
        board, lst, now = self.boards[card["idBoard"]], self.lists[card["idList"]], _iso(self.clock())
        action = {
            "id": self._new_id(),
            "idMemberCreator": self.member["id"],
            "type": "commentCard",
            "date": now,
            "data": {
                "text": str(text),
                "card": {k: card[k] for k in ("id", "name", "idShort", "shortLink")},
                "board": {k: board[k] for k in ("id", "name", "shortLink")},
                "list": {k: lst[k] for k in ("id", "name")},
            },
            "memberCreator": {k: self.member[k] for k in ("id", "username", "fullName", "initials", "avatarUrl")},
        }
        self.comments.append(copy.deepcopy(action))
        card["dateLastActivity"] = board["dateLastActivity"] = now
        return action

    # ------------------------------------------------------------------ seed data

    def _new_id(self, seeded: bool = False) -> str:
        # ObjectId layout: 4-byte timestamp, 5 random bytes, 3-byte counter.
        self._counter += 1
        stamp = SEED_TIME if seeded else int(self.clock())
        return f"{stamp:08x}{self._rng.getrandbits(40):010x}{self._counter:06x}"

    def _short_link(self) -> str:
        return "".join(self._rng.choice(string.ascii_letters + string.digits) for _ in range(8))

    def _identity(self) -> dict[str, Any]:
        """The base's ``account``: who the member is (tokens carry only the member's id)."""
        return {k: self.member[k] for k in ("id", "username", "fullName", "email")}

    def _seed(self) -> None:
        member_id = self._new_id(seeded=True)
        self.member = {
            "id": member_id, "username": "ada", "fullName": "Ada Lovelace", "initials": "AL",
            "url": "https://trello.com/ada", "avatarUrl": f"https://trello-members.s3.amazonaws.com/{member_id}/avatar",
            "email": "ada@example.com", "confirmed": True, "memberType": "normal",
        }
        self.account = self._identity()
        roadmap = self._add_board("Product Roadmap", "What we build next")
        home = self._add_board("Household", "Chores and errands")
        archived = self._add_board("Old Website", "The 2019 redesign", closed=True)

        todo, doing, done = (self._add_list(roadmap, n) for n in ("To Do", "Doing", "Done"))
        parked = self._add_list(roadmap, "Parked ideas", closed=True)
        shopping, week, _someday = (self._add_list(home, n) for n in ("Shopping", "This week", "Someday"))
        self._add_list(home, "Last year", closed=True)
        backlog = self._add_list(archived, "Backlog")

        ready, urgent, _ = (label_id for label_id, label in self.labels.items() if label["idBoard"] == roadmap)
        self._add_card(todo, "Write the onboarding guide", desc="For new users", idLabels=[ready],
                       due="2024-02-01T17:00:00.000Z")
        self._add_card(todo, "Fix the login redirect", idLabels=[urgent], idMembers=[member_id])
        self._add_card(doing, "Design the settings page", idMembers=[member_id])
        self._add_card(done, "Ship version 1.0", due="2024-01-10T12:00:00.000Z", dueComplete=True)
        self._add_card(done, "Try a spike on search", closed=True)
        self._add_card(parked, "Dark mode")  # open, but its list is closed: open yet not visible
        self._add_card(shopping, "Buy milk")
        self._add_card(week, "Call the plumber", desc="The kitchen tap drips")
        self._add_card(backlog, "Migrate the blog")

    def _add_board(self, name: str, desc: str, closed: bool = False) -> str:
        board_id, short = self._new_id(seeded=True), self._short_link()
        label_names = dict.fromkeys(("green", "yellow", "orange", "red", "purple", "blue"), "")
        for colour, label_name in zip(("green", "red", "blue"), ("Ready", "Urgent", "")):
            label_id = self._new_id(seeded=True)
            self.labels[label_id] = {"id": label_id, "idBoard": board_id, "name": label_name, "color": colour}
            label_names[colour] = label_name
        self.boards[board_id] = {
            "id": board_id, "name": name, "desc": desc, "closed": closed, "idOrganization": None,
            "idMemberCreator": self.member["id"], "pinned": False, "starred": False,
            "url": f"https://trello.com/b/{short}/{_slug(name)}", "shortUrl": f"https://trello.com/b/{short}", "shortLink": short,
            "prefs": {"permissionLevel": "private", "background": "blue", "backgroundColor": "#0079BF", "backgroundImage": None},
            "labelNames": label_names, "dateLastActivity": SEED_DATE,
        }
        return board_id

    def _add_list(self, board_id: str, name: str, closed: bool = False) -> str:
        list_id = self._new_id(seeded=True)
        siblings = [lst["pos"] for lst in self.lists.values() if lst["idBoard"] == board_id]
        self.lists[list_id] = {"id": list_id, "name": name, "closed": closed, "pos": max(siblings, default=0) + POS_STEP,
                               "idBoard": board_id, "subscribed": False}
        return list_id

    def _add_card(self, list_id: str, name: str, **extra: Any) -> None:
        card_id = self._new_id(seeded=True)
        self.cards[card_id] = self._card_record(card_id, list_id, name, self._position("bottom", list_id), SEED_DATE, **extra)

    def _card_record(self, card_id: str, list_id: str, name: str, pos: float, activity: str, **extra: Any) -> dict:
        board_id, short = self.lists[list_id]["idBoard"], self._short_link()
        id_short = 1 + sum(1 for c in self.cards.values() if c["idBoard"] == board_id)
        return {
            "id": card_id, "idShort": id_short, "name": name, "desc": extra.get("desc", ""), "closed": extra.get("closed", False),
            "idList": list_id, "idBoard": board_id, "pos": _number(pos), "due": extra.get("due"), "start": extra.get("start"),
            "dueComplete": extra.get("dueComplete", False), "idLabels": list(extra.get("idLabels", [])),
            "idMembers": list(extra.get("idMembers", [])), "url": f"https://trello.com/c/{short}/{id_short}-{_slug(name)}",
            "shortUrl": f"https://trello.com/c/{short}", "shortLink": short, "dateLastActivity": activity,
        }
