"""The provider contract suite: what every provider plugin must do with the hub, run against
the plugin's own fake. A plugin package subclasses :class:`ProviderContract` in a test
module and pytest collects the inherited tests (``docs/plugins.md``, "The contract suite")."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.types import Action

from ._contract_hooks import HookContract
from ._contract_renew import RenewalContract
from ._contract_parts import (
    RecordingClient,
    call_action,
    case_id,
    declared_actions,
    example_cases,
    output_problems,
    query_value,
    with_query,
)
from .fake import FakeProvider
from .kit import auth_headers, begin_connect, connect, finish_connect, hub_of, press_consent
from .observe import activity, expire_access_tokens, found_secrets, stored_text

try:
    import pytest_asyncio  # noqa: F401

    _MARKS = [pytest.mark.asyncio]
except ImportError:  # pragma: no cover - the runner must then handle async tests itself
    _MARKS = []

# A Retry-After well above the kit's upstream.max_retry_wait (2 s): the hub must answer the
# 429 instead of waiting and retrying.
RETRY_AFTER = 30
# A second user, for flows that must leave nothing behind.
STRANGER = "contract-stranger"


class ProviderContract(HookContract, RenewalContract):
    """Subclass it as ``Test...`` with ``plugin`` (the plugin module or object) and
    :meth:`make_fake` (a new, unstarted :class:`FakeProvider`); override the hooks below,
    those of :class:`~hub.testing._contract_hooks.HookContract` for webhooks and
    ``hub_before_disconnect`` and those of :class:`~hub.testing._contract_renew.RenewalContract`
    for ``hub_renew``, for the provider's quirks. Every test gets a new fake and a new hub."""

    pytestmark = _MARKS
    plugin: Any = None
    user = "alice"
    # Actions the suite must not call, each with the reason (shown as the skip's reason).
    skip_actions: Mapping[str, str] = {}

    # ------------------------------------------------------------------ hooks

    def make_fake(self) -> FakeProvider:
        raise NotImplementedError("a ProviderContract subclass returns a new fake from make_fake()")

    def hub_options(self) -> dict[str, Any]:
        """Keyword arguments for ``make_hub`` (``settings=``, config sections)."""
        return {}

    async def prepare_example(self, client: TestClient, action: Action, example: Mapping[str, Any]) -> Mapping[str, Any]:
        """The input to send for ``example``: override to swap its ids for ones the fake
        holds, or to create what it names first (``client.fake`` is the running fake)."""
        return example

    def check_answer(self, action: Action, example: Mapping[str, Any], data: Any) -> None:
        """Check an action's ``data``: by default against its ``output_schema``, if any."""
        if action.output_schema is not None:
            problems = output_problems(action.output_schema, data)
            assert not problems, f"{action.name}: the answer breaks its output_schema:\n" + "\n".join(problems)

    def check_account(self, fake: FakeProvider, account: Mapping[str, Any]) -> None:
        """Check the integration view's ``account``: an ``accountId``, which is one of the
        values of ``fake.account`` when the fake has that mapping."""
        assert account.get("accountId"), f"the integration view shows no accountId: {account}"
        known = getattr(fake, "account", None)
        if isinstance(known, Mapping) and known:
            assert str(account["accountId"]) in {str(v) for v in known.values()}, (
                f"accountId {account['accountId']!r} is none of the fake account's values {sorted(known)}")

    def provoke_unauthorized(self, fake: FakeProvider) -> None:
        """Make the provider refuse the token on the next call and on the retry after a refresh."""
        fake.fail_next(401, {"error": "invalid_token"}, path=fake.api_path, count=2)

    def provoke_rate_limit(self, fake: FakeProvider) -> None:
        """Make the provider answer the next calls 429 with a ``Retry-After`` the hub will not wait for."""
        fake.rate_limit_next(count=3, retry_after=RETRY_AFTER, path=fake.api_path)

    def revoked_at_provider(self, fake: FakeProvider) -> bool:
        """Whether the fake revoked what it issued: every access token it handed out."""
        access = [t for t in fake.tokens.values() if t.kind == "access"]
        return bool(access) and all(t.revoked for t in access)

    def probe(self) -> tuple[Action, Mapping[str, Any]] | None:
        """The call the 401, 429 and refresh tests make: by default the first example of
        the first GET action (else of any action) that is not skipped."""
        usable = [a for a in declared_actions(self.plugin) if a.examples and a.name not in self.skip_actions]
        usable.sort(key=lambda a: a.method != "GET")
        return (usable[0], usable[0].examples[0]) if usable else None

    # ------------------------------------------------------------------ plumbing

    def pytest_generate_tests(self, metafunc: Any) -> None:
        if "contract_example" in metafunc.fixturenames:
            if self.plugin is None:
                raise TypeError(f"{type(self).__name__}: set plugin = <the plugin module or object>")
            cases = example_cases(self.plugin)
            unknown = sorted(set(self.skip_actions) - {name for name, _ in cases})
            if unknown:
                raise ValueError(f"{type(self).__name__}.skip_actions names no declared action: {', '.join(unknown)}")
            metafunc.parametrize("contract_example", cases, ids=[case_id(c) for c in cases])

    async def start(self, make_hub: Any) -> TestClient:
        return await make_hub(self.plugin, self.make_fake(), **self.hub_options())

    async def connected(self, make_hub: Any) -> TestClient:
        client = await self.start(make_hub)
        resp = await connect(client, user=self.user)
        assert resp.status in (200, 201), f"connect failed: {resp.status} {await resp.text()}"
        status, view = await self.view(client)
        assert status == 200 and view["status"] == "ACTIVE", f"after connect the integration is {view}"
        return client

    async def view(self, client: Any, user: str | None = None) -> tuple[int, Any]:
        resp = await client.get(f"/api/integrations/{client.provider}", headers=auth_headers(user or self.user))
        return resp.status, (await resp.json()).get("data")

    async def call(self, client: Any, action: Action, example: Mapping[str, Any]) -> Any:
        prepared = await self.prepare_example(client, action, example)
        return await call_action(client, client.provider, action, prepared, self.user)

    def probe_or_skip(self) -> tuple[Action, Mapping[str, Any]]:
        found = self.probe()
        if found is None:
            pytest.skip("the plugin declares no action with an example to call")
        return found

    @staticmethod
    def token_flow(client: Any) -> bool:
        return hub_of(client).providers.runtime(client.provider).info.auth == "token"

    # ------------------------------------------------------------------ the contract

    async def test_connect(self, make_hub: Any) -> None:
        client = await self.connected(make_hub)
        assert (await self.view(client))[1]["hasCredentials"]

    async def test_consent_denied_stores_nothing(self, make_hub: Any) -> None:
        client = await self.start(make_hub)
        resp = await connect(client, user=self.user, decision="deny")
        if not self.token_flow(client):
            assert resp.status >= 400, f"a denied consent answered {resp.status}"
        assert (await self.view(client))[0] == 404, "a denied consent left an integration behind"
        assert client.fake.issued == [], "the hub obtained a token although consent was denied"

    async def test_bad_code_or_token_stores_nothing(self, make_hub: Any) -> None:
        client = await self.start(make_hub)
        if self.token_flow(client):
            location = await press_consent(await begin_connect(client, user=STRANGER))
            body = {"token": "test-not-a-token-0000", "state": query_value(location, "state")}
            resp = await client.post(f"/api/integrations/{client.provider}/tokens", json=body)
            assert 400 <= resp.status < 500, f"a made-up token answered {resp.status}: {await resp.text()}"
        else:
            first = await press_consent(await begin_connect(client, user=self.user))
            assert (await finish_connect(client, first)).status == 200
            for code in ("test-not-a-code-0000", query_value(first, "code")):  # made up, then already used
                location = await press_consent(await begin_connect(client, user=STRANGER))
                resp = await finish_connect(client, with_query(location, code=code))
                assert resp.status >= 400, f"a bad code answered {resp.status}: {await resp.text()}"
        assert (await self.view(client, STRANGER))[0] == 404, "a refused code or token left an integration behind"

    async def test_identity(self, make_hub: Any) -> None:
        client = await self.connected(make_hub)
        _, view = await self.view(client)
        self.check_account(client.fake, view["account"])

    async def test_action_example(self, make_hub: Any, contract_example: tuple[str, int | None]) -> None:
        name, index = contract_example
        if name in self.skip_actions:
            pytest.skip(f"{name}: {self.skip_actions[name]}")
        action = next(a for a in declared_actions(self.plugin) if a.name == name)
        assert index is not None, f"action {name!r} declares no examples: give it Action(examples=...) or list it in skip_actions"
        example = action.examples[index]
        client = await self.connected(make_hub)
        resp = await self.call(client, action, example)
        body = await resp.json()
        assert 200 <= resp.status < 300, f"{name} with examples[{index}] answered {resp.status}: {body}"
        self.check_answer(action, example, body.get("data"))

    async def test_refresh_on_expiry(self, make_hub: Any) -> None:
        action, example = self.probe_or_skip()
        client = await self.connected(make_hub)
        if not (await self.view(client))[1]["hasRefreshToken"]:
            pytest.skip("the provider handed out no refresh token: there is nothing to refresh")
        fake = client.fake
        before, seen = set(fake.issued), len(fake.calls)
        expired = [t.value for t in fake.tokens.values() if t.kind == "access"]
        await expire_access_tokens(client, user=self.user)
        resp = await self.call(client, action, example)
        assert 200 <= resp.status < 300, f"after expiry {action.name} answered {resp.status}: {await resp.text()}"
        assert set(fake.issued) - before, "the hub did not refresh the expired access token"
        stale = next((f"{c.method} {c.path}" for c in fake.calls[seen:] if any(t in repr(c) for t in expired)), None)
        assert stale is None, f"the hub sent the expired access token again ({stale}) instead of refreshing first"
        _, view = await self.view(client)
        assert view["status"] == "ACTIVE", view

    async def test_unauthorized_asks_for_reconnect(self, make_hub: Any) -> None:
        action, example = self.probe_or_skip()
        client = await self.connected(make_hub)
        self.provoke_unauthorized(client.fake)
        resp = await self.call(client, action, example)
        body = await resp.json()
        assert resp.status == 409 and body["error"]["code"] == "reconnect_required", (resp.status, body)
        assert (await self.view(client))[1]["status"] == "ERROR"

    async def test_rate_limit_answers_429_with_retry_after(self, make_hub: Any) -> None:
        action, example = self.probe_or_skip()
        client = await self.connected(make_hub)
        self.provoke_rate_limit(client.fake)
        resp = await self.call(client, action, example)
        assert resp.status == 429, f"a rate-limited call answered {resp.status}: {await resp.text()}"
        retry_after = resp.headers.get("Retry-After", "")
        assert retry_after.isdigit() and int(retry_after) > 0, f"the hub's 429 has no Retry-After in whole seconds (got {retry_after!r})"
        assert (await self.view(client))[1]["status"] == "ACTIVE", "a rate limit must not change the integration's state"

    async def test_disconnect_revokes_at_the_provider(self, make_hub: Any) -> None:
        client = await self.connected(make_hub)
        resp = await client.delete(f"/api/integrations/{client.provider}/disconnect", headers=auth_headers(self.user))
        assert resp.status == 200, await resp.text()
        assert not (await resp.json())["data"]["hasCredentials"]
        assert self.revoked_at_provider(client.fake), "after a disconnect the provider still honours the token"

    async def test_no_issued_token_leaks(self, make_hub: Any, caplog: pytest.LogCaptureFixture) -> None:
        # aiosqlite's DEBUG lines repeat every SQL statement. (Each call also sets the capture
        # handler's level: the last one must be DEBUG.)
        caplog.set_level(logging.INFO, logger="aiosqlite")
        caplog.set_level(logging.DEBUG)
        client = RecordingClient(await self.start(make_hub))
        resp = await connect(client, user=self.user)  # type: ignore[arg-type]
        assert resp.status in (200, 201), await resp.text()
        for action in declared_actions(self.plugin):
            if action.name not in self.skip_actions:
                for example in action.examples:
                    await self.call(client, action, example)
        probe = self.probe()
        if probe is not None and (await self.view(client))[1]["hasRefreshToken"]:
            await expire_access_tokens(client, user=self.user)  # type: ignore[arg-type]
            await self.call(client, *probe)  # a refresh: its answer and its row are scanned too
        await activity(client, self.user)  # type: ignore[arg-type]
        stored = await stored_text(client)  # type: ignore[arg-type]
        await client.delete(f"/api/integrations/{client.provider}/disconnect", headers=auth_headers(self.user))
        await activity(client, self.user)  # type: ignore[arg-type]
        stored += await stored_text(client)  # type: ignore[arg-type]
        issued = list(client.fake.issued)
        assert issued, "the fake issued nothing: there is nothing to look for"
        # The logs last: at DEBUG the database driver logs the values it writes.
        for where, texts in (("the hub's answers", client.answers), ("the database", [stored]), ("the logs", [caplog.text])):
            leaked = found_secrets(issued, *texts)
            assert not leaked, f"issued tokens or codes found in {where}: {leaked}"
