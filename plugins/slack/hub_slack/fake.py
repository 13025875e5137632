"""A fake Slack, served by aiohttp, for tests and for a local sandbox.

Built on :class:`hub.testing.FakeProvider`, which brings the consent page, request recording,
the fault switches (from Python and from the ``/_fake`` control routes), ``delay`` and the state
the sandbox keeps across restarts. What is Slack's own lives here:

* the browser side of OAuth v2 (``GET/POST /oauth/v2/authorize``): the consent page's "Allow"
  and "Deny" send the browser back to ``redirect_uri`` with ``code``+``state`` or
  ``error=access_denied``+``state``; ``scope`` and ``user_scope`` are comma-separated;
* ``oauth.v2.access``: code exchange (single-use codes, ``redirect_uri`` check, client credentials
  by HTTP Basic or form fields) answering a bot token and, when ``user_scope`` was asked, a user
  token from the one exchange; with ``rotation=True``, expiring tokens plus the ``refresh_token``
  grant;
* ``auth.test``, ``auth.revoke``, ``chat.postMessage``, ``conversations.list``, ``users.info``.

Like Slack, every API error is HTTP 200 with ``{"ok": false, "error": "<code>"}``; only the
fault switches produce other statuses: ``rate_limit_next`` answers 429 ``ratelimited`` with
``Retry-After``, ``fail_next(status)`` without a body a plain-text HTTP error, and
``slack_error_next(method, error)`` a Slack error from one method.

Deliberate simplifications:

* One app (one client id/secret) and one installing user (the first entry of ``users``). The
  ``team`` authorize parameter is honoured as the team id; otherwise the team is ``T0000000001``.
  The consent page lists the bot scopes; the user scopes travel with the form unlisted.
* Membership is global: a channel's ``is_member`` says whether the app (bot and installer alike)
  is in it. Posting to a public channel the app is not in answers ``not_in_channel`` unless the
  token has ``chat:write.public``; private channels the app is not in do not exist for it.
* Scopes are checked roughly as Slack does (``missing_scope`` with ``needed``/``provided``):
  ``chat:write`` for posting, ``users:read`` for users.info, and per conversation type
  ``channels:read``/``groups:read``/``mpim:read``/``im:read``. ``check_scopes=False`` turns
  this off.
* ``auth.revoke`` ends the whole authorization behind the token: every access and refresh token
  of that bot (or user) grant becomes ``token_revoked``. Revoking one side of an install leaves
  the other side alone. ``revoke_all()`` revokes everything issued so far.
* Tokens are accepted from ``Authorization: Bearer`` or a ``token`` form field, never from a JSON
  body or the query string (Slack refuses both for current apps).
* Access tokens keep the plain ``xoxb-``/``xoxp-`` prefixes even with rotation on (real rotating
  tokens look like ``xoxe.xoxb-1-…``), and refresh tokens look like ``xoxe-1-…``; the random
  part of each starts with ``fake``.
* ``expire_tokens()`` expires every access token issued so far, rotating or not, so a test can
  provoke ``token_expired`` without waiting.
* Codes expire after ten minutes, as Slack's do; nothing else about timing is modelled beyond
  ``expires_in``, ``delay`` (each answer is worked out, then held that long) and the 429 switch.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import secrets
import string
import time
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from hub.testing import FakeProvider, FakeToken

from .fake_events import SlackEvents

__all__ = ["FakeSlack", "SlackError"]

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


class SlackError(Exception):
    """Raised inside a method; becomes an HTTP 200 ``ok: false`` answer."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _team(team_id: str) -> dict:
    if team_id == DEFAULT_TEAM_ID:
        return {"id": team_id, "name": "Fake Workspace", "domain": "fake-workspace"}
    return {"id": team_id, "name": f"Workspace {team_id}", "domain": f"workspace-{team_id.lower()}"}


def _default_users(team_id: str) -> dict:
    def person(uid: str, name: str, real_name: str, tz: str) -> dict:
        profile = {"email": f"{name}@example.com", "display_name": name, "real_name": real_name,
                   "image_72": f"https://avatars.slack-edge.com/fake/{uid}_72.png"}
        return {"id": uid, "team_id": team_id, "name": name, "real_name": real_name, "deleted": False,
                "is_bot": False, "tz": tz, "profile": profile}

    return {
        "U0000000001": person("U0000000001", "ada", "Ada Lovelace", "Europe/London"),
        "U0000000002": person("U0000000002", "grace", "Grace Hopper", "America/New_York"),
    }


def _channel(i: int, creator: str) -> dict:
    # A fixed rhythm over every five channels so that even the default five hold one
    # private, one archived and one channel the app has not joined.
    name = {1: "general", 2: "random"}.get(i, f"channel-{i}")
    created = 1_449_252_889 + i * 86_400
    return {
        "id": f"C{i:010d}", "name": name,
        "is_channel": True, "is_group": False, "is_im": False, "is_mpim": False,
        "is_private": i % 5 == 3, "is_archived": i % 5 == 4, "is_general": i == 1, "is_member": i % 5 != 0,
        "created": created, "creator": creator, "num_members": 3 + i % 7,
        "topic": {"value": f"Talk about {name}", "creator": creator, "last_set": created},
        "purpose": {"value": f"The {name} channel", "creator": creator, "last_set": created},
    }


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


def _encode_cursor(channel_id: str) -> str:
    # Like Slack's: base64 of a position marker, padding and all, so clients must URL-encode it.
    return base64.b64encode(f"channel:{channel_id}".encode()).decode()


def _client_credentials(request: web.Request, params: dict) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if header[:6].lower() != "basic ":
        return str(params.get("client_id", "")), str(params.get("client_secret", ""))
    try:
        client_id, _, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return client_id, secret


class FakeSlack(SlackEvents, FakeProvider):
    """Slack's data and Web API on the fake-provider base, and the Events API's sending side (fake_events.py)."""

    title = "Fake Slack"
    # oauth.v2.access and auth.revoke are Web API methods (below); Slack has no userinfo endpoint.
    paths: ClassVar[dict[str, str | None]] = {"authorize": "/oauth/v2/authorize", "token": None, "revoke": None, "userinfo": None}
    consent_fields = ("client_id", "scope", "user_scope", "redirect_uri", "state", "team")
    app_id = "A0FAKEAPP01"
    bot_id = "B0FAKEBOT01"
    bot_user_id = "U0FAKEBOT01"
    bot_name = "fakebot"

    def __init__(
        self,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        *,
        rotation: bool = False,
        expires_in: int = 43200,
        channel_count: int = 5,
        users: dict | None = None,
        check_scopes: bool = True,
        delay: float = 0.0,
    ) -> None:
        self.users: dict = copy.deepcopy(users) if users is not None else _default_users(DEFAULT_TEAM_ID)
        if not self.users:
            raise ValueError("FakeSlack needs at least one user: the first one installs the app")
        for uid, user in self.users.items():
            user.setdefault("id", uid)
        self.installer_id: str = next(iter(self.users))
        account = {"team_id": DEFAULT_TEAM_ID, "bot_user_id": self.bot_user_id, "user_id": self.installer_id}
        super().__init__(client_id, client_secret, scope_separator=",", expires_in=expires_in,
                         code_lifetime=CODE_LIFETIME, account=account, delay=delay)
        self.rotation = rotation  # Slack's token rotation: expiring access tokens and refresh tokens
        self.check_scopes = check_scopes
        self.channels: list[dict] = [_channel(i, self.installer_id) for i in range(1, channel_count + 1)]
        self.messages: list[dict] = []
        self._last_ts_micros = 0
        self._methods = {
            "oauth.v2.access": self._oauth_v2_access,
            "auth.test": self._auth_test,
            "auth.revoke": self._auth_revoke,
            "chat.postMessage": self._chat_post_message,
            "conversations.list": self._conversations_list,
            "users.info": self._users_info,
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{self.api_path}/{{method}}", self._api)
        app.router.add_post(f"{self.api_path}/{{method}}", self._api)
        self.add_event_routes(app)

    def hub_settings(self, base_url: str | None = None) -> dict[str, Any]:
        settings = super().hub_settings(base_url)
        settings["urls"]["token"], settings["signing_secret"] = f"{settings['urls']['api']}/oauth.v2.access", self.signing_secret
        return settings

    def slack_error_next(self, method: str, error: str, count: int = 1) -> None:
        """The next ``count`` calls of one Web API method ("chat.postMessage") answer
        HTTP 200 ``{"ok": false, "error": error}``."""
        self.fail_next(200, {"ok": False, "error": error}, path=f"{self.api_path}/{method}", count=count)

    # ------------------------------------------------------------------ state kept by the sandbox

    def export_state(self) -> dict[str, Any]:
        return {**super().export_state(), "messages": self.messages, "last_ts_micros": self._last_ts_micros}

    def import_state(self, state: dict[str, Any]) -> None:
        messages, last_ts = list(state["messages"]), int(state["last_ts_micros"])  # read before anything changes
        super().import_state(state)
        self.messages, self._last_ts_micros = messages, last_ts

    # ------------------------------------------------------------------ hooks of the base

    def authorize_problem(self, params: dict[str, str]) -> str | None:
        if params.get("client_id", "") != self.client_id:
            return "invalid_client_id"
        if not params.get("redirect_uri"):
            return "missing_redirect_uri"
        if not params.get("scope") and not params.get("user_scope"):
            return "invalid_scope"
        return None

    def approve(self, params: dict[str, str]) -> str:
        target = super().approve(params)
        code = parse_qs(urlsplit(target).query)["code"][-1]
        self.codes[code].extra = {"user_scope": params.get("user_scope", ""), "user_id": self.installer_id,
                                  "team_id": params.get("team") or DEFAULT_TEAM_ID}
        return target

    def new_token_value(self, kind: str, extra: dict[str, Any]) -> str:
        tail = "fake" + _random(string.ascii_letters + string.digits, 20)
        if kind == "refresh":
            return f"xoxe-1-{tail}{_random(string.ascii_letters, 16)}"
        prefix = "xoxb" if extra["side"] == "bot" else "xoxp"
        return f"{prefix}-{_random(string.digits, 12)}-{_random(string.digits, 13)}-{tail}"

    def fault_answer(self, status: int, body: Any) -> web.Response:
        if body is None:  # a bare HTTP error, as a proxy in front of Slack would answer it
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = "Error"
            return web.Response(status=status, text=f"{status} {reason}")
        return super().fault_answer(status, body)

    def rate_limit_answer(self, retry_after: int) -> web.Response:
        return self.json({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(retry_after)})

    # ------------------------------------------------------------------ the Web API

    async def _api(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        method = self._methods.get(name)
        if method is None:
            return self.json({"ok": False, "error": "unknown_method", "req_method": name}, 404)
        call = self.current_call()
        try:
            if call.json is None and request.content_type == "application/json" and (await request.text()).strip():
                raise SlackError("invalid_json")
            if call.json is not None and not isinstance(call.json, dict):
                raise SlackError("json_not_object")
            return self.json({"ok": True, **method(request, {**call.query, **call.form, **(call.json or {})})})
        except SlackError as err:
            return self.json({"ok": False, "error": err.code, **err.extra})

    def _authenticate(self, request: web.Request) -> FakeToken:
        header = request.headers.get("Authorization", "")
        value = (header[7:].strip() if header[:7].lower() == "bearer " else "") or self.current_call().form.get("token", "")
        if not value:
            raise SlackError("not_authed")
        token = self.tokens.get(value)
        if token is None or token.kind != "access":
            raise SlackError("invalid_auth")
        if token.revoked:
            raise SlackError("token_revoked")
        if token.expires_at is not None and self.clock() >= token.expires_at:
            raise SlackError("token_expired")
        return token

    def _require_scopes(self, token: FakeToken, needed: list[str]) -> None:
        missing = [s for s in needed if s not in token.scope.split(",")]
        if self.check_scopes and missing:
            raise SlackError("missing_scope", needed=",".join(missing), provided=token.scope)

    # ------------------------------------------------------------------ oauth.v2.access

    def _oauth_v2_access(self, request: web.Request, params: dict) -> dict:
        client_id, client_secret = _client_credentials(request, params)
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
        code = self.codes.get(str(params.get("code", "")))
        if code is None or self.clock() - code.issued_at > self.code_lifetime:
            raise SlackError("invalid_code")
        if code.used:
            raise SlackError("code_already_used")
        # Slack: redirect_uri is optional at exchange unless authorize got one, and the fake's
        # authorize always does. A mismatch does not burn the code.
        if params.get("redirect_uri", "") != code.redirect_uri:
            raise SlackError("bad_redirect_uri")
        code.used = True
        team_id, user_id, user_scope = code.extra["team_id"], code.extra["user_id"], code.extra["user_scope"]
        install = secrets.token_hex(8)  # each side of the install is an authorization of its own
        body: dict = {"app_id": self.app_id}
        if code.scope:
            bot = self._issue_side("bot", team_id, self.bot_user_id, code.scope, f"{install}-bot")
            body.update({**bot, "token_type": "bot", "scope": code.scope, "bot_user_id": self.bot_user_id})
        authed_user: dict = {"id": user_id, "scope": user_scope, "token_type": "user"}
        if user_scope:
            authed_user.update(self._issue_side("user", team_id, user_id, user_scope, f"{install}-user"))
        return {**body, **self._team_fields(team_id), "authed_user": authed_user}

    def _exchange_refresh_token(self, params: dict) -> dict:
        old = self.tokens.get(str(params.get("refresh_token", "")))
        if old is None or old.kind != "refresh" or old.spent or old.revoked:
            raise SlackError("invalid_refresh_token")
        old.spent = True
        side, team_id, user_id = old.extra["side"], old.account["team_id"], old.account["user_id"]
        body = {"app_id": self.app_id, **self._issue_side(side, team_id, user_id, old.scope, old.grant, rotating=True),
                "token_type": side, "scope": old.scope, **self._team_fields(team_id)}
        body["bot_user_id" if side == "bot" else "user_id"] = user_id
        return body

    def _issue_side(self, side: str, team_id: str, user_id: str, scope: str, grant: str, rotating: bool | None = None) -> dict:
        """Mint an access token (and, when rotating, a refresh token) for one side of an install."""
        rotating = self.rotation if rotating is None else rotating
        account = {"team_id": team_id, "user_id": user_id}
        access = self.mint("access", account, scope, grant=grant, expires_in=self.expires_in if rotating else None, side=side)
        if not rotating:
            return {"access_token": access.value}
        refresh = self.mint("refresh", account, scope, grant=grant, side=side)
        return {"access_token": access.value, "refresh_token": refresh.value, "expires_in": self.expires_in}

    @staticmethod
    def _team_fields(team_id: str) -> dict:
        team = _team(team_id)
        return {"team": {"id": team["id"], "name": team["name"]}, "enterprise": None, "is_enterprise_install": False}

    # ------------------------------------------------------------------ auth.*

    def _auth_test(self, request: web.Request, params: dict) -> dict:
        token = self._authenticate(request)
        team, user_id = _team(token.account["team_id"]), token.account["user_id"]
        is_bot = token.extra["side"] == "bot"
        body = {
            "url": f"https://{team['domain']}.slack.com/",
            "team": team["name"],
            "user": self.bot_name if is_bot else self.users.get(user_id, {}).get("name", ""),
            "team_id": team["id"],
            "user_id": user_id,
        }
        if is_bot:
            body["bot_id"] = self.bot_id
        return {**body, "is_enterprise_install": False}

    def _auth_revoke(self, request: web.Request, params: dict) -> dict:
        grant = self._authenticate(request).grant
        if _truthy(params.get("test", False)):
            return {"revoked": False}
        for token in self.tokens.values():
            token.revoked = token.revoked or token.grant == grant
        return {"revoked": True}

    # ------------------------------------------------------------------ chat.postMessage

    def _visible_channel(self, ref: Any) -> dict | None:
        ref = str(ref or "").strip().lstrip("#")
        for channel in self.channels:
            if ref in (channel["id"], channel["name"]):
                # Slack hides private channels from outsiders rather than refusing access.
                return None if channel["is_private"] and not channel["is_member"] else channel
        return None

    def _chat_post_message(self, request: web.Request, params: dict) -> dict:
        token = self._authenticate(request)
        self._require_scopes(token, ["chat:write"])
        channel = self._visible_channel(params.get("channel"))
        if channel is None:
            raise SlackError("channel_not_found")
        if channel["is_archived"]:
            raise SlackError("is_archived")
        if not channel["is_member"] and "chat:write.public" not in token.scope.split(","):
            raise SlackError("not_in_channel")
        text = "" if params.get("text") is None else str(params["text"])
        blocks = _json_list(params.get("blocks"), "invalid_blocks_format")
        attachments = _json_list(params.get("attachments"), "invalid_attachments")
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        if len(text) > MAX_TEXT_LENGTH:
            raise SlackError("msg_too_long")

        ts = self._next_ts()
        message: dict = {"type": "message", "text": text, "user": token.account["user_id"], "ts": ts,
                         "team": token.account["team_id"]}
        if token.extra["side"] == "bot":
            message["bot_id"] = self.bot_id
        optional = {"blocks": blocks, "attachments": attachments, "thread_ts": str(params.get("thread_ts") or "")}
        message.update({key: value for key, value in optional.items() if value})
        self.messages.append({"channel": channel["id"], **copy.deepcopy(message)})
        return {"channel": channel["id"], "ts": ts, "message": message}

    def _next_ts(self) -> str:
        # Slack's ts doubles as the message id, so it must be unique and increasing even when
        # two messages land in the same microsecond.
        micros = max(int(time.time() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # ------------------------------------------------------------------ conversations.list, users.info

    def _conversations_list(self, request: web.Request, params: dict) -> dict:
        token = self._authenticate(request)
        types = [t.strip() for t in str(params.get("types") or "public_channel").split(",") if t.strip()]
        if not types or any(t not in TYPE_SCOPES for t in types):
            raise SlackError("invalid_types")
        self._require_scopes(token, [TYPE_SCOPES[t] for t in types])
        limit = _limit(params.get("limit"))
        start = self._decode_cursor(params["cursor"]) if params.get("cursor") else 0
        exclude_archived = _truthy(params.get("exclude_archived", False))

        def listed(channel: dict) -> bool:
            kind = "private_channel" if channel["is_private"] else "public_channel"
            if kind not in types or (exclude_archived and channel["is_archived"]):
                return False
            return not channel["is_private"] or channel["is_member"]

        matches = [c for c in self.channels[start:] if listed(c)]
        next_cursor = _encode_cursor(matches[limit]["id"]) if len(matches) > limit else ""
        return {"channels": copy.deepcopy(matches[:limit]), "response_metadata": {"next_cursor": next_cursor}}

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
            return {"user": self._bot_user(token.account["team_id"])}
        user = self.users.get(user_id)
        if user is None:
            raise SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _bot_user(self, team_id: str) -> dict:
        profile = {"email": None, "display_name": "", "real_name": "Fake Bot", "bot_id": self.bot_id,
                   "image_72": f"https://avatars.slack-edge.com/fake/{self.bot_user_id}_72.png"}
        return {"id": self.bot_user_id, "team_id": team_id, "name": self.bot_name, "real_name": "Fake Bot",
                "deleted": False, "is_bot": True, "tz": "America/Los_Angeles", "profile": profile}
