"""Pieces of :class:`hub.testing.ProviderContract` that are not tests: the plugin's declared
actions and hooks, an example turned into the HTTP request that carries it, answers checked
against an output schema, what a webhook delivery left in the database, and a test client
that keeps every answer for secret scans."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import select

from hub.registry import Registry
from hub.store.models import Event, Integration, IntegrationLog
from hub.types import Action
from hub.validation import QUERY_METHODS

from .kit import auth_headers, hub_of, provider_name


class ContractMixin:
    """What a part of :class:`hub.testing.ProviderContract` mixed into it relies on: the
    plugin, the user, a connected hub and the integration view (all provided by the suite)."""

    plugin: Any
    user: str

    if TYPE_CHECKING:
        async def connected(self, make_hub: Any) -> Any: ...
        async def view(self, client: Any, user: str | None = None) -> tuple[int, Any]: ...


def declared_actions(plugin: object) -> tuple[Action, ...]:
    """The plugin's actions, loaded as the hub loads them (a broken plugin raises here)."""
    registry = Registry(strict=True)
    loaded = registry.add(provider_name(plugin), plugin)
    assert loaded is not None
    return loaded.actions


def implements(plugin: object, hook: str) -> bool:
    """Whether the plugin, loaded as the hub loads it, implements ``hook`` (``hub_webhook``)."""
    loaded = Registry(strict=True).add(provider_name(plugin), plugin)
    assert loaded is not None
    return hook in loaded.hooks


def webhook_path(provider: str) -> str:
    return f"/api/integrations/{provider}/webhook"


@dataclass(frozen=True)
class Traces:
    """What the hub stored for a provider that a webhook delivery may add to: its events out
    (``(id, integration id, type)``) and its ``webhook`` activity rows (``(id, integration id, action)``)."""

    events: tuple[tuple[int, int | None, str], ...]
    logs: tuple[tuple[int, int, str], ...]

    def since(self, before: Traces) -> Traces:
        """What is here and was not ``before``."""
        return Traces(tuple(e for e in self.events if e not in before.events), tuple(r for r in self.logs if r not in before.logs))


async def traces(client: TestClient) -> Traces:
    """The provider's events and webhook activity rows now (the activity writer caught up first)."""
    hub = hub_of(client)
    provider = client.provider  # type: ignore[attr-defined]
    await hub.activity.flush(timeout=None)
    async with hub.sessions() as session:
        events = (await session.execute(
            select(Event.id, Event.integration_id, Event.type).where(Event.provider == provider).order_by(Event.id))).all()
        logs = (await session.execute(
            select(IntegrationLog.id, IntegrationLog.integration_id, IntegrationLog.action)
            .join(Integration, Integration.id == IntegrationLog.integration_id)
            .where(Integration.provider == provider, IntegrationLog.kind == "webhook").order_by(IntegrationLog.id))).all()
    return Traces(tuple(tuple(e) for e in events), tuple(tuple(r) for r in logs))  # type: ignore[misc]


async def integration_id(client: TestClient, user: str) -> int | None:
    """The id of ``user``'s integration of the client's provider, or ``None``."""
    provider = client.provider  # type: ignore[attr-defined]
    async with hub_of(client).sessions() as session:
        found: int | None = await session.scalar(select(Integration.id).where(Integration.provider == provider, Integration.user_id == user))
        return found


async def renewal_of(client: TestClient, user: str) -> tuple[datetime | None, datetime | None]:
    """``(renew_by, renew_lease_until)`` of ``user``'s integration of the client's provider."""
    provider = client.provider  # type: ignore[attr-defined]
    async with hub_of(client).sessions() as session:
        found = (await session.execute(select(Integration.renew_by, Integration.renew_lease_until)
                                       .where(Integration.provider == provider, Integration.user_id == user))).one()
    return found[0], found[1]


def upstream_calls(fake: Any, since: int) -> list[str]:
    """``"METHOD path"`` of the fake's calls from index ``since`` on, its OAuth endpoints left
    out (``fake.paths``, when it has them): what a hook asked of the provider."""
    oauth = {p for p in getattr(fake, "paths", {}).values() if p}
    return [f"{c.method} {c.path}" for c in fake.calls[since:] if c.path not in oauth]


def error_code(answer: Any) -> str | None:
    """The ``error.code`` of a hub's JSON error answer, if it is one."""
    error = answer.get("error") if isinstance(answer, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def example_cases(plugin: object) -> list[tuple[str, int | None]]:
    """``(action name, example index)`` for every example; ``None`` for an action without one."""
    cases: list[tuple[str, int | None]] = []
    for action in declared_actions(plugin):
        cases.extend([(action.name, i) for i in range(len(action.examples))] or [(action.name, None)])
    return cases


def case_id(case: tuple[str, int | None]) -> str:
    name, index = case
    return f"{name}-{'no-example' if index is None else index}"


async def call_action(client: TestClient, provider: str, action: Action, example: Mapping[str, Any], user: str) -> Any:
    """Run ``action`` with ``example`` through the hub's HTTP API as ``user``: path
    parameters fill the path, the rest travels in the query string (GET, DELETE) or as the
    JSON body. Returns the response, its body already read."""
    path = action.path
    for name in action.path_params:
        path = path.replace(f"{{{name}}}", quote(str(example[name]), safe=""))
    rest = {k: v for k, v in example.items() if k not in action.path_params}
    url = f"/api/integrations/{provider}/{path}"
    kw: dict[str, Any] = {"headers": auth_headers(user)}
    if action.method in QUERY_METHODS:
        kw["params"] = [(k, _query_text(v)) for k, value in rest.items() for v in (value if isinstance(value, list) else [value])]
    else:
        kw["json"] = rest
    resp = await client.request(action.method, url, **kw)
    await resp.read()
    return resp


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def output_problems(schema: Mapping[str, Any], data: Any, limit: int = 10) -> list[str]:
    """Where ``data`` breaks ``schema``: ``"/path: message"`` lines, at most ``limit``."""
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    found = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        where = "/" + "/".join(str(p) for p in err.absolute_path)
        message = err.message if len(err.message) <= 200 else err.message[:200] + "..."
        found.append(f"{where}: {message}")
        if len(found) == limit:
            break
    return found


def with_query(location: str, **values: str) -> str:
    """``location`` with query parameters replaced (a forged callback)."""
    parts = urlsplit(location)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(values)
    return urlunsplit(parts._replace(query=urlencode(query)))


def query_value(location: str, name: str) -> str:
    return dict(parse_qsl(urlsplit(location).query)).get(name, "")


class RecordingClient:
    """A test client that keeps the status, headers and body of every answer it gets, for
    secret scans; everything else is the wrapped client's."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.answers: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self.client.request(method, path, **kw)
        body = await resp.read()
        headers = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
        self.answers.append(f"{resp.status}\n{headers}\n{body.decode('utf-8', 'replace')}")
        return resp

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Any:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Any:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.request("DELETE", path, **kw)
