"""hub.testing as a provider package uses it: this file imports only ``hub`` and
``hub.testing`` (plus pytest), and needs none of tests/conftest.py's fixtures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub import Action, CallContext, Endpoints, ProviderInfo, hookimpl
from hub.testing import FakeProvider, auth_headers, connect


class FakeNotes(FakeProvider):
    """A provider whose API has one route: the connected account's notes."""

    title = "Notes"

    def add_routes(self, app: Any) -> None:
        app.router.add_get(f"{self.api_path}/notes", self.list_notes)

    async def list_notes(self, request: Any) -> Any:
        token = self.require_token(request)
        return self.json({"items": [{"id": "n1", "owner": token.account["sub"]}]})


async def list_notes(ctx: CallContext) -> dict[str, Any]:
    return {"notes": (await ctx.http.get("notes")).json()["items"]}


class Notes:
    """The plugin under test: endpoints are placeholders the fake's settings override."""

    def __init__(self, **info: Any) -> None:
        self.info = info

    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        endpoints = Endpoints(
            api="https://notes.invalid/api",
            authorize="https://notes.invalid/oauth/authorize",
            token="https://notes.invalid/oauth/token",
            revoke="https://notes.invalid/oauth/revoke",
            userinfo="https://notes.invalid/userinfo",
        )
        return ProviderInfo(name="notes", title="Notes", endpoints=endpoints, default_scopes=("notes:read",), **self.info)

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [Action("list_notes", "GET", "notes", list_notes, summary="The account's notes")]


async def call_notes(client: Any, user: str = "alice") -> Any:
    return await client.get("/api/integrations/notes/notes", headers=auth_headers(user))


@pytest.fixture
async def notes(make_hub: Any) -> Any:
    """A hub serving Notes against a started FakeNotes, alice connected through consent."""
    client = await make_hub(Notes(), FakeNotes())
    resp = await connect(client, "notes", "alice")
    assert resp.status == 200, await resp.text()
    return client


# Each style the token endpoint can take, with the ProviderInfo declarations that read it.
STYLES = {
    "json-basic": ({"client_auth": "basic"}, {"client_auth": "basic"}),
    "form-answers-form-credentials-errors-in-200": (
        {"answers": "form", "client_auth": "form", "errors_in_body": True},
        {"client_auth": "form", "token_errors_in_body": True},
    ),
    # GitHub's manners: form answers unless JSON is asked for, errors in a 200, commas between scopes.
    "accept-driven-comma-scopes": (
        {"answers": "accept", "errors_in_body": True, "scope_separator": ","},
        {"token_accept": "application/json", "token_errors_in_body": True, "scope_separator": ","},
    ),
}


@pytest.mark.parametrize("style", STYLES)
async def test_connect_through_consent_then_the_action_answers(make_hub: Any, style: str) -> None:
    fake_args, info = STYLES[style]
    fake = FakeNotes(**fake_args, account={"sub": "acct-7", "name": "Ada", "email": "ada@example.com"})
    client = await make_hub(Notes(**info), fake)
    resp = await connect(client, "notes", "alice")
    assert resp.status == 200, await resp.text()
    resp = await call_notes(client)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["notes"] == [{"id": "n1", "owner": "acct-7"}]
    exchange = fake.calls_to("/oauth/token")[0]
    # PKCE: the hub sent a verifier, and the fake checked it against the challenge.
    assert exchange.form["code_verifier"] and fake.calls_to("/oauth/authorize")[0].query["code_challenge_method"] == "S256"


async def test_consent_denied_stores_nothing(make_hub: Any) -> None:
    fake = FakeNotes()
    client = await make_hub(Notes(), fake)
    resp = await connect(client, "notes", "alice", decision="deny")
    assert resp.status >= 400
    assert fake.tokens == {} and fake.calls_to("/oauth/token") == []
    resp = await call_notes(client)
    assert resp.status == 404, await resp.text()
    assert (await resp.json())["error"]["code"] == "integration_not_found"


async def test_a_code_is_single_use(notes: Any) -> None:
    fake: FakeNotes = notes.fake
    # The hub's own exchange, replayed word for word (verifier included) with the client's credentials.
    (exchange,) = fake.calls_to("/oauth/token")
    form = {**exchange.form, "client_id": fake.client_id, "client_secret": fake.client_secret}
    resp = await notes.session.post(f"{fake.base_url}/oauth/token", data=form)
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"


async def test_an_expired_token_is_refreshed_and_the_refresh_token_rotates(notes: Any) -> None:
    fake: FakeNotes = notes.fake
    first_refresh = fake.calls_to("/oauth/token")  # just the exchange so far
    assert len(first_refresh) == 1
    fake.expire_tokens()
    resp = await call_notes(notes)
    assert resp.status == 200, await resp.text()
    refreshes = [c for c in fake.calls_to("/oauth/token") if c.form.get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1
    assert fake.tokens[refreshes[0].form["refresh_token"]].spent


async def test_revoked_tokens_ask_for_a_reconnect(notes: Any) -> None:
    notes.fake.revoke_all()
    resp = await call_notes(notes)
    assert resp.status == 409, await resp.text()
    assert (await resp.json())["error"]["code"] == "reconnect_required"


async def test_a_rate_limit_answers_429_with_retry_after(notes: Any) -> None:
    notes.fake.rate_limit_next(count=3, retry_after=30, path="/api/notes")
    resp = await call_notes(notes)
    assert resp.status == 429, await resp.text()
    assert resp.headers["Retry-After"] == "30"


async def test_fail_next_answers_the_given_status(notes: Any) -> None:
    notes.fake.fail_next(404, {"error": "not_found"}, path="/api/notes")
    resp = await call_notes(notes)
    assert resp.status == 404, await resp.text()
    assert (await call_notes(notes)).status == 200  # one failure only


async def test_disconnect_revokes_at_the_provider(notes: Any) -> None:
    fake: FakeNotes = notes.fake
    resp = await notes.delete("/api/integrations/notes/disconnect", headers=auth_headers("alice"))
    assert resp.status == 200, await resp.text()
    (revoke,) = fake.calls_to("/oauth/revoke")
    assert fake.tokens[revoke.form["token"]].revoked
    assert all(t.revoked for t in fake.tokens.values())


async def test_the_fake_verifies_pkce(make_hub: Any) -> None:
    import base64
    import hashlib

    from hub.testing import press_consent

    client = await make_hub(Notes(), FakeNotes())
    fake: FakeNotes = client.fake
    verifier = "a-verifier-of-more-than-forty-three-characters-0123456789"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "https://app.example.com/cb"

    async def exchange(given: str) -> Any:
        query = f"client_id={fake.client_id}&redirect_uri={redirect}&state=s&code_challenge={challenge}&code_challenge_method=S256"
        location = await press_consent(f"{fake.base_url}/oauth/authorize?{query}")
        code = location.split("code=")[1].split("&")[0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "code_verifier": given,
                "client_id": fake.client_id, "client_secret": fake.client_secret}
        return await client.session.post(f"{fake.base_url}/oauth/token", data=form)

    assert (await exchange(verifier + "x")).status == 400
    assert (await exchange(verifier)).status == 200


def doc_section() -> str:
    text = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    return text.split("## Testing a provider with hub.testing", 1)[1].split("\n## ", 1)[0]


def test_every_public_name_of_the_kit_is_documented() -> None:
    import hub.testing
    from hub.testing.pytest_plugin import hub_database_url, hub_jwt, hub_postgres_url, make_hub

    section = doc_section()
    names = [*hub.testing.__all__, *(f.__name__ for f in (make_hub, hub_jwt, hub_database_url, hub_postgres_url))]
    names += [n for n in dir(FakeProvider) if not n.startswith("_")]
    for name in names:
        assert re.search(rf"`[^`]*\b{name}\b", section), f"docs/plugins.md does not describe hub.testing's {name}"


def test_the_documented_example_passes_as_a_package_test_file(tmp_path: Path) -> None:
    example = doc_section().split("<!-- example: hub.testing -->\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "test_acme.py").write_text(example)
    # A fresh pytest in a folder of its own: only the entry-point fixtures are there to help.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
