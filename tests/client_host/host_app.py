"""A small host application written against a client generated from the hub's OpenAPI
document with openapi-python-client (as docs/api.md shows). tests/test_generated_client.py
generates the client as ``hub_client``, type-checks this file with ``mypy --strict`` and
runs it against the sandbox fakes: if the document stops describing the hub in types, this
stops compiling or running."""

from __future__ import annotations

from hub_client import AuthenticatedClient
from hub_client.api.default import integrations_connect, integrations_get, logs_list
from hub_client.api.slack import slack_post_message
from hub_client.models import (
    ConnectStartAnswer,
    ErrorAnswer,
    ErrorCode,
    IntegrationAnswer,
    LogPageAnswer,
    SlackPostMessageAnswer,
    SlackPostMessageWithText,
)


class HubRefused(Exception):
    def __init__(self, code: ErrorCode, message: str, field: str | None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.field = field


def refused(answer: ErrorAnswer | None) -> HubRefused:
    if answer is None:
        return HubRefused(ErrorCode.INTERNAL_ERROR, "no answer the document describes", None)
    details = answer.error.details
    field = details.field if details and isinstance(details.field, str) else None
    return HubRefused(answer.error.code, answer.error.message, field)


def connect(base_url: str, jwt: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=base_url, token=jwt)


def start_connecting(api: AuthenticatedClient, provider: str) -> str:
    """The URL to send the user's browser to."""
    answer = integrations_connect.sync(provider, client=api)
    if isinstance(answer, ConnectStartAnswer):
        return answer.data.auth_url
    raise refused(answer)


def status_of(api: AuthenticatedClient, provider: str) -> str:
    answer = integrations_get.sync(provider, client=api)
    if isinstance(answer, IntegrationAnswer):
        return answer.data.status.value
    raise refused(answer)


def announce(api: AuthenticatedClient, channel: str, text: str) -> str:
    """Post to Slack; the message's timestamp."""
    answer = slack_post_message.sync(client=api, body=SlackPostMessageWithText(channel=channel, text=text))
    if isinstance(answer, SlackPostMessageAnswer):
        return answer.data.ts
    raise refused(answer)


def recent_actions(api: AuthenticatedClient, provider: str, limit: int) -> list[str]:
    answer = logs_list.sync(provider, client=api, limit=limit)
    if isinstance(answer, LogPageAnswer):
        return [f"{item.action}:{item.status.value}" for item in answer.data.items]
    raise refused(answer)


def announce_or_explain(api: AuthenticatedClient, channel: str, text: str) -> str:
    """What a host shows its user: the timestamp, or which field to fix."""
    try:
        return announce(api, channel, text)
    except HubRefused as exc:
        if exc.code is ErrorCode.VALIDATION_ERROR:
            return f"fix {exc.field}"
        return f"failed: {exc.code.value}"
