"""The fake of a YAML provider, generated from its definition (docs/providers-yaml.md):
the consent page, a token endpoint that answers in the declared style, the identity call
and every action answering its ``output.example``, with pages that continue in the
declared paging style, and each declared error on demand (:meth:`GeneratedFake.error_next`).

A pasted credential (``api_key``, ``basic``) has no consent page at the real provider; the
fake serves a page that hands a new key back in the URL fragment, so the hub's token flow
(and a person in the sandbox) can connect through it."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from aiohttp import web

from hub.types import Sandbox
from hub.yamlprov import Definition, load_file
from hub.yamlprov.actions import placement
from hub.yamlprov.schema import ActionDef
from hub.yamlprov.values import pick, put

from ._oauth import CURRENT
from ._parts import Grant, add_query, basic_credentials, new_secret
from .fake import FakeProvider

NEXT_CURSOR = "fake-next-page"


class GeneratedFake(FakeProvider):
    """A :class:`FakeProvider` whose manners and API come from ``definition``."""

    api_path = "/api"

    def __init__(self, definition: Definition, **kw: Any) -> None:
        auth = definition.auth
        self.definition = definition
        self.title = f"Fake {definition.title}"
        self.kind = auth.kind
        ident = definition.identity
        account = {k: pick(ident.example, f) for k, f in (("id", ident.id), ("name", ident.name), ("email", ident.email)) if f}
        kw.setdefault("answers", auth.token_answers)
        kw.setdefault("client_auth", auth.client_auth)
        kw.setdefault("errors_in_body", auth.token_errors_in_body)
        kw.setdefault("scope_separator", auth.scope_separator)
        kw.setdefault("expires_in", 3600 if auth.kind == "oauth2" and auth.refresh else None)
        kw.setdefault("account", {k: v for k, v in account.items() if v is not None})
        super().__init__(**kw)
        standard_revoke = auth.revoke is not None and (auth.revoke.method, auth.revoke.body, auth.revoke.token_field) == ("POST", "form", "token")
        if auth.kind == "oauth2":
            self.paths = {"authorize": "/oauth/authorize", "token": "/oauth/token", "revoke": "/oauth/revoke" if standard_revoke else None, "userinfo": None}
        else:
            self.paths = {"authorize": "/key", "token": None, "revoke": None, "userinfo": None}

    # ------------------------------------------------------------------ serving

    def add_routes(self, app: web.Application) -> None:
        ident = self.definition.identity
        app.router.add_route(ident.method, self._api(ident.path), self._identity)
        for action in self.definition.actions:
            app.router.add_route(action.method, self._api(action.upstream or action.path), self._action(action))
        revoke = self.definition.auth.revoke
        if revoke is not None and self.paths.get("revoke") is None:
            app.router.add_route(revoke.method, "/oauth/grants", self._custom_revoke)
            app.router.add_route(revoke.method, "/oauth/grants/{client_id}", self._custom_revoke)

    def hub_settings(self, base_url: str | None = None) -> dict[str, Any]:
        base = base_url or self.base_url
        settings = super().hub_settings(base)
        if self.kind != "oauth2":
            settings.pop("client_id"), settings.pop("client_secret")
        revoke = self.definition.auth.revoke
        if revoke is not None and self.paths.get("revoke") is None:
            settings["urls"]["revoke"] = f"{base}/oauth/grants" + ("/{client_id}" if "{client_id}" in revoke.url else "")
        for key in self.definition.config:
            if key.required and key.default is None:
                settings[key.name] = f"fake-{key.name.replace('_', '-')}"
        return settings

    def _api(self, path: str) -> str:
        return f"{self.api_path}/{path.strip('/')}"

    # ------------------------------------------------------------------ the declared errors

    def error_next(self, index: int, *, count: int = 1, path: str | None = None) -> None:
        """Answer the next ``count`` API requests with ``errors[index]``'s example (its first
        status, its body and headers), as the provider reports that failure."""
        rule = self.definition.errors[index]
        status = rule.status[0] if rule.status else 400
        body = rule.example if rule.example is not None else {"error": rule.kind}
        self._queue(path or self.api_path, count, lambda: web.json_response(body, status=status, headers=rule.headers))

    # ------------------------------------------------------------------ the pasted credential's page

    def authorize_problem(self, params: dict[str, str]) -> str | None:
        if self.kind == "oauth2":
            return super().authorize_problem(params)
        return None if params.get("redirect_uri") else "redirect_uri_missing"

    def approve(self, params: dict[str, str]) -> str:
        if self.kind == "oauth2":
            return super().approve(params)
        token = self.mint("access", dict(self.account), "", grant=new_secret("fake-grant"))
        back = add_query(params["redirect_uri"], state=params.get("state", ""))
        return f"{back}#token={token.value}"

    def new_token_value(self, kind: str, extra: dict[str, Any]) -> str:
        if self.kind == "basic":
            return f"fake-user:{new_secret('fake-password')}"
        return new_secret(f"fake-{'key' if self.kind == 'api_key' else kind}")

    def token_answer(self, access: Any, refresh: Any, scope: str) -> dict[str, Any]:
        body = super().token_answer(access, refresh, scope)
        if not self.definition.auth.refresh:
            body.pop("refresh_token", None)
        return body

    def account_for(self, grant: Grant) -> dict[str, Any]:
        return dict(self.account)

    def require_token(self, request: web.Request) -> Any:
        if self.kind == "oauth2":
            return super().require_token(request)
        value = self._presented(request)
        token = self.tokens.get(value) if value else None
        if token is None or not token.usable(self.clock()):
            raise web.HTTPUnauthorized(text='{"error": "invalid_credentials"}', content_type="application/json")
        return token

    def _presented(self, request: web.Request) -> str | None:
        if self.kind == "basic":
            pair = basic_credentials(request.headers.get("Authorization", ""))
            return f"{pair[0]}:{pair[1]}" if pair else None
        key = self.definition.auth.key
        assert key is not None
        if key.query:
            return request.query.get(key.query)
        header = request.headers.get(key.header or "", "")
        return header[len(key.prefix):] if header.startswith(key.prefix) else None

    # ------------------------------------------------------------------ the API

    async def _identity(self, request: web.Request) -> web.Response:
        self.require_token(request)
        return self.json(self.definition.identity.example)

    def _action(self, action: ActionDef) -> Any:
        async def answer(request: web.Request) -> web.Response:
            self.require_token(request)
            call = CURRENT.get()
            body = call.json.get(action.body_key) if action.body_key and isinstance(call.json, dict) else call.json
            sent = {**call.query, **(body if isinstance(body, dict) else {})}
            missing = [n for n in (action.input.get("required") or ()) if placement(action, n) != "path" and n not in sent]
            if missing:
                return self.json({"error": "missing_field", "message": f"{missing[0]} is required"}, 422)
            body = copy.deepcopy(action.output.example)
            headers: dict[str, str] = {}
            if action.paging is not None:
                body = self._page(action, body, sent, request, headers)
            return self.json(body, headers=headers)

        return answer

    def _page(self, action: ActionDef, body: Any, sent: dict[str, Any], request: web.Request, headers: dict[str, str]) -> Any:
        paging = action.paging
        assert paging is not None
        first = paging.param not in sent
        if paging.style == "cursor":
            put(body, paging.next_field or "", NEXT_CURSOR if first else None)
        elif paging.style == "link" and first:
            headers["Link"] = f'<{self.base_url}{request.path}?{paging.param}=2>; rel="next"'
        elif paging.style in ("offset", "page"):
            if paging.more_field:
                put(body, paging.more_field, first)
            else:
                size = int(sent.get(paging.size_param or "", paging.page_size))
                items = pick(body, action.output.pick) or []
                page = list(itertools.islice(itertools.cycle(items), size)) if first and items else []
                body = page if not action.output.pick else body
                if action.output.pick:
                    put(body, action.output.pick, page)
        return body

    async def _custom_revoke(self, request: web.Request) -> web.Response:
        revoke = self.definition.auth.revoke
        assert revoke is not None
        call = CURRENT.get()
        if revoke.client_auth != "none" and not self._revoker_ok(request, call.form, revoke.client_auth):
            return self.json({"message": "Bad credentials"}, 401)
        if "client_id" in request.match_info and request.match_info["client_id"] != self.client_id:
            return self.json({"message": "Not Found"}, 404)
        sent = call.json if revoke.body == "json" and isinstance(call.json, dict) else call.form
        token = self.tokens.get(str(sent.get(revoke.token_field, "")))
        if token is None:
            return self.json({"message": "Not Found"}, 404)
        for other in self.tokens.values():
            other.revoked = other.revoked or other.grant == token.grant or other is token
        return web.Response(status=204)


    def _revoker_ok(self, request: web.Request, form: dict[str, str], style: str) -> bool:
        """The client's credentials, in the place the revocation declares (it may differ from
        the token endpoint's: GitHub takes them as form fields there and as Basic here)."""
        given = basic_credentials(request.headers.get("Authorization", "")) if style == "basic" else (form.get("client_id", ""), form.get("client_secret", ""))
        return given == (self.client_id, self.client_secret)


def sandbox(definition: Definition) -> Sandbox:
    """The fake of ``definition`` for ``hub sandbox`` (the ``hub.yaml_fakes`` entry point)."""
    fake = GeneratedFake(definition, client_id=f"sandbox-{definition.name}", client_secret=new_secret("sandbox-secret"))
    return Sandbox(app=fake.make_app(), settings=fake.hub_settings)


def fake_for(path: str) -> GeneratedFake:
    """A new fake of the provider file at ``path``."""
    return GeneratedFake(load_file(path).definition)

