"""The plugin contract: every hook a provider plugin may implement, and nothing else.

A provider plugin is a module (or object) registered under the provider's name. The core
calls a provider's hooks one plugin at a time, so an implementation only ever answers for
its own provider; a hook the plugin leaves out falls back to the core's standard OAuth 2.0
implementation (``hub.oauth``). Implementations may be plain functions or ``async def``.

The exact signatures below are the documented contract (``docs/plugins.md``); a test keeps
the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .types import (
        AccountInfo,
        Action,
        AuthorizationRequest,
        CallContext,
        Provider,
        ProviderInfo,
        Sandbox,
        TokenSet,
    )
    from .upstream import UpstreamResponse
    from .webhooks import WebhookEvent, WebhookRequest, WebhookResult

hookspec = pluggy.HookspecMarker("hub")
hookimpl = pluggy.HookimplMarker("hub")


@hookspec
def hub_provider() -> ProviderInfo:
    """Describe the provider: name, title, auth kind, endpoints, default scopes, config keys.

    Required: a plugin without it is reported as broken and not routed.
    """


@hookspec
def hub_actions() -> list[Action]:
    """Return the provider's actions (name, method, path, input schema, handler)."""


@hookspec
def hub_authorization_url(provider: Provider, request: AuthorizationRequest) -> str:
    """Build the URL the user's browser is sent to in order to grant access."""


@hookspec
def hub_exchange_code(
    provider: Provider, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    """Trade the authorization code from the callback for a token set."""


@hookspec
def hub_import_token(provider: Provider, token: str) -> TokenSet:
    """Turn a token obtained outside the redirect flow into a token set.

    The core then verifies it with :func:`hub_account_identity` before storing it.
    """


@hookspec
def hub_refresh_token(provider: Provider, token: TokenSet) -> TokenSet:
    """Use ``token.refresh_token`` to obtain a new token set.

    Raise :class:`hub.GrantRejected` when the provider refuses the refresh token for good,
    and a :class:`hub.TransientProviderError` when the failure is worth retrying.
    """


@hookspec
def hub_revoke_token(provider: Provider, token: TokenSet) -> None:
    """Revoke the token upstream (best effort: the core wipes it locally either way)."""


@hookspec
def hub_account_identity(provider: Provider, token: TokenSet) -> AccountInfo:
    """Ask the provider who the token belongs to. Also serves as the live status check."""


@hookspec
def hub_auth_headers(provider: Provider, token: TokenSet) -> dict[str, str]:
    """The headers that carry the integration's credentials on an API call."""


@hookspec
def hub_check_response(provider: Provider, response: UpstreamResponse) -> None:
    """Inspect every upstream answer; raise the hub's typed error if it is a failure."""


@hookspec
def hub_sandbox() -> Sandbox:
    """Offer a fake of the provider for ``hub sandbox`` (optional).

    Called only by the sandbox command, never while serving real traffic.
    """


@hookspec
def hub_webhook(provider: Provider, request: WebhookRequest) -> WebhookResult:
    """Verify and read an inbound request to ``/api/integrations/<provider>/webhook`` (optional).

    Check the provider's signature over ``request.body`` with a secret from
    ``provider.settings`` and raise :class:`hub.WebhookRejected` when it is missing, wrong or
    outside the provider's replay window. Return a :class:`hub.WebhookResult`: a direct
    ``answer`` (a URL check) or the ``events`` the request carries. Without it, the route
    answers 404 ``webhooks_not_supported`` for the provider.
    """


@hookspec
def hub_webhook_follow_up(ctx: CallContext, event: WebhookEvent) -> Mapping[str, Any]:
    """Complete a verified webhook event for one integration it reaches (optional).

    Called when ``hub_webhook`` returned an event with ``follow_up=True``, once per
    integration, inside the webhook request and before anything is stored: ``ctx`` is an
    action's context for that integration (its token and HTTP client, its ``state``, and
    ``input`` = the event's ``data``). Return the data the event goes out with. State
    updates are saved in the transaction that writes the event; an error makes the
    request answer it (a 5xx, so the provider sends the notification again).
    """


@hookspec
def hub_renew(ctx: CallContext) -> Mapping[str, Any] | None:
    """Renew what the plugin set up upstream for an integration before it runs out (optional).

    The core calls it in the background, for an ACTIVE or EXPIRED integration whose
    deadline (set by a handler with ``ctx.renew_by(when)``) is less than
    ``renewals.ahead_seconds`` away, in one process at a time (a lease on the row). Set
    the next deadline with ``ctx.renew_by`` (without it, nothing more is renewed); what it
    returns is the response of the call's activity row (``renew``). An error leaves the
    deadline as it was, and the row is tried again when the lease ends.
    """


@hookspec
def hub_before_disconnect(ctx: CallContext) -> Mapping[str, Any] | None:
    """Undo what the plugin set up upstream before the integration's token is revoked (optional).

    Called on disconnect and delete while the token still works; best effort: an error is
    logged as the ``before_disconnect`` activity row and the disconnect goes on. What it
    returns is that row's response.
    """
