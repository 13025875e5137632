"""The provider contract suite of hub.testing, proven on two small providers
(tests/contract_providers.py): an OAuth 2.0 one and a token-paste one each run the whole
suite as a plugin package would; broken variants show that the suite catches what it
promises to catch."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from contract_providers import FakeMemos, FakePasted, HookedMemos, Memos, Pasted, memos_delivery

from hub import Action, CallContext, Provider, ProviderError, WebhookRequest, WebhookResult, hookimpl
from hub.core.renewals import Renewals
from hub.testing import FakeProvider, ProviderContract, auth_headers

# --- the suite, run as a plugin package runs it ------------------------------------------


class TestMemosContract(ProviderContract):
    plugin = Memos()

    def make_fake(self) -> FakeProvider:
        return FakeMemos(account={"sub": "acct-7", "name": "Ada", "email": "ada@example.com"})


async def subscribed(self: Any, client: Any) -> bool:
    """A subscription to Memos' webhooks, taken through the hub: it asks for its renewal."""
    resp = await client.post(f"/api/integrations/{client.provider}/subscriptions", json={}, headers=auth_headers(self.user))
    assert resp.status == 200, await resp.text()
    return True


class TestHookedMemosContract(ProviderContract):
    """Memos with webhooks in, a hub_renew and a hub_before_disconnect: the suite's tests of
    all three run."""

    plugin = HookedMemos()
    prepare_renewal = subscribed

    def make_fake(self) -> FakeProvider:
        return FakeMemos(account={"sub": "acct-7"})

    async def signed_delivery(self, client: Any) -> Any:
        return memos_delivery("acct-7", "ev-contract-1")


class TestPastedContract(ProviderContract):
    plugin = Pasted()

    def make_fake(self) -> FakeProvider:
        return FakePasted()


# --- what the suite catches ---------------------------------------------------------------


class TellingAnswer(Memos):
    """Hands the access token back in an action's answer."""

    async def list_memos(self, ctx: CallContext) -> Any:
        return {**(await super().list_memos(ctx)), "debugToken": ctx.access_token}


class TellingLog(Memos):
    """Writes the access token to a log."""

    async def list_memos(self, ctx: CallContext) -> Any:
        logging.getLogger("memos").debug("listing with %s", ctx.access_token)
        return await super().list_memos(ctx)


class Unrevoking(Memos):
    @hookimpl
    async def hub_revoke_token(self, provider: Any, token: Any) -> None:
        return None  # forgets to tell the provider


class Careless(Memos):
    """Reads every failure as a plain provider error: no reconnect, no Retry-After."""

    @hookimpl
    def hub_check_response(self, provider: Any, response: Any) -> None:
        if response.status >= 400:
            raise ProviderError(f"Memos answered {response.status}")


class Misshapen(Memos):
    async def get_memo(self, ctx: CallContext) -> Any:
        return {"id": 1, "text": "the id should be a string, and the owner is missing"}


class Unexampled(Memos):
    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [Action("list_memos", "GET", "memos", self.list_memos)]


class Trusting(HookedMemos):
    """Reads whatever arrives at its webhook URL, signed or not."""

    @hookimpl
    def hub_webhook(self, provider: Provider, request: WebhookRequest) -> WebhookResult:
        body = json.loads(request.body)
        return self.events(body) if "account" in body else WebhookResult()


class Forgetful(HookedMemos):
    """Gives its events no dedupe_key: a provider's redelivery goes out again."""

    def events(self, body: dict[str, Any]) -> WebhookResult:
        (event,) = super().events(body).events
        return WebhookResult(events=(dataclasses.replace(event, dedupe_key=None),))


class Idle(HookedMemos):
    """Has a hub_before_disconnect that calls nothing upstream."""

    @hookimpl
    async def hub_before_disconnect(self, ctx: CallContext) -> Any:
        return {"nothing": "to undo"}


class Absorbing(HookedMemos):
    """Has a hub_before_disconnect that keeps the provider's failures to itself."""

    @hookimpl
    async def hub_before_disconnect(self, ctx: CallContext) -> Any:
        try:
            return await super().hub_before_disconnect(ctx)
        except ProviderError:
            return {"stopped": False}


class Once(HookedMemos):
    """Renews its subscription and asks for no further renewal."""

    @hookimpl
    async def hub_renew(self, ctx: CallContext) -> Any:
        return (await ctx.http.post("subscriptions", json={})).json()


class Hasty(HookedMemos):
    """Renews, but asks for the next renewal at once: the sweep would call it on every pass."""

    @hookimpl
    async def hub_renew(self, ctx: CallContext) -> Any:
        answer = await super().hub_renew(ctx)
        ctx.renew_by(datetime.now(UTC))
        return answer


class AbsorbingRenewal(HookedMemos):
    """Has a hub_renew that keeps the provider's failures to itself."""

    @hookimpl
    async def hub_renew(self, ctx: CallContext) -> Any:
        try:
            return await super().hub_renew(ctx)
        except ProviderError:
            return {"renewed": False}


async def delivered(self: Any, client: Any) -> Any:
    return memos_delivery("acct-7", "ev-contract-2")


def contract_for(plugin: object, **members: Any) -> ProviderContract:
    """A contract over ``plugin`` (not collected: its name does not start with Test)."""
    members.setdefault("make_fake", lambda self: FakeMemos(account={"sub": "acct-7"}))
    return type("Contract", (ProviderContract,), {"plugin": plugin, **members})()


async def test_the_suite_catches_a_token_in_an_answer(make_hub: Any, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AssertionError, match="issued tokens or codes found in the hub's answers"):
        await contract_for(TellingAnswer()).test_no_issued_token_leaks(make_hub, caplog)


async def test_the_suite_catches_a_token_in_the_logs(make_hub: Any, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AssertionError, match="issued tokens or codes found in the logs"):
        await contract_for(TellingLog()).test_no_issued_token_leaks(make_hub, caplog)


async def test_the_suite_catches_a_provider_that_does_not_revoke(make_hub: Any) -> None:
    with pytest.raises(AssertionError, match="still honours the token"):
        await contract_for(Unrevoking()).test_disconnect_revokes_at_the_provider(make_hub)


async def test_the_suite_catches_a_401_not_read_as_an_auth_failure(make_hub: Any) -> None:
    with pytest.raises(AssertionError, match=r"\(502, "):
        await contract_for(Careless()).test_unauthorized_asks_for_reconnect(make_hub)


async def test_the_suite_catches_a_429_not_read_as_a_rate_limit(make_hub: Any) -> None:
    with pytest.raises(AssertionError, match="a rate-limited call answered 502"):
        await contract_for(Careless()).test_rate_limit_answers_429_with_retry_after(make_hub)


async def test_the_suite_catches_an_answer_that_breaks_its_output_schema(make_hub: Any) -> None:
    with pytest.raises(AssertionError, match=r"(?s)get_memo: the answer breaks its output_schema:.*/: 'owner' is a required property.*/id: 1 is not of type 'string'"):
        await contract_for(Misshapen()).test_action_example(make_hub, ("get_memo", 0))


async def test_the_suite_asks_for_examples_or_a_reason(make_hub: Any) -> None:
    with pytest.raises(AssertionError, match="declares no examples"):
        await contract_for(Unexampled()).test_action_example(make_hub, ("list_memos", None))
    with pytest.raises(pytest.skip.Exception, match="list_memos: read-only in this test"):
        await contract_for(Unexampled(), skip_actions={"list_memos": "read-only in this test"}).test_action_example(make_hub, ("list_memos", None))


async def test_the_suite_catches_a_webhook_read_without_its_signature(make_hub: Any) -> None:
    with pytest.raises(AssertionError, match="without a valid signature answered 200"):
        await contract_for(Trusting()).test_webhook_refuses_an_unsigned_delivery(make_hub)


async def test_the_suite_catches_a_redelivery_emitted_again(make_hub: Any) -> None:
    with pytest.raises(AssertionError, match="sent again emitted another event"):
        await contract_for(Forgetful(), signed_delivery=delivered).test_webhook_delivery_is_routed_once(make_hub)


async def test_a_failing_before_disconnect_is_exercised_not_skipped(make_hub: Any) -> None:
    """HookedMemos passes the provider's failure on: the test must run to its end (a FAILED
    row), not skip as it does for a hook that absorbs the failure or calls nothing."""
    try:
        await contract_for(HookedMemos()).test_disconnect_goes_on_when_before_disconnect_fails(make_hub)
    except pytest.skip.Exception as skipped:
        pytest.fail(f"the before_disconnect test skipped: {skipped}")


RENEWAL_TESTS = ["test_renewal_runs_before_the_deadline", "test_failed_renewal_keeps_the_deadline"]


@pytest.mark.parametrize("test", RENEWAL_TESTS)
async def test_the_renewal_tests_run_to_their_end(make_hub: Any, test: str) -> None:
    """HookedMemos renews its subscription and passes the provider's failure on: neither
    renewal test may skip."""
    try:
        await getattr(contract_for(HookedMemos(), prepare_renewal=subscribed), test)(make_hub)
    except pytest.skip.Exception as skipped:
        pytest.fail(f"{test} skipped: {skipped}")


@pytest.mark.parametrize("test", RENEWAL_TESTS)
async def test_a_renewal_that_asks_for_no_more_passes(make_hub: Any, test: str) -> None:
    """A hook that never calls renew_by again is allowed: the deadline is cleared."""
    await getattr(contract_for(Once(), prepare_renewal=subscribed), test)(make_hub)


async def test_the_suite_catches_a_renewal_that_is_due_again_at_once(make_hub: Any) -> None:
    with pytest.raises(AssertionError, match="not later than"):
        await contract_for(Hasty(), prepare_renewal=subscribed).test_renewal_runs_before_the_deadline(make_hub)


@pytest.mark.parametrize("test", RENEWAL_TESTS)
async def test_the_suite_catches_a_hub_that_does_not_call_hub_renew(make_hub: Any, monkeypatch: pytest.MonkeyPatch, test: str) -> None:
    async def lost(self: Renewals, row: Any) -> bool:
        return False

    monkeypatch.setattr(Renewals, "renew", lost)
    with pytest.raises(AssertionError, match="called hub_renew 0 times"):
        await getattr(contract_for(HookedMemos(), prepare_renewal=subscribed), test)(make_hub)


async def test_the_suite_catches_a_hub_that_drops_the_deadline_of_a_failed_renewal(make_hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    renew = Renewals.renew

    async def dropping(self: Renewals, row: Any) -> bool:
        done = await renew(self, row)
        if not done:
            async with self.store.locked(row.id) as (_, fresh):
                fresh.renew_by = None
        return done

    monkeypatch.setattr(Renewals, "renew", dropping)
    with pytest.raises(AssertionError, match="a failed renewal moved the deadline"):
        await contract_for(HookedMemos(), prepare_renewal=subscribed).test_failed_renewal_keeps_the_deadline(make_hub)


async def test_the_suite_catches_a_hub_that_keeps_the_lease_of_a_renewal(make_hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    renew = Renewals.renew

    async def holding(self: Renewals, row: Any) -> bool:
        done = await renew(self, row)
        async with self.store.locked(row.id) as (_, fresh):
            fresh.renew_lease_until = self.clock() + self.lease
        return done

    monkeypatch.setattr(Renewals, "renew", holding)
    with pytest.raises(AssertionError, match="lease is still held"):
        await contract_for(HookedMemos(), prepare_renewal=subscribed).test_renewal_runs_before_the_deadline(make_hub)


# Without the hook, a delivery to send, something to renew, or a hook call that could fail,
# the newer tests skip and say why, so a plugin without them keeps passing. A fourth member
# holds the contract's overrides.
SKIPS: dict[str, tuple[Any, ...]] = {
    "no_hub_webhook": (Memos, "test_webhook_refuses_an_unsigned_delivery", "implements no hub_webhook"),
    "no_hub_webhook_to_route": (Memos, "test_webhook_delivery_is_routed_once", "implements no hub_webhook"),
    "no_hub_before_disconnect": (Memos, "test_disconnect_goes_on_when_before_disconnect_fails", "implements no hub_before_disconnect"),
    "no_signed_delivery": (HookedMemos, "test_webhook_delivery_is_routed_once", r"override signed_delivery\(client\)"),
    "no_upstream_call": (Idle, "test_disconnect_goes_on_when_before_disconnect_fails", "made no call to the provider"),
    "failure_absorbed": (Absorbing, "test_disconnect_goes_on_when_before_disconnect_fails",
                         r"absorbed the provider's failures itself \(its row is SUCCESS"),
    "no_hub_renew": (Memos, "test_renewal_runs_before_the_deadline", "implements no hub_renew"),
    "no_hub_renew_to_fail": (Memos, "test_failed_renewal_keeps_the_deadline", "implements no hub_renew"),
    "nothing_to_renew": (HookedMemos, "test_renewal_runs_before_the_deadline", r"override prepare_renewal\(client\)"),
    "nothing_to_renew_to_fail": (HookedMemos, "test_failed_renewal_keeps_the_deadline", r"override prepare_renewal\(client\)"),
    "renewal_failure_absorbed": (AbsorbingRenewal, "test_failed_renewal_keeps_the_deadline",
                                 r"hub_renew absorbed the provider's failures itself \(its row is SUCCESS", {"prepare_renewal": subscribed}),
}


@pytest.mark.parametrize("case", sorted(SKIPS))
async def test_the_hook_tests_skip_with_a_reason(make_hub: Any, case: str) -> None:
    plugin, test, reason, *members = SKIPS[case]
    with pytest.raises(pytest.skip.Exception, match=reason):
        await getattr(contract_for(plugin(), **(members[0] if members else {})), test)(make_hub)


def test_every_example_is_a_test_of_its_own() -> None:
    """The inherited action test is parametrized with one case per declared example."""

    class Metafunc:
        fixturenames = ["contract_example"]
        ids: list[str] = []

        def parametrize(self, name: str, cases: list[Any], ids: list[str]) -> None:
            self.ids = ids

    metafunc = Metafunc()
    TestMemosContract().pytest_generate_tests(metafunc)
    assert metafunc.ids == ["list_memos-0", "list_memos-1", "get_memo-0", "add_memo-0"]


def test_the_documented_example_passes_as_a_package_test_file(tmp_path: Path) -> None:
    """docs/plugins.md's contract example, alone in a fresh pytest (only the entry-point
    fixtures to help), in pytest-asyncio's strict mode: every inherited test is collected."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    example = doc.split("<!-- example: contract -->\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "test_acme_contract.py").write_text(example)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=strict", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 passed, 5 skipped" in run.stdout, run.stdout  # no webhook or renewal hooks: those tests skip


def test_a_misspelled_skip_or_a_missing_plugin_is_an_error_at_collection() -> None:
    class Metafunc:
        fixturenames = ["contract_example"]

    with pytest.raises(ValueError, match="skip_actions names no declared action: list_memo"):
        contract_for(Memos(), skip_actions={"list_memo": "typo"}).pytest_generate_tests(Metafunc())
    with pytest.raises(TypeError, match="set plugin"):
        contract_for(None).pytest_generate_tests(Metafunc())
