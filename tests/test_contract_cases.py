"""Issue 16, item 1: the document's promises, both ways. Schemathesis generates requests
from /api/openapi.json for the core operations and every provider's actions, against the
live hub and the fakes: a request the document calls valid must be accepted, and one it
calls invalid must be refused with a 4xx (never run, never a 5xx). The explicit
reproducers of the mismatches issue 16 lists are in tests/test_api_contract.py.

A valid request may still be refused for what it says about the world rather than for its
shape - a token the provider does not know, a cursor or state this hub never issued, a
return URL not on the allow-list, input the provider refuses. Those refusals are listed
in WORLD, each by its error code (and field); any other refusal of a valid request fails."""

from __future__ import annotations

import asyncio
import json

import pytest
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from test_fuzz import PROVIDERS, Finding, Live, fuzz, jobs_for, live  # noqa: F401 (live is the fixture)

MODES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 8}
# Writes that end the integration are left to test_fuzz.py, which orders them last; the
# callback is the browser's route, answered with pages.
SKIPPED = {("DELETE", "/api/integrations/{provider}"), ("DELETE", "/api/integrations/{provider}/disconnect"),
           ("PATCH", "/api/integrations/{provider}/status"), ("GET", "/api/integrations/{provider}/callback")}
# (error code, field or None for any): a valid request refused for a fact of the world.
WORLD = {
    ("provider_rejected_input", None): "the provider refuses the values (an unknown id, an empty time range)",
    ("provider_not_found", None): "no such resource at the provider",
    ("token_rejected", None): "the provider does not know the posted token",
    ("invalid_state", "state"): "a state this hub never issued",
    ("return_url_not_allowed", "return_url"): "a URL not on server.allowed_return_urls",
    ("validation_error", "cursor"): "well-formed, but not a cursor this hub issued",
    ("validation_error", "state"): "a state posted to a provider that connects through the callback",
    ("validation_error", "end"): "an all-day start with a timed end (a rule across two fields)",
    ("validation_error", "start.timeZone"): "a name shaped like a time zone that IANA does not list",
    ("validation_error", "end.timeZone"): "a name shaped like a time zone that IANA does not list",
    ("validation_error", "workdayEnd"): "working hours that end before they start (a rule across two fields)",
    ("validation_error", "timeMax"): "a range that is empty or longer than 62 days (a rule across two fields)",
    ("validation_error", "timeZone"): "a name shaped like a time zone that IANA does not list",
    ("validation_error", "return_url"): "a bracketed host that is not an IPv6 address ([e103bd5])",
}


def about_the_world(finding: Finding) -> bool:
    try:
        error = json.loads(finding.answer)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    return (error["code"], None) in WORLD or (error["code"], details.get("field")) in WORLD


@pytest.mark.parametrize("group", PROVIDERS)
async def test_valid_requests_are_accepted_and_invalid_ones_refused(live: Live, group: str) -> None:  # noqa: F811
    jobs = [(op, p) for op, p in jobs_for(live.doc, group) if (op.method.upper(), op.path) not in SKIPPED]
    findings, sent = await asyncio.to_thread(fuzz, jobs, live.base_url, live.headers, MODES, [positive_data_acceptance, negative_data_rejection])
    assert sent >= 8 * len(jobs)
    wrong = [f for f in findings if not (f.mode == "positive" and about_the_world(f))]
    assert not wrong, f"{len(wrong)} kind(s) of disagreement between the document and the hub:\n\n" + "\n\n".join(map(str, wrong))


async def test_every_action_is_documented_with_example_inputs_and_answers(live: Live) -> None:  # noqa: F811
    actions = [(path, op) for path, ops in live.doc["paths"].items() for op in ops.values()
               if path.startswith("/api/integrations/") and "{provider}" not in path]
    assert len(actions) >= 17
    for path, op in actions:
        answer = op["responses"]["200"]["content"]["application/json"]
        assert answer["examples"], (path, op["operationId"])
        assert all(ex["value"]["success"] is True for ex in answer["examples"].values())
        if "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"]["examples"], op["operationId"]
        else:
            assert any("example" in p for p in op["parameters"]) or not op["parameters"], op["operationId"]
