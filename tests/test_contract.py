"""The provider contract suite of hub.testing, proven on two small providers
(tests/contract_providers.py): an OAuth 2.0 one and a token-paste one each run the whole
suite as a plugin package would; broken variants show that the suite catches what it
promises to catch."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from contract_providers import FakeMemos, FakePasted, HookedMemos, Memos, Pasted, memos_delivery

from hub import Action, CallContext, Provider, ProviderError, WebhookRequest, WebhookResult, hookimpl
from hub.testing import FakeProvider, ProviderContract

# --- the suite, run as a plugin package runs it ------------------------------------------


class TestMemosContract(ProviderContract):
    plugin = Memos()

    def make_fake(self) -> FakeProvider:
        return FakeMemos(account={"sub": "acct-7", "name": "Ada", "email": "ada@example.com"})


class TestHookedMemosContract(ProviderContract):
    """Memos with webhooks in and a hub_before_disconnect: the suite's tests of both run."""

    plugin = HookedMemos()

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


# Without the hook, a delivery to send, or a hook call that could fail, the new tests skip
# and say why, so a plugin without them keeps passing.
SKIPS = {
    "no_hub_webhook": (Memos, "test_webhook_refuses_an_unsigned_delivery", "implements no hub_webhook"),
    "no_hub_webhook_to_route": (Memos, "test_webhook_delivery_is_routed_once", "implements no hub_webhook"),
    "no_hub_before_disconnect": (Memos, "test_disconnect_goes_on_when_before_disconnect_fails", "implements no hub_before_disconnect"),
    "no_signed_delivery": (HookedMemos, "test_webhook_delivery_is_routed_once", r"override signed_delivery\(client\)"),
    "no_upstream_call": (Idle, "test_disconnect_goes_on_when_before_disconnect_fails", "made no call to the provider"),
    "failure_absorbed": (Absorbing, "test_disconnect_goes_on_when_before_disconnect_fails",
                         r"absorbed the provider's failures itself \(its row is SUCCESS"),
}


@pytest.mark.parametrize("case", sorted(SKIPS))
async def test_the_webhook_and_before_disconnect_tests_skip_with_a_reason(make_hub: Any, case: str) -> None:
    plugin, test, reason = SKIPS[case]
    with pytest.raises(pytest.skip.Exception, match=reason):
        await getattr(contract_for(plugin()), test)(make_hub)


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
    assert "10 passed, 3 skipped" in run.stdout, run.stdout  # no webhook hooks: those tests skip


def test_a_misspelled_skip_or_a_missing_plugin_is_an_error_at_collection() -> None:
    class Metafunc:
        fixturenames = ["contract_example"]

    with pytest.raises(ValueError, match="skip_actions names no declared action: list_memo"):
        contract_for(Memos(), skip_actions={"list_memo": "typo"}).pytest_generate_tests(Metafunc())
    with pytest.raises(TypeError, match="set plugin"):
        contract_for(None).pytest_generate_tests(Metafunc())
