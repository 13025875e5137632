"""A fake Slack, served by aiohttp, for tests and for a local sandbox.

It imitates the parts of Slack the hub talks to:

* the browser side of OAuth v2 (``GET/POST /oauth/v2/authorize``): a small consent page whose
  "Allow"/"Deny" buttons send the browser back to ``redirect_uri`` with ``code``+``state`` or
  ``error=access_denied``+``state``;
* ``oauth.v2.access``: code exchange (single-use codes, ``redirect_uri`` check, client credentials
  by HTTP Basic or form fields) and, with ``rotation=True``, expiring tokens plus the
  ``refresh_token`` grant;
* ``auth.test``, ``auth.revoke``, ``chat.postMessage``, ``conversations.list``, ``users.info``.

Like Slack, every API error is HTTP 200 with ``{"ok": false, "error": "<code>"}``; only the
fault switches (429, 5xx) produce other statuses.

Deliberate simplifications:

* One app (one client id/secret) and one installing user (the first entry of ``users``). The
  ``team`` authorize parameter is honoured as the team id; otherwise the team is ``T0000000001``.
* Membership is global: a channel's ``is_member`` says whether the app (bot and installer alike)
  is in it. Posting to a public channel the app is not in answers ``not_in_channel`` unless the
  token has ``chat:write.public``; private channels the app is not in do not exist for it.
* Scopes are checked roughly as Slack does (``missing_scope`` with ``needed``/``provided``):
  ``chat:write`` for posting, ``users:read`` for users.info, and per conversation type
  ``channels:read``/``groups:read``/``mpim:read``/``im:read``. ``check_scopes=False`` turns
  this off.
* ``auth.revoke`` ends the whole authorization behind the token: every access and refresh token
  of that bot (or user) grant becomes ``token_revoked``. Revoking one side of an install leaves
  the other side alone.
* Tokens are accepted from ``Authorization: Bearer`` or a ``token`` form field, never from a JSON
  body or the query string (Slack refuses both for current apps).
* Access tokens keep the plain ``xoxb-``/``xoxp-`` prefixes even with rotation on (real rotating
  tokens look like ``xoxe.xoxb-1-…``), and refresh tokens look like ``xoxe-1-…``.
* ``expire_access_tokens()`` expires every access token issued so far, rotating or not, so a
  test can provoke ``token_expired`` without waiting.
* Codes expire after ten minutes, as Slack's do; nothing else about timing is modelled beyond
  ``expires_in``, ``delay`` and the 429 switch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import copy
import html
import json
import secrets
import string
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

__all__ = ["FakeCall", "FakeSlack", "start_fake_slack"]

MAX_TEXT_LENGTH = 40_000
CODE_LIFETIME = 600  # seconds; Slack's authorization codes are short-lived
DEFAULT_TEAM_ID = "T0000000001"

# Which read scope each conversation type needs in conversations.list.
TYPE_SCOPES = {
    "public_channel": "channels:read",
    "private_channel": "groups:read",
    "mpim": "mpim:read",
    "im": "im:read",
}


@dataclass
class FakeCall:
    """One HTTP request as the fake received it."""

    method: str
    path: str
    headers: dict
    query: dict
    form: dict
    json: Any = None

    @property
    def api_method(self) -> str:
        """``"auth.test"`` for ``/api/auth.test``; the bare path for anything else."""
        return self.path[len("/api/"):] if self.path.startswith("/api/") else self.path


# The request being answered, as recorded, plus whether its JSON body failed to parse. A context
# variable rather than request["..."], which newer aiohttp versions warn about.
_CURRENT: contextvars.ContextVar[tuple[FakeCall, bool]] = contextvars.ContextVar("fake_slack_call")


class SlackError(Exception):
    """Raised inside handlers; becomes an HTTP 200 ``ok: false`` answer."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass
class _Code:
    redirect_uri: str
    scope: str
    user_scope: str
    team_id: str
    user_id: str
    issued_at: float
    used: bool = False


@dataclass
class _Grant:
    """One side (bot or user) of one installation; every token it spawns hangs off it."""

    kind: str  # "bot" or "user"
    team_id: str
    user_id: str  # the bot user for bot grants, the installer for user grants
    scope: str
    tokens: list[str] = field(default_factory=list)

    @property
    def scopes(self) -> set[str]:
        return {s for s in self.scope.split(",") if s}


@dataclass
class _AccessToken:
    grant: _Grant
    expires_at: float | None
    expired: bool = False


@dataclass
class _RefreshToken:
    grant: _Grant
    spent: bool = False


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


def _random_alnum(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _random_digits(length: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(length))


def _add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _default_users(team_id: str) -> dict:
    def person(uid: str, name: str, real_name: str, tz: str) -> dict:
        return {
            "id": uid,
            "team_id": team_id,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": False,
            "tz": tz,
            "profile": {
                "email": f"{name}@example.com",
                "display_name": name,
                "real_name": real_name,
                "image_72": f"https://avatars.slack-edge.com/fake/{uid}_72.png",
            },
        }

    return {
        "U0000000001": person("U0000000001", "ada", "Ada Lovelace", "Europe/London"),
        "U0000000002": person("U0000000002", "grace", "Grace Hopper", "America/New_York"),
    }


class Hold:
    """One held call (see :meth:`FakeSlack.hold_next`)."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.released = asyncio.Event()

    def release(self) -> None:
        self.released.set()


class FakeSlack:
    """State and routes of the fake; see the module docstring for what it imitates."""

    app_id = "A0FAKEAPP01"
    bot_id = "B0FAKEBOT01"
    bot_user_id = "U0FAKEBOT01"
    bot_name = "fakebot"

    def __init__(
        self,
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        rotation: bool = False,
        expires_in: int = 43200,
        channel_count: int = 5,
        users: dict | None = None,
        check_scopes: bool = True,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.rotation = rotation
        self.expires_in = expires_in
        self.check_scopes = check_scopes
        self.users: dict = copy.deepcopy(users) if users is not None else _default_users(DEFAULT_TEAM_ID)
        if not self.users:
            raise ValueError("FakeSlack needs at least one user: the first one installs the app")
        for uid, user in self.users.items():
            user.setdefault("id", uid)
        self.installer_id: str = next(iter(self.users))
        self.channels: list[dict] = [self._make_channel(i) for i in range(1, channel_count + 1)]

        self.calls: list[FakeCall] = []
        self.issued_tokens: list[str] = []
        self.revoked_tokens: set[str] = set()
        self.messages: list[dict] = []
        self.delay: float = 0.0

        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._faults: dict[str, deque[Callable[[], web.Response]]] = defaultdict(deque)
        self._holds: dict[str, deque[Hold]] = defaultdict(deque)
        self._last_ts_micros = 0

        self._methods: dict[str, Callable[[web.Request, dict], dict]] = {
            "oauth.v2.access": self._oauth_v2_access,
            "auth.test": self._auth_test,
            "auth.revoke": self._auth_revoke,
            "chat.postMessage": self._chat_post_message,
            "conversations.list": self._conversations_list,
            "users.info": self._users_info,
        }
        self.app = web.Application(middlewares=[self._recording_middleware()])
        self.app.router.add_get("/oauth/v2/authorize", self._authorize_page)
        self.app.router.add_post("/oauth/v2/authorize", self._authorize_decision)
        self.app.router.add_get("/api/{method}", self._api)
        self.app.router.add_post("/api/{method}", self._api)

    def hub_settings(self, base_url: str) -> dict:
        """The hub's ``providers.slack`` section that points at this fake, served at ``base_url``."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "urls": {"authorize": f"{base_url}/oauth/v2/authorize", "token": f"{base_url}/api/oauth.v2.access", "api": f"{base_url}/api"},
        }

    # ------------------------------------------------------------------ inspection & switches

    def calls_to(self, method_name: str) -> list[FakeCall]:
        """Calls of one API method ("auth.revoke") or to one path ("/oauth/v2/authorize")."""
        return [c for c in self.calls if method_name in (c.api_method, c.path)]

    def fail_next(self, method_name: str, error: str, count: int = 1) -> None:
        self._queue_fault(method_name, count, lambda: web.json_response({"ok": False, "error": error}))

    def rate_limit_next(self, method_name: str, retry_after: int = 1, count: int = 1) -> None:
        def answer() -> web.Response:
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(retry_after)}
            )

        self._queue_fault(method_name, count, answer)

    def http_error_next(self, method_name: str, status: int, count: int = 1) -> None:
        def answer() -> web.Response:
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = "Error"
            return web.Response(status=status, text=f"{status} {reason}")

        self._queue_fault(method_name, count, answer)

    def hold_next(self, method_name: str) -> Hold:
        """Hold the next call of ``method_name`` as it arrives, before it is answered, until
        the test calls ``release()`` on what this returns; its ``arrived`` event is set the
        moment the call is held. For tests of what happens while a call is in flight."""
        hold = Hold()
        self._holds[method_name].append(hold)
        return hold

    def revoke_all(self) -> None:
        self.revoked_tokens.update(self._access)
        self.revoked_tokens.update(self._refresh)

    def expire_access_tokens(self) -> None:
        for record in self._access.values():
            record.expired = True

    def _queue_fault(self, method_name: str, count: int, answer: Callable[[], web.Response]) -> None:
        self._faults[method_name].extend([answer] * count)

    # ------------------------------------------------------------------ keeping state across restarts

    def export_state(self) -> dict:
        """What the fake issued and holds, as JSON-ready data for :meth:`import_state` (the sandbox
        saves it so that a restarted fake still honours the tokens it issued). Times are wall
        clock here: the fake's own clock is monotonic and means nothing in another process."""
        grants: dict[int, _Grant] = {}
        for record in [*self._access.values(), *self._refresh.values()]:
            grants.setdefault(id(record.grant), record.grant)
        index = {key: i for i, key in enumerate(grants)}
        to_wall = time.time() - self._now()
        return {
            "grants": [{"kind": g.kind, "team_id": g.team_id, "user_id": g.user_id, "scope": g.scope, "tokens": g.tokens}
                       for g in grants.values()],
            "access": {token: {"grant": index[id(r.grant)], "expired": r.expired,
                               "expires_at": None if r.expires_at is None else r.expires_at + to_wall}
                       for token, r in self._access.items()},
            "refresh": {token: {"grant": index[id(r.grant)], "spent": r.spent} for token, r in self._refresh.items()},
            "codes": {code: {**vars(c), "issued_at": c.issued_at + to_wall} for code, c in self._codes.items()},
            "issued_tokens": self.issued_tokens,
            "revoked_tokens": sorted(self.revoked_tokens),
            "messages": self.messages,
            "last_ts_micros": self._last_ts_micros,
        }

    def import_state(self, state: dict) -> None:
        """Take back what :meth:`export_state` gave; everything is read before anything changes."""
        to_monotonic = self._now() - time.time()
        grants = [_Grant(g["kind"], g["team_id"], g["user_id"], g["scope"], list(g["tokens"])) for g in state["grants"]]
        access = {token: _AccessToken(grants[r["grant"]], None if r["expires_at"] is None else r["expires_at"] + to_monotonic,
                                      bool(r["expired"]))
                  for token, r in state["access"].items()}
        refresh = {token: _RefreshToken(grants[r["grant"]], bool(r["spent"])) for token, r in state["refresh"].items()}
        codes = {code: _Code(**{**c, "issued_at": c["issued_at"] + to_monotonic}) for code, c in state["codes"].items()}
        issued, revoked, messages = list(state["issued_tokens"]), set(state["revoked_tokens"]), list(state["messages"])
        last_ts = int(state["last_ts_micros"])
        self._access, self._refresh, self._codes = access, refresh, codes
        self.issued_tokens, self.revoked_tokens, self.messages, self._last_ts_micros = issued, revoked, messages, last_ts

    # ------------------------------------------------------------------ plumbing

    def _recording_middleware(self) -> Any:
        # A middleware rather than per-handler code so that every request is recorded, even one
        # that ends in a fault switch, a 404 or an error page.
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            form: dict = {}
            body_json: Any = None
            invalid_json = False
            if request.method == "POST":
                if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
                elif request.content_type == "application/json":
                    raw = await request.text()
                    try:
                        body_json = json.loads(raw) if raw.strip() else None
                    except ValueError:
                        invalid_json = True
            call = FakeCall(
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                query=dict(request.query),
                form=form,
                json=body_json,
            )
            self.calls.append(call)
            reset = _CURRENT.set((call, invalid_json))
            try:
                return await handler(request)
            finally:
                _CURRENT.reset(reset)

        return record

    async def _api(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._holds.get(name):
            hold = self._holds[name].popleft()
            hold.arrived.set()
            await hold.released.wait()
        if self._faults.get(name):
            return self._faults[name].popleft()()
        handler = self._methods.get(name)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method", "req_method": name}, status=404)
        call, invalid_json = _CURRENT.get()
        try:
            if invalid_json:
                raise SlackError("invalid_json")
            if call.json is not None and not isinstance(call.json, dict):
                raise SlackError("json_not_object")
            params = {**call.query, **call.form, **(call.json or {})}
            return self._ok(handler(request, params))
        except SlackError as err:
            return web.json_response({"ok": False, "error": err.code, **err.extra})

    @staticmethod
    def _ok(body: dict) -> web.Response:
        return web.json_response({"ok": True, **body})

    def _now(self) -> float:
        return time.monotonic()

    def _team(self, team_id: str) -> dict:
        if team_id == DEFAULT_TEAM_ID:
            return {"id": team_id, "name": "Fake Workspace", "domain": "fake-workspace"}
        return {"id": team_id, "name": f"Workspace {team_id}", "domain": f"workspace-{team_id.lower()}"}

    def _make_channel(self, i: int) -> dict:
        # A fixed rhythm over every five channels so that even the default five hold one
        # private, one archived and one channel the app has not joined.
        name = {1: "general", 2: "random"}.get(i, f"channel-{i}")
        created = 1_449_252_889 + i * 86_400
        return {
            "id": f"C{i:010d}",
            "name": name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": i % 5 == 3,
            "is_archived": i % 5 == 4,
            "is_general": i == 1,
            "is_member": i % 5 != 0,
            "created": created,
            "creator": self.installer_id,
            "num_members": 3 + i % 7,
            "topic": {"value": f"Talk about {name}", "creator": self.installer_id, "last_set": created},
            "purpose": {"value": f"The {name} channel", "creator": self.installer_id, "last_set": created},
        }

    # ------------------------------------------------------------------ OAuth: browser side

    def _authorize_problem(self, params: Any) -> str | None:
        if params.get("client_id", "") != self.client_id:
            return "invalid_client_id"
        if not params.get("redirect_uri"):
            return "missing_redirect_uri"
        if not params.get("scope") and not params.get("user_scope"):
            return "invalid_scope"
        return None

    async def _authorize_page(self, request: web.Request) -> web.Response:
        params = request.query
        problem = self._authorize_problem(params)
        if problem:
            return self._error_page(problem)
        e = html.escape
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{e(params.get(name, ""))}">'
            for name in ("client_id", "scope", "user_scope", "redirect_uri", "state", "team")
        )

        def scope_list(raw: str) -> str:
            items = [s for s in raw.split(",") if s]
            return "".join(f"<li><code>{e(s)}</code></li>" for s in items) or "<li><em>none</em></li>"

        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Install app | Fake Slack</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4ede4; margin: 0; }}
main {{ max-width: 30rem; margin: 4rem auto; background: #fff; border-radius: 8px; padding: 2rem;
        box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
.buttons {{ display: flex; gap: 1rem; margin-top: 2rem; }}
button {{ flex: 1; padding: .7rem; font-size: 1rem; border-radius: 4px; cursor: pointer; }}
#allow {{ background: #007a5a; color: #fff; border: none; }}
#deny {{ background: #fff; border: 1px solid #999; }}
</style></head>
<body><main>
<h1>App <code id="client-id">{e(params["client_id"])}</code> wants to join
{e(self._team(params.get("team") or DEFAULT_TEAM_ID)["name"])}</h1>
<p>As a bot it would be allowed to:</p><ul id="scopes">{scope_list(params.get("scope", ""))}</ul>
<p>On your behalf it would be allowed to:</p><ul id="user-scopes">{scope_list(params.get("user_scope", ""))}</ul>
<form method="post" action="/oauth/v2/authorize">{hidden}
<div class="buttons">
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
</div></form>
</main></body></html>
"""
        return web.Response(text=page, content_type="text/html")

    async def _authorize_decision(self, request: web.Request) -> web.Response:
        form = _CURRENT.get()[0].form
        problem = self._authorize_problem(form)
        if problem:
            return self._error_page(problem)
        state = form.get("state", "")
        if form.get("decision") != "allow":
            target = _add_query(form["redirect_uri"], error="access_denied", state=state)
        else:
            code = f"{_random_digits(10)}.{_random_digits(13)}.{secrets.token_hex(32)}"
            self._codes[code] = _Code(
                redirect_uri=form["redirect_uri"],
                scope=form.get("scope", ""),
                user_scope=form.get("user_scope", ""),
                team_id=form.get("team") or DEFAULT_TEAM_ID,
                user_id=self.installer_id,
                issued_at=self._now(),
            )
            self.issued_tokens.append(code)
            target = _add_query(form["redirect_uri"], code=code, state=state)
        return web.Response(status=302, headers={"Location": target})

    @staticmethod
    def _error_page(problem: str) -> web.Response:
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Fake Slack: error</title>'
            "<style>body{font-family:system-ui,sans-serif;margin:4rem auto;max-width:30rem}</style></head>"
            f"<body><h1>Something went wrong</h1><p>Error: <code id=\"error\">{html.escape(problem)}</code></p>"
            "</body></html>"
        )
        return web.Response(status=400, text=page, content_type="text/html")

    # ------------------------------------------------------------------ OAuth: token endpoint

    def _client_credentials(self, request: web.Request, params: dict) -> tuple[str, str]:
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            client_id, _, client_secret = decoded.partition(":")
            return client_id, client_secret
        return str(params.get("client_id", "")), str(params.get("client_secret", ""))

    def _oauth_v2_access(self, request: web.Request, params: dict) -> dict:
        client_id, client_secret = self._client_credentials(request, params)
        if client_id != self.client_id:
            raise SlackError("invalid_client_id")
        if client_secret != self.client_secret:
            raise SlackError("bad_client_secret")
        grant_type = params.get("grant_type") or "authorization_code"
        if grant_type == "authorization_code":
            return self._exchange_code(params)
        if grant_type == "refresh_token":
            return self._exchange_refresh_token(params)
        raise SlackError("invalid_grant_type")

    def _exchange_code(self, params: dict) -> dict:
        code = self._codes.get(str(params.get("code", "")))
        if code is None or self._now() - code.issued_at > CODE_LIFETIME:
            raise SlackError("invalid_code")
        if code.used:
            raise SlackError("code_already_used")
        # Slack: redirect_uri is optional at exchange unless authorize got one, and the fake's
        # authorize always does. A mismatch does not burn the code.
        if params.get("redirect_uri", "") != code.redirect_uri:
            raise SlackError("bad_redirect_uri")
        code.used = True

        team = self._team(code.team_id)
        body: dict = {"app_id": self.app_id}
        if code.scope:
            bot = _Grant("bot", code.team_id, self.bot_user_id, code.scope)
            body.update({**self._issue(bot), "token_type": "bot", "scope": code.scope, "bot_user_id": self.bot_user_id})
        authed_user: dict = {"id": code.user_id, "scope": code.user_scope, "token_type": "user"}
        if code.user_scope:
            user = _Grant("user", code.team_id, code.user_id, code.user_scope)
            authed_user.update(self._issue(user))
        body.update(
            {
                "team": {"id": team["id"], "name": team["name"]},
                "enterprise": None,
                "is_enterprise_install": False,
                "authed_user": authed_user,
            }
        )
        return body

    def _exchange_refresh_token(self, params: dict) -> dict:
        token = str(params.get("refresh_token", ""))
        record = self._refresh.get(token)
        if record is None or record.spent or token in self.revoked_tokens:
            raise SlackError("invalid_refresh_token")
        record.spent = True
        grant = record.grant
        team = self._team(grant.team_id)
        body = {
            "app_id": self.app_id,
            **self._issue(grant, rotating=True),
            "token_type": grant.kind,
            "scope": grant.scope,
            "team": {"id": team["id"], "name": team["name"]},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        body["bot_user_id" if grant.kind == "bot" else "user_id"] = grant.user_id
        return body

    def _issue(self, grant: _Grant, rotating: bool | None = None) -> dict:
        """Mint an access token (and, when rotating, a refresh token) for a grant."""
        rotating = self.rotation if rotating is None else rotating
        prefix = "xoxb" if grant.kind == "bot" else "xoxp"
        access = f"{prefix}-{_random_digits(12)}-{_random_digits(13)}-{_random_alnum(24)}"
        expires_at = self._now() + self.expires_in if rotating else None
        self._access[access] = _AccessToken(grant, expires_at)
        grant.tokens.append(access)
        self.issued_tokens.append(access)
        issued: dict = {"access_token": access}
        if rotating:
            refresh = f"xoxe-1-{_random_alnum(40)}"
            self._refresh[refresh] = _RefreshToken(grant)
            grant.tokens.append(refresh)
            self.issued_tokens.append(refresh)
            issued.update({"refresh_token": refresh, "expires_in": self.expires_in})
        return issued

    # ------------------------------------------------------------------ Web API methods

    def _authenticate(self, request: web.Request) -> _AccessToken:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not token:
            token = str(_CURRENT.get()[0].form.get("token", ""))
        if not token:
            raise SlackError("not_authed")
        record = self._access.get(token)
        if record is None:
            raise SlackError("invalid_auth")
        if token in self.revoked_tokens:
            raise SlackError("token_revoked")
        if record.expired or (record.expires_at is not None and self._now() >= record.expires_at):
            raise SlackError("token_expired")
        return record

    def _require_scopes(self, token: _AccessToken, needed: list[str]) -> None:
        missing = [s for s in needed if s not in token.grant.scopes]
        if self.check_scopes and missing:
            raise SlackError("missing_scope", needed=",".join(missing), provided=token.grant.scope)

    def _auth_test(self, request: web.Request, params: dict) -> dict:
        grant = self._authenticate(request).grant
        team = self._team(grant.team_id)
        is_bot = grant.kind == "bot"
        body = {
            "url": f"https://{team['domain']}.slack.com/",
            "team": team["name"],
            "user": self.bot_name if is_bot else self.users[grant.user_id].get("name", ""),
            "team_id": team["id"],
            "user_id": grant.user_id,
        }
        if is_bot:
            body["bot_id"] = self.bot_id
        body["is_enterprise_install"] = False
        return body

    def _auth_revoke(self, request: web.Request, params: dict) -> dict:
        grant = self._authenticate(request).grant
        if _truthy(params.get("test", False)):
            return {"revoked": False}
        self.revoked_tokens.update(grant.tokens)
        return {"revoked": True}

    def _visible_channel(self, ref: Any) -> dict | None:
        ref = str(ref or "").strip().lstrip("#")
        for channel in self.channels:
            if ref in (channel["id"], channel["name"]):
                # Slack hides private channels from outsiders rather than refusing access.
                if channel["is_private"] and not channel["is_member"]:
                    return None
                return channel
        return None

    @staticmethod
    def _json_list(value: Any, error: str) -> list | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise SlackError(error) from None
        if not isinstance(value, list):
            raise SlackError(error)
        return value

    def _chat_post_message(self, request: web.Request, params: dict) -> dict:
        token = self._authenticate(request)
        self._require_scopes(token, ["chat:write"])
        channel = self._visible_channel(params.get("channel"))
        if channel is None:
            raise SlackError("channel_not_found")
        if channel["is_archived"]:
            raise SlackError("is_archived")
        if not channel["is_member"] and "chat:write.public" not in token.grant.scopes:
            raise SlackError("not_in_channel")
        text = params.get("text")
        text = "" if text is None else str(text)
        blocks = self._json_list(params.get("blocks"), "invalid_blocks_format")
        attachments = self._json_list(params.get("attachments"), "invalid_attachments")
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        if len(text) > MAX_TEXT_LENGTH:
            raise SlackError("msg_too_long")

        ts = self._next_ts()
        message: dict = {"type": "message", "text": text, "user": token.grant.user_id, "ts": ts,
                         "team": token.grant.team_id}
        if token.grant.kind == "bot":
            message["bot_id"] = self.bot_id
        if blocks:
            message["blocks"] = blocks
        if attachments:
            message["attachments"] = attachments
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
        self.messages.append({"channel": channel["id"], **copy.deepcopy(message)})
        return {"channel": channel["id"], "ts": ts, "message": message}

    def _next_ts(self) -> str:
        # Slack's ts doubles as the message id, so it must be unique and increasing even when
        # two messages land in the same microsecond.
        micros = max(int(time.time() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _conversations_list(self, request: web.Request, params: dict) -> dict:
        token = self._authenticate(request)
        types = [t.strip() for t in str(params.get("types") or "public_channel").split(",") if t.strip()]
        if not types or any(t not in TYPE_SCOPES for t in types):
            raise SlackError("invalid_types")
        self._require_scopes(token, [TYPE_SCOPES[t] for t in types])
        limit = self._limit(params.get("limit"))
        start = self._decode_cursor(params["cursor"]) if params.get("cursor") else 0
        exclude_archived = _truthy(params.get("exclude_archived", False))

        def listed(channel: dict) -> bool:
            kind = "private_channel" if channel["is_private"] else "public_channel"
            if kind not in types or (exclude_archived and channel["is_archived"]):
                return False
            return not channel["is_private"] or channel["is_member"]

        matches = [c for c in self.channels[start:] if listed(c)]
        next_cursor = self._encode_cursor(matches[limit]["id"]) if len(matches) > limit else ""
        return {
            "channels": copy.deepcopy(matches[:limit]),
            "response_metadata": {"next_cursor": next_cursor},
        }

    @staticmethod
    def _limit(raw: Any) -> int:
        if raw is None or raw == "":
            return 100
        try:
            limit = int(raw)
        except (TypeError, ValueError):
            raise SlackError("invalid_limit") from None
        if limit < 1:
            raise SlackError("invalid_limit")
        return min(limit, 1000)

    @staticmethod
    def _encode_cursor(channel_id: str) -> str:
        # Like Slack's: base64 of a position marker, padding and all, so clients must URL-encode it.
        return base64.b64encode(f"channel:{channel_id}".encode()).decode()

    def _decode_cursor(self, cursor: Any) -> int:
        try:
            marker = base64.b64decode(str(cursor), validate=True).decode()
        except (binascii.Error, ValueError):  # ValueError: non-ASCII text is not base64 either
            raise SlackError("invalid_cursor") from None
        kind, _, channel_id = marker.partition(":")
        for index, channel in enumerate(self.channels):
            if kind == "channel" and channel["id"] == channel_id:
                return index
        raise SlackError("invalid_cursor")

    def _users_info(self, request: web.Request, params: dict) -> dict:
        token = self._authenticate(request)
        self._require_scopes(token, ["users:read"])
        user_id = str(params.get("user", ""))
        if user_id == self.bot_user_id:
            return {"user": self._bot_user(token.grant.team_id)}
        user = self.users.get(user_id)
        if user is None:
            raise SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _bot_user(self, team_id: str) -> dict:
        return {
            "id": self.bot_user_id,
            "team_id": team_id,
            "name": self.bot_name,
            "real_name": "Fake Bot",
            "deleted": False,
            "is_bot": True,
            "tz": "America/Los_Angeles",
            "profile": {"email": None, "display_name": "", "real_name": "Fake Bot",
                        "image_72": f"https://avatars.slack-edge.com/fake/{self.bot_user_id}_72.png",
                        "bot_id": self.bot_id},
        }


async def start_fake_slack(
    fake: FakeSlack, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Start on a free port; return (runner, base_url) where base_url is like 'http://127.0.0.1:54321'.

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
