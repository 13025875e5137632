"""The plugin contract: every hook a provider plugin may implement, and nothing else.

A provider plugin is a module (or object) registered under the provider's name. The core
calls a provider's hooks one plugin at a time, so an implementation only ever answers for
its own provider; a hook the plugin leaves out falls back to the core's standard OAuth 2.0
implementation (``hub.oauth``). Implementations may be plain functions or ``async def``.

The exact signatures below are the documented contract (``docs/plugins.md``); a test keeps
the two in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .types import (
        AccountInfo,
        Action,
        AuthorizationRequest,
        Provider,
        ProviderInfo,
        Sandbox,
        TokenSet,
    )
    from .upstream import UpstreamResponse
    from .webhooks import WebhookRequest, WebhookResult

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
