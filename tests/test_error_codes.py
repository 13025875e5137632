"""One table of error codes (hub/web/errorcodes.py): every code the hub can answer is in it,
the OpenAPI document's ErrorAnswer enumerates it, docs/api.md's table is it, and a plugin's
own code never reaches the wire as the answer's code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from support import auth

from hub import ProviderError
from hub.web.errorcodes import CODES, markdown_table, wire_code

ROOT = Path(__file__).resolve().parent.parent
SLACK = "/api/integrations/slack"
# Codes a plugin keeps to itself: raised on a ProviderError subclass, answered as the nearest
# listed code with its own in details (test_a_plugin_code_is_answered_as_the_nearest_listed_one).
PLUGIN_OWN = {"full_sync_required"}
LITERAL = [
    re.compile(r"""\bcode\s*=\s*["']([a-z][a-z_]*)["']"""),  # code="x" in a call, or code = "x" on a class
    re.compile(r"""\bstatus,\s*code\s*=\s*\d+,\s*["']([a-z][a-z_]*)["']"""),
    re.compile(r"""_HTTP_CODES\s*=\s*\{([^}]*)\}"""),
    re.compile(r"""error_response\(\s*\d+,\s*["']([a-z][a-z_]*)["']"""),
    re.compile(r"""\(\d{3},\s*["']([a-z][a-z_]*)["']\)"""),  # (404, "provider_not_found") in oauth.provider_error
]


def sources() -> list[Path]:
    files = [p for p in (ROOT / "hub").rglob("*.py") if "testing" not in p.parts and "templates" not in p.parts]
    for plugin in (ROOT / "plugins").iterdir():
        files += [p for p in plugin.glob("hub_*/*.py") if not p.name.startswith("fake")]
    return files


def literal_codes() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sources():
        text = path.read_text()
        for pattern in LITERAL:
            for match in pattern.finditer(text):
                group = match.group(1)
                codes = re.findall(r'"([a-z_]+)"', group) if pattern.pattern.startswith("_HTTP") else [group]
                for code in codes:
                    found.setdefault(code, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_code_written_in_the_source_is_in_the_table() -> None:
    found = literal_codes()
    assert {"validation_error", "provider_not_found", "cors_refused", "idempotency_key_reused", "missing_scope"} <= set(found)
    unlisted = {code: sorted(where) for code, where in found.items() if code not in CODES and code not in PLUGIN_OWN}
    assert not unlisted, f"codes the hub can answer that hub/web/errorcodes.py does not list: {unlisted}"


def test_every_error_class_answers_a_listed_code() -> None:
    import hub.core.idempotency
    import hub.core.tokens
    import hub.errors
    import hub.web.cors

    def subclasses(cls: type) -> list[type]:
        return [cls] + [s for sub in cls.__subclasses__() for s in subclasses(sub)]

    for cls in subclasses(hub.errors.HubError):
        exc = cls.__new__(cls)
        exc.details = None
        exc.provider_code = None  # type: ignore[attr-defined]
        code, _ = wire_code(exc)
        assert code in CODES, cls
        if cls.__dict__.get("code") in CODES:
            assert cls.status in CODES[cls.code].statuses or cls.status == 500, (cls, cls.status)


def test_a_plugin_code_is_answered_as_the_nearest_listed_one() -> None:
    class Gone(ProviderError):
        status, code = 410, "full_sync_required"

    assert wire_code(Gone("gone")) == ("provider_error", {"providerError": "full_sync_required"})
    # the provider's own code is already in providerError: the plugin's goes to info.code
    assert wire_code(Gone("gone", provider_code="fullSyncRequired")) == ("provider_error", {"info": {"code": "full_sync_required"}})
    assert wire_code(ProviderError("x", code="made_up", details={"info": {"a": 1}}, provider_code="p")) == (
        "provider_error", {"info": {"a": 1, "code": "made_up"}})


async def test_an_unlisted_code_from_a_plugin_never_reaches_the_wire(slack_connected: Any, fake_slack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import hub_slack

    def odd(body: Any, response: Any) -> ProviderError:
        return ProviderError("Slack did something new", provider_code=str(body.get("error")), code="slack_did_something_new", status=409)

    monkeypatch.setattr(hub_slack, "slack_error", odd)
    fake_slack.slack_error_next("chat.postMessage", "brand_new_error")
    resp = await slack_connected.post(f"{SLACK}/message", json={"channel": "general", "text": "hi"}, headers=auth("alice"))
    body = await resp.json()
    assert resp.status == 409, body
    assert body["error"]["code"] == "provider_error"
    assert body["error"]["details"] == {"providerError": "brand_new_error", "info": {"code": "slack_did_something_new"}}


async def test_the_documents_code_enum_is_the_table(hub_app: Any) -> None:
    doc = await (await hub_app.get("/api/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorCode"]["enum"] == list(CODES)
    assert schemas["ErrorAnswer"]["properties"]["error"]["properties"]["code"] == {"$ref": "#/components/schemas/ErrorCode"}


def test_the_docs_table_is_the_table() -> None:
    doc = (ROOT / "docs" / "api.md").read_text()
    start = doc.index("<!-- error codes: generated by python -m hub.web.errorcodes -->\n") + len("<!-- error codes: generated by python -m hub.web.errorcodes -->\n")
    end = doc.index("<!-- end of error codes -->")
    assert doc[start:end] == markdown_table(), "docs/api.md's code table differs: regenerate it with python -m hub.web.errorcodes"
