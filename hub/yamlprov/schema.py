"""The shape of a provider file (docs/providers-yaml.md), as typed, validated objects.

Every model forbids unknown keys, so a misspelt key is an error naming its YAML path
rather than a setting silently ignored.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..types import HTTP_METHODS

ErrorKindName = Literal["auth", "expired", "grant", "rate_limited", "not_found", "bad_input", "forbidden", "conflict", "transient", "error"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FIELD_PATH = re.compile(r"^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_URL = re.compile(r"^https?://[^\s]+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _dotted(value: str | None) -> str | None:
    if value is not None and not _FIELD_PATH.match(value):
        raise ValueError(f"{value!r} is not a field path (names joined by '.', such as data.id)")
    return value


def _named(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("lowercase letters, digits and '_', starting with a letter, at most 64 characters")
    return value


def _url(value: str | None) -> str | None:
    if value is not None and not _URL.match(value):
        raise ValueError("must be an http:// or https:// URL")
    return value


class KeyPlacement(_Model):
    """Where a pasted API key travels: a header (with an optional prefix) or a query parameter."""

    header: str | None = None
    prefix: str = ""
    query: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> KeyPlacement:
        if (self.header is None) == (self.query is None):
            raise ValueError("give exactly one of header or query")
        if self.header is not None and not _HEADER.match(self.header):
            raise ValueError(f"header: {self.header!r} is not a header name")
        return self


class Revoke(_Model):
    """How a grant is revoked. The default is RFC 7009 (a form POST with the client's
    credentials); GitHub's style is a DELETE with a JSON body under Basic client auth."""

    url: str
    method: Literal["POST", "DELETE"] = "POST"
    body: Literal["form", "json"] = "form"
    token_field: str = "token"
    client_auth: Literal["basic", "form", "none"] = "basic"

    check_url = field_validator("url")(classmethod(lambda cls, v: _url(v)))


class Auth(_Model):
    kind: Literal["oauth2", "api_key", "basic"]
    # oauth2
    authorize: str | None = None
    token: str | None = None
    revoke: Revoke | None = None
    pkce: bool = True
    refresh: bool = True
    scopes: list[str] = Field(default_factory=list)
    scope_separator: str = " "
    authorize_params: dict[str, str] = Field(default_factory=dict)
    token_accept: str | None = None
    client_auth: Literal["basic", "form"] = "basic"
    token_errors_in_body: bool = False
    # What the token endpoint answers in: JSON, form-encoded, or form unless asked for JSON.
    token_answers: Literal["json", "form", "accept"] = "json"
    # api_key
    key: KeyPlacement | None = None

    check_urls = field_validator("authorize", "token")(classmethod(lambda cls, v: _url(v)))

    @model_validator(mode="after")
    def _complete(self) -> Auth:
        if self.kind == "oauth2":
            missing = [k for k in ("authorize", "token") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"an oauth2 provider needs {' and '.join(missing)}")
            if self.key is not None:
                raise ValueError("key: only an api_key provider has one")
        elif self.kind == "api_key":
            if self.key is None:
                raise ValueError("an api_key provider needs key (header or query)")
        if self.kind != "oauth2":
            extras = [k for k in ("authorize", "token", "revoke") if getattr(self, k) is not None]
            if extras or self.scopes:
                raise ValueError(f"{', '.join(extras or ['scopes'])}: only an oauth2 provider has these")
        if not self.scope_separator:
            raise ValueError("scope_separator must not be empty")
        return self


class ConfigKey(_Model):
    name: str
    description: str = ""
    secret: bool = False
    required: bool = True
    default: Any = None

    check_name = field_validator("name")(classmethod(lambda cls, v: _named(v)))


class Identity(_Model):
    """The call that says who a credential belongs to, and where its answer names the account."""

    method: Literal["GET", "POST"] = "GET"
    path: str
    id: str
    name: str | None = None
    email: str | None = None
    # A sample answer: the generated fake answers it.
    example: dict[str, Any]

    check_fields = field_validator("id", "name", "email")(classmethod(lambda cls, v: _dotted(v)))


class Paging(_Model):
    """How an action's answer continues, surfaced as the hub's ``nextCursor``.

    ``cursor``: the answer's ``next_field`` is sent back as ``param``.
    ``link``: the ``Link`` header's ``rel="next"`` URL; its ``param`` query value is the cursor.
    ``offset`` / ``page``: ``param`` counts items (offset) or pages (page) of ``size_param``
    items; there is more while ``more_field`` is true or, without one, while a page is full.
    """

    style: Literal["cursor", "link", "offset", "page"]
    param: str
    next_field: str | None = None
    size_param: str | None = None
    page_size: int = Field(30, ge=1, le=1000)
    more_field: str | None = None

    check_fields = field_validator("next_field", "more_field")(classmethod(lambda cls, v: _dotted(v)))

    @model_validator(mode="after")
    def _complete(self) -> Paging:
        if self.style == "cursor" and not self.next_field:
            raise ValueError("cursor paging needs next_field (where the answer holds the next cursor)")
        if self.style != "cursor" and self.next_field:
            raise ValueError("next_field: only cursor paging has one")
        if self.style in ("offset", "page") and not self.size_param and not self.more_field:
            raise ValueError(f"{self.style} paging needs size_param or more_field, to know when a page is the last")
        return self


class Output(_Model):
    pick: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    # A sample of the provider's whole answer (before ``pick``): the generated fake answers it.
    example: Any

    check_pick = field_validator("pick")(classmethod(lambda cls, v: _dotted(v)))


class ActionDef(_Model):
    name: str
    method: str
    path: str
    upstream: str | None = None  # the provider's path, when it differs from the hub's
    summary: str = ""
    description: str = ""
    input: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    # Where each input goes; path parameters always go to the path, the rest by default to
    # the query string (GET, DELETE) or the JSON body.
    inputs: dict[str, Literal["path", "query", "body"]] = Field(default_factory=dict)
    # The JSON body's inputs go under this key (Asana's {"data": {...}}), not at its top.
    body_key: str | None = None
    examples: list[dict[str, Any]] = Field(default_factory=list)
    output: Output
    paging: Paging | None = None

    check_name = field_validator("name")(classmethod(lambda cls, v: _named(v)))

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v.upper() not in HTTP_METHODS:
            raise ValueError(f"must be one of {', '.join(HTTP_METHODS)}")
        return v.upper()


class ErrorRule(_Model):
    """An answer that means a failure: its status (any, when left out) and, optionally, a
    regular expression its body must match; ``code`` names where the provider's own code is."""

    status: list[int] = Field(default_factory=list)
    match: str | None = None
    kind: ErrorKindName
    code: str | None = None
    message: str | None = None
    # Seconds to wait when a rate-limited answer names no wait itself.
    retry_after: float | None = Field(None, gt=0, le=86400)
    # A sample body (and headers) of this failure: the generated fake answers it on demand.
    example: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("status", mode="before")
    @classmethod
    def _statuses(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v

    @field_validator("match")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from None
        return v

    @model_validator(mode="after")
    def _bounded(self) -> ErrorRule:
        if any(not 200 <= s <= 599 for s in self.status):
            raise ValueError("status: each must be an HTTP status from 200 to 599")
        if (not self.status or any(s < 400 for s in self.status)) and self.match is None:
            raise ValueError("a rule that may apply to a successful status needs a match")
        return self


class RateLimitDef(_Model):
    requests: int = Field(ge=1)
    seconds: float = Field(gt=0)
    per: Literal["token", "app"] = "token"


class RateLimits(_Model):
    remaining_header: str | None = None
    reset_header: str | None = None
    limits: list[RateLimitDef] = Field(default_factory=list)


class Definition(_Model):
    name: str
    title: str
    description: str = ""
    api: str
    auth: Auth
    config: list[ConfigKey] = Field(default_factory=list)
    identity: Identity
    actions: list[ActionDef] = Field(default_factory=list)
    errors: list[ErrorRule] = Field(default_factory=list)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    # Sent on every call to the API (an API version, an Accept); never credentials.
    headers: dict[str, str] = Field(default_factory=dict)
    # Regexes of the provider's credential shapes, masked wherever they appear.
    token_shapes: list[str] = Field(default_factory=list)

    check_api = field_validator("api")(classmethod(lambda cls, v: _url(v)))

    check_name = field_validator("name")(classmethod(lambda cls, v: _named(v)))
