"""A fake Trello, served by aiohttp, for tests and for a local sandbox.

One server plays both hosts the hub talks to: ``trello.com`` (the browser-side consent page at
``/1/authorize``) and ``api.trello.com`` (the REST API under ``/1``). It imitates:

* the token flow (not OAuth 2.0): ``GET /1/authorize`` shows a small consent page; its "Allow"
  button sends the browser to ``return_url#token=<64 hex chars>`` (``callback_method=fragment``);
* ``GET``/``DELETE /1/tokens/{token}``: token info and revocation;
* ``/1/members/me`` (also by member id or username), ``/1/members/me/boards``,
  ``/1/boards/{id}`` (with ``lists=`` / ``cards=``), ``/1/boards/{id}/lists``,
  ``/1/boards/{id}/cards``, ``GET``/``POST``/``PUT`` cards and card comments;
* credentials as the header ``Authorization: OAuth oauth_consumer_key="…", oauth_token="…"``
  or as query parameters ``key`` and ``token``; each recorded call says which was used;
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
  (Real Trello without a ``return_url`` shows the token on a page of its own.)
* ``response_type`` must be ``token`` and ``callback_method`` must be ``fragment``: the fake
  cannot play ``postMessage`` (Trello's other mode), so a hub that forgets the parameter finds
  out here rather than against the real thing.
* On "Deny" real Trello just shows a page; the fake redirects to
  ``return_url#error=access_denied`` so that tests can see the refusal.
* Reads need the ``read`` scope, writes the ``write`` scope; without them the answer is 401
  ``unauthorized permission requested``. ``email`` of ``/1/members/me`` is ``null`` without the
  ``account`` scope.
* Credentials are read from the header or the query string only, never from a body. When both
  carry them, the header wins and the call is recorded with ``credentials_in == "both"``.
* ``GET``/``DELETE /1/tokens/{token}`` need the key; the token in the path counts as the
  credential when neither header nor query carries one (Trello's own examples pass only the key
  for the GET). Unavoidably the token is then part of the URL.
* A request refused with 429 does not use up quota; a request refused for the token limit still
  counts against the key's refusals. Requests with an unknown key are not counted at all.
* Ids are 24 hex chars (ObjectId layout); ``shortLink``s are not accepted in place of ids.
  Seeded ids are deterministic; new ids are not secret, tokens are (``secrets``).
* ``cards=visible`` means open cards in open lists; ``open`` means every open card.
* Time: token expiry uses the wall clock (``dateExpires`` is a real date); rate windows use
  ``time.monotonic()`` from each call's arrival (``FakeCall.at``). ``delay`` is slept after the
  answer has been worked out and before it is sent, so a slow reply still did its work.
* Fault switches: ``http_error_next(prefix, status)`` answers any matching path (the consent
  page included) with a plain-text error; ``rate_limit_next()`` forces a 429
  ``API_TOKEN_LIMIT_EXCEEDED`` on the next API request(s) whatever their credentials.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import html
import json
import random
import re
import secrets
import string
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from aiohttp import web

__all__ = ["FakeCall", "FakeTrello", "start_fake_trello"]

EXPIRATIONS: dict[str, timedelta | None] = {
    "1hour": timedelta(hours=1),
    "1day": timedelta(days=1),
    "30days": timedelta(days=30),
    "never": None,
}
SCOPES = ("read", "write", "account")
SCOPE_TEXT = {
    "read": "Read all of your boards, lists, cards and comments",
    "write": "Create and change cards, lists and comments on your boards",
    "account": "Read your account details, including your email address",
}
EXPIRATION_TEXT = {"1hour": "for 1 hour", "1day": "for 1 day", "30days": "for 30 days", "never": "until you revoke it"}

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
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_OAUTH_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*"([^"]*)"')
_MEMBERS_ITSELF = re.compile(r"^/1/members/[^/]+/?$")


@dataclass
class FakeCall:
    """One HTTP request as the fake received it."""

    method: str
    path: str
    headers: dict
    query: dict
    form: dict
    json: Any = None
    at: float = 0.0  # time.monotonic() on arrival
    credentials_in: str | None = None  # "header", "query", "both" or None

    @property
    def token_in_url(self) -> bool:
        """Whether the member token travelled in the query string (where logs and proxies see it)."""
        return "token" in self.query


# The request being answered, as recorded, plus whether its JSON body failed to parse. A context
# variable rather than request["..."], following the fake Slack.
_CURRENT: contextvars.ContextVar[tuple[FakeCall, bool]] = contextvars.ContextVar("fake_trello_call")


class TrelloError(Exception):
    """Raised inside handlers; becomes a plain-text answer (or JSON, for 429s)."""

    def __init__(self, status: int, text: str, *, json_body: dict | None = None,
                 headers: dict | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.json_body = json_body
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        if self.json_body is not None:
            return web.json_response(self.json_body, status=self.status, headers=self.headers)
        return web.Response(status=self.status, text=self.text, content_type="text/plain", headers=self.headers)


def _bad_value(name: str) -> TrelloError:
    return TrelloError(400, f"invalid value for {name}")


@dataclass
class _Token:
    value: str
    id: str
    identifier: str  # the app name shown on the consent page
    scopes: frozenset[str]
    expiration: str
    created: datetime
    expires: datetime | None
    expired: bool = False


@dataclass
class _Auth:
    """Who is calling, once key and token have been checked."""

    token: _Token
    headers: dict = field(default_factory=dict)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_oauth_header(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "oauth":
        return {}
    # OAuth 1.0 header values are percent-encoded; plain keys and tokens are unaffected.
    return {name: unquote(raw) for name, raw in _OAUTH_PARAM.findall(rest)}


def _origin(url: str) -> str | None:
    """scheme://host[:port] of an absolute http(s) URL, normalised; None if it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme.lower() == "https" else 80
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port and port != default else "")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _number(pos: float) -> int | float:
    return int(pos) if float(pos).is_integer() else pos


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _bad_value(name)


def _id_list(value: Any, name: str) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
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
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _iso(moment)


def _text(value: Any, name: str) -> str:
    text = "" if value is None else str(value)
    if len(text) > MAX_TEXT:
        raise _bad_value(name)
    return text


class FakeTrello:
    """State and routes of the fake; see the module docstring for what it imitates."""

    def __init__(
        self,
        *,
        api_key: str = "fake-trello-key",
        app_secret: str = "fake-trello-secret",
        token_limit: int = 100,
        key_limit: int = 300,
        window: float = 10.0,
        allowed_origins: list[str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.app_secret = app_secret  # unused until webhooks (their HMAC signature) are faked
        self.token_limit = token_limit
        self.key_limit = key_limit
        self.window = window
        self.allowed_origins = None if allowed_origins is None else list(allowed_origins)
        # Limits the interface does not take as arguments; tests may change them on the instance.
        self.members_limit = 100
        self.members_window = 900.0
        self.key_refusal_limit = 200

        self.calls: list[FakeCall] = []
        self.issued_tokens: list[str] = []
        self.revoked_tokens: set[str] = set()
        self.comments: list[dict] = []
        self.delay: float = 0.0
        self.throttled = 0

        self._tokens: dict[str, _Token] = {}
        self._http_faults: deque[tuple[str, int]] = deque()
        self._forced_429 = 0
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

        self.app = web.Application(middlewares=[self._recording_middleware()])
        routes = self.app.router
        routes.add_get("/1/authorize", self._authorize_page)
        routes.add_post("/1/authorize", self._authorize_decision)
        routes.add_get("/1/tokens/{token}", self._api(self._token_info, token_in_path=True))
        routes.add_delete("/1/tokens/{token}", self._api(self._token_delete, token_in_path=True))
        routes.add_get("/1/members/{member}", self._api(self._member_get))
        routes.add_get("/1/members/{member}/boards", self._api(self._member_boards))
        routes.add_get("/1/boards/{board}", self._api(self._board_get))
        routes.add_get("/1/boards/{board}/lists", self._api(self._board_lists))
        routes.add_get("/1/boards/{board}/cards", self._api(self._board_cards))
        routes.add_post("/1/cards", self._api(self._card_create, write=True))
        routes.add_get("/1/cards/{card}", self._api(self._card_get))
        routes.add_put("/1/cards/{card}", self._api(self._card_update, write=True))
        routes.add_post("/1/cards/{card}/actions/comments", self._api(self._card_comment, write=True))

    # ------------------------------------------------------------------ inspection & switches

    def hub_settings(self, base_url: str) -> dict:
        """The hub's ``providers.trello`` section that points at this fake, served at ``base_url``."""
        return {"api_key": self.api_key, "urls": {"authorize": f"{base_url}/1/authorize", "api": f"{base_url}/1"}}

    def calls_to(self, path_prefix: str, method: str | None = None) -> list[FakeCall]:
        """Recorded calls whose path starts with ``path_prefix`` (and, if given, of that method)."""
        return [c for c in self.calls
                if c.path.startswith(path_prefix) and (method is None or c.method == method.upper())]

    def issue_token(self, *, expiration: str = "30days", scope: str = "read,write",
                    name: str = "Integration Hub") -> str:
        """Mint a member token as if the member had clicked "Allow"; for tests that skip the browser."""
        if expiration not in EXPIRATIONS:
            raise ValueError(f"expiration must be one of {', '.join(EXPIRATIONS)}")
        scopes = self._parse_scope(scope)
        if scopes is None:
            raise ValueError(f"scope must be a comma-separated subset of {', '.join(SCOPES)}")
        value = secrets.token_hex(32)  # 64 hex chars, the shape of a classic Trello token
        created = _utcnow()
        lifetime = EXPIRATIONS[expiration]
        self._tokens[value] = _Token(
            value=value, id=self._new_id(), identifier=name, scopes=scopes, expiration=expiration,
            created=created, expires=None if lifetime is None else created + lifetime,
        )
        self.issued_tokens.append(value)
        return value

    def revoke_all(self) -> None:
        self.revoked_tokens.update(self._tokens)

    def expire_all(self) -> None:
        """Treat every token issued so far as past its dateExpires, "never" ones included."""
        for record in self._tokens.values():
            record.expired = True

    def http_error_next(self, path_prefix: str, status: int, count: int = 1) -> None:
        """Answer the next ``count`` requests whose path starts with ``path_prefix`` with ``status``."""
        self._http_faults.extend([(path_prefix, status)] * count)

    def rate_limit_next(self, count: int = 1) -> None:
        """Answer the next ``count`` API requests with 429 API_TOKEN_LIMIT_EXCEEDED."""
        self._forced_429 += count

    # ------------------------------------------------------------------ keeping state across restarts

    def export_state(self) -> dict:
        """What the fake issued and holds, as JSON-ready data for :meth:`import_state` (the sandbox
        saves it so that a restarted fake still honours the tokens it issued)."""
        return {
            "tokens": [{**vars(t), "scopes": sorted(t.scopes), "created": t.created.isoformat(),
                        "expires": None if t.expires is None else t.expires.isoformat()} for t in self._tokens.values()],
            "issued_tokens": self.issued_tokens,
            "revoked_tokens": sorted(self.revoked_tokens),
            "comments": self.comments,
            "data": {"member": self.member, "boards": self.boards, "lists": self.lists, "cards": self.cards, "labels": self.labels},
            "counter": self._counter,
            "rng": [self._rng.getstate()[0], list(self._rng.getstate()[1]), self._rng.getstate()[2]],
        }

    def import_state(self, state: dict) -> None:
        """Take back what :meth:`export_state` gave; everything is read before anything changes."""
        tokens = {t["value"]: _Token(**{**t, "scopes": frozenset(t["scopes"]), "created": datetime.fromisoformat(t["created"]),
                                        "expires": None if t["expires"] is None else datetime.fromisoformat(t["expires"])})
                  for t in state["tokens"]}
        data = copy.deepcopy(state["data"])
        version, internal, gauss = state["rng"]
        rng = random.Random()
        rng.setstate((version, tuple(internal), gauss))
        issued, revoked, comments = list(state["issued_tokens"]), set(state["revoked_tokens"]), list(state["comments"])
        counter = int(state["counter"])
        self._tokens, self.issued_tokens, self.revoked_tokens, self.comments = tokens, issued, revoked, comments
        self.member, self.boards, self.lists, self.cards, self.labels = (
            data["member"], data["boards"], data["lists"], data["cards"], data["labels"])
        self._counter, self._rng = counter, rng

    # ------------------------------------------------------------------ seed data

    def _new_id(self, seeded: bool = False) -> str:
        # ObjectId layout: 4-byte timestamp, 5 random bytes, 3-byte counter.
        self._counter += 1
        stamp = SEED_TIME if seeded else int(time.time())
        return f"{stamp:08x}{self._rng.getrandbits(40):010x}{self._counter:06x}"

    def _short_link(self) -> str:
        alphabet = string.ascii_letters + string.digits
        return "".join(self._rng.choice(alphabet) for _ in range(8))

    def _seed(self) -> None:
        member_id = self._new_id(seeded=True)
        self.member = {
            "id": member_id,
            "username": "ada",
            "fullName": "Ada Lovelace",
            "initials": "AL",
            "url": "https://trello.com/ada",
            "avatarUrl": f"https://trello-members.s3.amazonaws.com/{member_id}/avatar",
            "email": "ada@example.com",
            "confirmed": True,
            "memberType": "normal",
        }
        roadmap = self._add_board("Product Roadmap", "What we build next")
        home = self._add_board("Household", "Chores and errands")
        archived = self._add_board("Old Website", "The 2019 redesign", closed=True)

        todo, doing, done = (self._add_list(roadmap, n) for n in ("To Do", "Doing", "Done"))
        parked = self._add_list(roadmap, "Parked ideas", closed=True)
        shopping, week, _someday = (self._add_list(home, n) for n in ("Shopping", "This week", "Someday"))
        self._add_list(home, "Last year", closed=True)
        backlog = self._add_list(archived, "Backlog")

        ready, urgent, _ = self._board_label_ids(roadmap)
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
        board_id = self._new_id(seeded=True)
        short = self._short_link()
        colours = ("green", "red", "blue")
        label_names = dict.fromkeys(("green", "yellow", "orange", "red", "purple", "blue"), "")
        for colour, label_name in zip(colours, ("Ready", "Urgent", "")):
            label_id = self._new_id(seeded=True)
            self.labels[label_id] = {"id": label_id, "idBoard": board_id, "name": label_name, "color": colour}
            label_names[colour] = label_name
        self.boards[board_id] = {
            "id": board_id,
            "name": name,
            "desc": desc,
            "closed": closed,
            "idOrganization": None,
            "idMemberCreator": self.member["id"],
            "pinned": False,
            "starred": False,
            "url": f"https://trello.com/b/{short}/{_slug(name)}",
            "shortUrl": f"https://trello.com/b/{short}",
            "shortLink": short,
            "prefs": {"permissionLevel": "private", "background": "blue", "backgroundColor": "#0079BF",
                      "backgroundImage": None},
            "labelNames": label_names,
            "dateLastActivity": SEED_DATE,
        }
        return board_id

    def _board_label_ids(self, board_id: str) -> list[str]:
        return [label_id for label_id, label in self.labels.items() if label["idBoard"] == board_id]

    def _add_list(self, board_id: str, name: str, closed: bool = False) -> str:
        list_id = self._new_id(seeded=True)
        siblings = [lst["pos"] for lst in self.lists.values() if lst["idBoard"] == board_id]
        self.lists[list_id] = {"id": list_id, "name": name, "closed": closed,
                               "pos": max(siblings, default=0) + POS_STEP, "idBoard": board_id,
                               "subscribed": False}
        return list_id

    def _add_card(self, list_id: str, name: str, **extra: Any) -> str:
        card_id = self._new_id(seeded=True)
        board_id = self.lists[list_id]["idBoard"]
        self.cards[card_id] = self._card_record(card_id, list_id, board_id, name, self._bottom(list_id),
                                                SEED_DATE, **extra)
        return card_id

    def _card_record(self, card_id: str, list_id: str, board_id: str, name: str, pos: float,
                     activity: str, **extra: Any) -> dict:
        short = self._short_link()
        id_short = 1 + sum(1 for c in self.cards.values() if c["idBoard"] == board_id)
        return {
            "id": card_id,
            "idShort": id_short,
            "name": name,
            "desc": extra.get("desc", ""),
            "closed": extra.get("closed", False),
            "idList": list_id,
            "idBoard": board_id,
            "pos": _number(pos),
            "due": extra.get("due"),
            "start": extra.get("start"),
            "dueComplete": extra.get("dueComplete", False),
            "idLabels": list(extra.get("idLabels", [])),
            "idMembers": list(extra.get("idMembers", [])),
            "url": f"https://trello.com/c/{short}/{id_short}-{_slug(name)}",
            "shortUrl": f"https://trello.com/c/{short}",
            "shortLink": short,
            "dateLastActivity": activity,
        }

    # ------------------------------------------------------------------ plumbing

    def _recording_middleware(self) -> Any:
        # A middleware so that every request is recorded, even one that ends in a fault, a 401 or
        # a route aiohttp does not know.
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            arrived = time.monotonic()
            form: dict = {}
            body_json: Any = None
            invalid_json = False
            if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.can_read_body:
                if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
                elif request.content_type == "application/json":
                    raw = await request.text()
                    try:
                        body_json = json.loads(raw) if raw.strip() else None
                    except ValueError:
                        invalid_json = True
            header = _parse_oauth_header(request.headers.get("Authorization", ""))
            in_header = bool(header.get("oauth_consumer_key") or header.get("oauth_token"))
            in_query = "key" in request.query or "token" in request.query
            where = "both" if in_header and in_query else "header" if in_header else "query" if in_query else None
            call = FakeCall(method=request.method, path=request.path, headers=dict(request.headers),
                            query=dict(request.query), form=form, json=body_json, at=arrived,
                            credentials_in=where)
            self.calls.append(call)
            reset = _CURRENT.set((call, invalid_json))
            try:
                fault = self._take_http_fault(request.path)
                if fault is not None:
                    response: web.StreamResponse = fault
                else:
                    try:
                        response = await handler(request)
                    except web.HTTPException as exc:  # aiohttp's own 404/405: still delayed below
                        response = exc
                if self.delay:
                    await asyncio.sleep(self.delay)
                if isinstance(response, web.HTTPException):
                    raise response
                return response
            finally:
                _CURRENT.reset(reset)

        return record

    def _take_http_fault(self, path: str) -> web.Response | None:
        for index, (prefix, status) in enumerate(self._http_faults):
            if path.startswith(prefix):
                del self._http_faults[index]
                try:
                    reason = HTTPStatus(status).phrase
                except ValueError:
                    reason = "Error"
                return web.Response(status=status, text=reason, content_type="text/plain")
        return None

    def _api(self, handler: Callable[[web.Request, _Auth, dict], Any], *, write: bool = False,
             token_in_path: bool = False) -> Callable[[web.Request], Any]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            call, invalid_json = _CURRENT.get()
            headers: dict = {}
            try:
                auth = self._admit(request, call, token_in_path)
                headers = auth.headers
                if write and "write" not in auth.token.scopes:
                    raise TrelloError(401, "unauthorized permission requested")
                if not write and not token_in_path and "read" not in auth.token.scopes:
                    raise TrelloError(401, "unauthorized permission requested")
                if invalid_json or (call.json is not None and not isinstance(call.json, dict)):
                    raise TrelloError(400, "invalid json")
                params = {k: v for k, v in call.query.items() if k not in ("key", "token")}
                params.update(call.form)
                params.update(call.json or {})
                return web.json_response(handler(request, auth, params), headers=headers)
            except TrelloError as err:
                err.headers = {**headers, **err.headers}
                return err.response()

        return endpoint

    # ------------------------------------------------------------------ credentials & limits

    def _admit(self, request: web.Request, call: FakeCall, token_in_path: bool) -> _Auth:
        """Check key, token and rate limits, in Trello's order; count the request if admitted."""
        now = call.at
        header = _parse_oauth_header(request.headers.get("Authorization", ""))
        key = header.get("oauth_consumer_key") or call.query.get("key", "")
        token = header.get("oauth_token") or call.query.get("token", "")
        if not token and token_in_path:
            token = request.match_info["token"]

        if self._forced_429:
            self._forced_429 -= 1
            self.throttled += 1
            record = self._tokens.get(token)
            raise self._too_many("API_TOKEN_LIMIT_EXCEEDED",
                                 self._limit_headers(now, record, key_ok=key == self.api_key, token_spent=True))

        if key != self.api_key:
            raise TrelloError(401, "invalid key")
        record = self._tokens.get(token)
        valid = record is not None and self._usable(record)
        key_headers = self._limit_headers(now, None)
        if not valid:
            # Refused before any limit applies; the key's quota is left alone.
            raise TrelloError(401, "invalid token", headers=key_headers)
        assert record is not None

        key_hits = self._window(self._key_hits, now, self.window)
        token_hits = self._window(self._token_hits.setdefault(record.value, deque()), now, self.window)
        refusal = None
        if now < self._key_locked_until or len(key_hits) >= self.key_limit:
            refusal = "API_KEY_LIMIT_EXCEEDED"
        elif len(token_hits) >= self.token_limit:
            refusal = "API_TOKEN_LIMIT_EXCEEDED"
        elif _MEMBERS_ITSELF.match(call.path):
            members_hits = self._window(self._members_hits.setdefault(record.value, deque()), now,
                                        self.members_window)
            if len(members_hits) >= self.members_limit:
                refusal = "API_TOKEN_LIMIT_EXCEEDED"
            else:
                members_hits.append(now)
        if refusal is not None:
            self.throttled += 1
            self._note_key_refusal(now)
            raise self._too_many(refusal, self._limit_headers(
                now, record, key_spent=refusal == "API_KEY_LIMIT_EXCEEDED",
                token_spent=refusal == "API_TOKEN_LIMIT_EXCEEDED"))
        key_hits.append(now)
        token_hits.append(now)
        return _Auth(record, self._limit_headers(now, record))

    def _usable(self, record: _Token) -> bool:
        if record.value in self.revoked_tokens or record.expired:
            return False
        return record.expires is None or _utcnow() < record.expires

    @staticmethod
    def _window(hits: deque[float], now: float, width: float) -> deque[float]:
        while hits and hits[0] <= now - width:
            hits.popleft()
        return hits

    def _note_key_refusal(self, now: float) -> None:
        # Trello: past 200 refusals per key in a window, the key is refused for the rest of it.
        refusals = self._window(self._key_refusals, now, self.window)
        refusals.append(now)
        if len(refusals) > self.key_refusal_limit:
            self._key_locked_until = now + self.window

    def _limit_headers(self, now: float, record: _Token | None, *, key_ok: bool = True,
                       key_spent: bool = False, token_spent: bool = False) -> dict:
        interval = str(int(self.window * 1000))
        headers: dict = {}
        if key_ok:
            used = len(self._window(self._key_hits, now, self.window))
            headers.update({
                "x-rate-limit-api-key-interval-ms": interval,
                "x-rate-limit-api-key-max": str(self.key_limit),
                "x-rate-limit-api-key-remaining": str(0 if key_spent else max(self.key_limit - used, 0)),
            })
        if record is not None:
            used = len(self._window(self._token_hits.setdefault(record.value, deque()), now, self.window))
            headers.update({
                "x-rate-limit-api-token-interval-ms": interval,
                "x-rate-limit-api-token-max": str(self.token_limit),
                "x-rate-limit-api-token-remaining": str(0 if token_spent else max(self.token_limit - used, 0)),
            })
        return headers

    @staticmethod
    def _too_many(code: str, headers: dict) -> TrelloError:
        # JSON, unlike most Trello errors, and deliberately without Retry-After.
        return TrelloError(429, "Rate limit exceeded", json_body={"error": code, "message": "Rate limit exceeded"},
                           headers=headers)

    # ------------------------------------------------------------------ consent page

    @staticmethod
    def _parse_scope(raw: str) -> frozenset[str] | None:
        items = [s.strip() for s in raw.split(",") if s.strip()]
        if not items or any(s not in SCOPES for s in items):
            return None
        return frozenset(items)

    def _authorize_problem(self, params: Any) -> TrelloError | None:
        if params.get("key", "") != self.api_key:
            return TrelloError(401, "invalid key")
        if params.get("response_type") != "token":
            return TrelloError(400, "Invalid response_type")
        if params.get("callback_method") != "fragment":
            return TrelloError(400, "Invalid callback_method: the fake only supports fragment")
        origin = _origin(params.get("return_url", ""))
        if origin is None or (self.allowed_origins is not None
                              and origin not in {_origin(o) for o in self.allowed_origins}):
            return TrelloError(400, "Invalid return_url")
        if self._parse_scope(params.get("scope", "read")) is None:
            return TrelloError(400, "Invalid scope")
        if params.get("expiration", "30days") not in EXPIRATIONS:
            return TrelloError(400, "Invalid expiration")
        return None

    async def _authorize_page(self, request: web.Request) -> web.Response:
        params = request.query
        problem = self._authorize_problem(params)
        if problem is not None:
            return problem.response()
        e = html.escape
        name = params.get("name") or "An unknown application"
        scope = params.get("scope", "read")
        expiration = params.get("expiration", "30days")
        scopes = [s.strip() for s in scope.split(",") if s.strip()]
        hidden = "".join(
            f'<input type="hidden" name="{field_name}" value="{e(value)}">'
            for field_name, value in (("key", params["key"]), ("name", name), ("scope", scope),
                                      ("expiration", expiration), ("response_type", "token"),
                                      ("return_url", params["return_url"]), ("callback_method", "fragment"))
        )
        items = "".join(f'<li data-scope="{e(s)}"><strong>{e(s)}</strong>: {e(SCOPE_TEXT[s])}</li>' for s in scopes)
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Authorize {e(name)} | Fake Trello</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #0079bf; margin: 0; color: #172b4d; }}
main {{ max-width: 30rem; margin: 4rem auto; background: #fff; border-radius: 6px; padding: 2rem;
        box-shadow: 0 2px 8px rgba(0,0,0,.25); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
.who {{ color: #5e6c84; font-size: .9rem; }}
.buttons {{ display: flex; gap: 1rem; margin-top: 2rem; }}
button {{ flex: 1; padding: .7rem; font-size: 1rem; border-radius: 4px; cursor: pointer; }}
#allow {{ background: #5aac44; color: #fff; border: none; }}
#deny {{ background: #fff; border: 1px solid #999; }}
</style></head>
<body><main>
<h1>Let <span id="app-name">{e(name)}</span> use your account?</h1>
<p class="who">Signed in as {e(self.member["fullName"])} (@{e(self.member["username"])})</p>
<p>It will be able to:</p><ul id="scopes">{items}</ul>
<p id="expiration">Access lasts {e(EXPIRATION_TEXT[expiration])}.</p>
<form method="post" action="/1/authorize">{hidden}
<div class="buttons">
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
</div></form>
</main></body></html>
"""
        return web.Response(text=page, content_type="text/html")

    async def _authorize_decision(self, request: web.Request) -> web.Response:
        form = _CURRENT.get()[0].form
        # The form comes back from the browser, so it is checked again like the first request.
        problem = self._authorize_problem(form)
        if problem is not None:
            return problem.response()
        parts = urlsplit(form["return_url"])
        if form.get("decision") == "allow":
            token = self.issue_token(expiration=form.get("expiration", "30days"), scope=form.get("scope", "read"),
                                     name=form.get("name") or "An unknown application")
            fragment = f"token={token}"
        else:
            fragment = "error=access_denied"
        # Any fragment already on return_url is replaced: a URL has only one.
        return web.Response(status=302, headers={"Location": urlunsplit(parts._replace(fragment=fragment))})

    # ------------------------------------------------------------------ tokens

    def _token_info(self, request: web.Request, auth: _Auth, params: dict) -> dict:
        record = self._tokens.get(request.match_info["token"])
        if record is None or not self._usable(record):
            raise TrelloError(401, "invalid token")
        permissions = [
            {"idModel": "*", "modelType": model, "read": "read" in record.scopes, "write": "write" in record.scopes}
            for model in ("board", "organization")
        ]
        return {
            "id": record.id,
            "identifier": record.identifier,
            "idMember": self.member["id"],
            "dateCreated": _iso(record.created),
            "dateExpires": None if record.expires is None else _iso(record.expires),
            "permissions": permissions,
        }

    def _token_delete(self, request: web.Request, auth: _Auth, params: dict) -> dict:
        record = self._tokens.get(request.match_info["token"])
        if record is None or not self._usable(record):
            raise TrelloError(401, "invalid token")
        self.revoked_tokens.add(record.value)
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

    def _find_member(self, ref: str) -> dict:
        if ref in ("me", self.member["id"], self.member["username"]):
            return self.member
        raise TrelloError(404, NOT_FOUND)

    def _member_view(self, auth: _Auth) -> dict:
        member = copy.deepcopy(self.member)
        member["idBoards"] = list(self.boards)
        if "account" not in auth.token.scopes:
            member["email"] = None
        return member

    def _member_get(self, request: web.Request, auth: _Auth, params: dict) -> dict:
        self._find_member(request.match_info["member"])
        return self._select(self._member_view(auth), params.get("fields"), MEMBER_FIELDS)

    def _member_boards(self, request: web.Request, auth: _Auth, params: dict) -> list:
        self._find_member(request.match_info["member"])
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
            if which == "all":
                return True
            if which == "closed":
                return card["closed"]
            if which == "open":
                return not card["closed"]
            # "visible": what the board shows, i.e. open cards in open lists
            return not card["closed"] and not self.lists[card["idList"]]["closed"]

        chosen = [c for c in self.cards.values() if c["idBoard"] == board_id and wanted(c)]
        list_pos = {lst["id"]: lst["pos"] for lst in self.lists.values()}
        chosen.sort(key=lambda c: (list_pos.get(c["idList"], 0), c["pos"]))
        return [self._card_view(c) for c in chosen]

    def _card_view(self, card: dict) -> dict:
        view = copy.deepcopy(card)
        view["labels"] = [copy.deepcopy(self.labels[i]) for i in card["idLabels"] if i in self.labels]
        return view

    def _board_get(self, request: web.Request, auth: _Auth, params: dict) -> dict:
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

    def _board_lists(self, request: web.Request, auth: _Auth, params: dict) -> list:
        board = self._lookup(self.boards, request.match_info["board"])
        which = self._filter(params.get("filter"), ("none", "all", "open", "closed"), "open")
        if which == "none":
            return []
        return [self._select(lst, params.get("fields"), LIST_FIELDS) for lst in self._lists_of(board["id"], which)]

    def _board_cards(self, request: web.Request, auth: _Auth, params: dict) -> list:
        board = self._lookup(self.boards, request.match_info["board"])
        which = self._filter(params.get("filter"), ("none", "all", "open", "closed", "visible"), "visible")
        if which == "none":
            return []
        return [self._select(c, params.get("fields"), CARD_FIELDS) for c in self._cards_of(board["id"], which)]

    # ------------------------------------------------------------------ cards

    def _bottom(self, list_id: str, exclude: str | None = None) -> float:
        positions = [c["pos"] for c in self.cards.values() if c["idList"] == list_id and c["id"] != exclude]
        return max(positions, default=0) + POS_STEP

    def _position(self, raw: Any, list_id: str, exclude: str | None = None) -> float:
        if raw == "top":
            positions = [c["pos"] for c in self.cards.values() if c["idList"] == list_id and c["id"] != exclude]
            return min(positions) / 2 if positions else POS_STEP
        if raw == "bottom":
            return self._bottom(list_id, exclude)
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

    def _check_labels(self, ids: list[str], board_id: str) -> list[str]:
        if any(self.labels.get(i, {}).get("idBoard") != board_id for i in ids):
            raise _bad_value("idLabels")
        return ids

    def _check_members(self, ids: list[str]) -> list[str]:
        if any(i != self.member["id"] for i in ids):
            raise _bad_value("idMembers")
        return ids

    def _card_create(self, request: web.Request, auth: _Auth, params: dict) -> dict:
        target = self._list_for(params.get("idList"))
        board_id = target["idBoard"]
        # Everything is validated before anything is stored, so a 400 leaves no half-made card.
        fields = {
            "desc": _text(params.get("desc"), "desc"),
            "due": _date(params.get("due"), "due"),
            "start": _date(params.get("start"), "start"),
            "dueComplete": _bool(params.get("dueComplete", False), "dueComplete"),
            "idLabels": self._check_labels(_id_list(params.get("idLabels"), "idLabels"), board_id),
            "idMembers": self._check_members(_id_list(params.get("idMembers"), "idMembers")),
        }
        name = _text(params.get("name"), "name")
        pos = self._position(params.get("pos", "bottom"), target["id"])
        card_id = self._new_id()
        now = _iso(_utcnow())
        self.cards[card_id] = self._card_record(card_id, target["id"], board_id, name, pos, now, **fields)
        self.boards[board_id]["dateLastActivity"] = now
        return self._card_view(self.cards[card_id])

    def _card_get(self, request: web.Request, auth: _Auth, params: dict) -> dict:
        card = self._lookup(self.cards, request.match_info["card"])
        return self._select(self._card_view(card), params.get("fields"), CARD_FIELDS)

    def _card_update(self, request: web.Request, auth: _Auth, params: dict) -> dict:
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
        if "name" in params:
            changes["name"] = _text(params["name"], "name")
        if "desc" in params:
            changes["desc"] = _text(params["desc"], "desc")
        for flag in ("closed", "dueComplete"):
            if flag in params:
                changes[flag] = _bool(params[flag], flag)
        for date_field in ("due", "start"):
            if date_field in params:
                changes[date_field] = _date(params[date_field], date_field)
        if "idLabels" in params:
            changes["idLabels"] = self._check_labels(_id_list(params["idLabels"], "idLabels"), board_id)
        elif board_id != card["idBoard"]:
            changes["idLabels"] = []  # labels belong to a board and do not travel with the card
        if "idMembers" in params:
            changes["idMembers"] = self._check_members(_id_list(params["idMembers"], "idMembers"))
        if "pos" in params:
            changes["pos"] = _number(self._position(params["pos"], list_id, exclude=card["id"]))
        now = _iso(_utcnow())
        card.update(changes, dateLastActivity=now)
        self.boards[board_id]["dateLastActivity"] = now
        return self._card_view(card)

    def _card_comment(self, request: web.Request, auth: _Auth, params: dict) -> dict:
        card = self._lookup(self.cards, request.match_info["card"])
        text = params.get("text")
        if text is None or not str(text).strip() or len(str(text)) > MAX_TEXT:
            raise _bad_value("text")
        board = self.boards[card["idBoard"]]
        lst = self.lists[card["idList"]]
        now = _iso(_utcnow())
        action = {
            "id": self._new_id(),
            "idMemberCreator": self.member["id"],
            "type": "commentCard",
            "date": now,
            "data": {
                "text": str(text),
                "card": {"id": card["id"], "name": card["name"], "idShort": card["idShort"],
                         "shortLink": card["shortLink"]},
                "board": {"id": board["id"], "name": board["name"], "shortLink": board["shortLink"]},
                "list": {"id": lst["id"], "name": lst["name"]},
            },
            "memberCreator": {k: self.member[k] for k in ("id", "username", "fullName", "initials", "avatarUrl")},
        }
        self.comments.append(copy.deepcopy(action))
        card["dateLastActivity"] = board["dateLastActivity"] = now
        return action


async def start_fake_trello(
    fake: FakeTrello, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Start on a free port; return (runner, base_url) where base_url is like 'http://127.0.0.1:54321'.

    The API is then at ``base_url + "/1"`` and the consent page at ``base_url + "/1/authorize"``.
    Stop it with ``await runner.cleanup()``.
    """
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    if ":" in bound_host:
        bound_host = f"[{bound_host}]"
    return runner, f"http://{bound_host}:{bound_port}"
