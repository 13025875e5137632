"""The provider contract suite of hub.testing, proven on two small providers
(tests/contract_providers.py): an OAuth 2.0 one and a token-paste one each run the whole
suite as a plugin package would; broken variants show that the suite catches what it
promises to catch."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from contract_providers import FakeMemos, FakePasted, Memos, Pasted

from hub import Action, CallContext, ProviderError, hookimpl
from hub.testing import FakeProvider, ProviderContract

# --- the suite, run as a plugin package runs it ------------------------------------------


class TestMemosContract(ProviderContract):
    plugin = Memos()

    def make_fake(self) -> FakeProvider:
        return FakeMemos(account={"sub": "acct-7", "name": "Ada", "email": "ada@example.com"})


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
    assert "10 passed" in run.stdout, run.stdout


def test_a_misspelled_skip_or_a_missing_plugin_is_an_error_at_collection() -> None:
    class Metafunc:
        fixturenames = ["contract_example"]

    with pytest.raises(ValueError, match="skip_actions names no declared action: list_memo"):
        contract_for(Memos(), skip_actions={"list_memo": "typo"}).pytest_generate_tests(Metafunc())
    with pytest.raises(TypeError, match="set plugin"):
        contract_for(None).pytest_generate_tests(Metafunc())
