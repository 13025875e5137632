"""Testing a provider plugin: the public kit (``docs/plugins.md``, "Testing a provider with
hub.testing"). A plugin package's tests import only ``hub`` and ``hub.testing``.

* :class:`FakeProvider` - a fake OAuth 2.0 provider to subclass with the provider's API;
* :class:`FakeCall`, :class:`FakeToken`, :class:`Grant`, :class:`Hold` - what the fake recorded and issued;
* :class:`ProviderContract` - the contract suite a plugin package subclasses to run;
* :func:`connect` - connect a user through the fake's consent page, as a browser would
  (the token-paste flow included); :func:`begin_connect`, :func:`finish_connect` its halves;
* :func:`activity` - a user's activity rows once the hub has written them;
* :func:`advance_time`, :func:`expire_access_tokens`, :class:`FakeClock` - time for token lifetimes;
* :func:`jwt_for`, :func:`auth_headers` - credentials the hub under test accepts;
* :func:`start_hub` - a running hub around a plugin and its fake (the ``make_hub`` fixture);
* the pytest fixtures ``make_hub``, ``hub_jwt``, ``hub_database_url`` (:mod:`hub.testing.pytest_plugin`).

The hub's own code never imports this package.
"""

from typing import TYPE_CHECKING, Any

from .fake import FakeCall, FakeProvider, FakeToken, Grant, Hold
from .kit import (
    ALLOWED_REDIRECT,
    JWT_SECRET,
    auth_headers,
    begin_connect,
    connect,
    finish_connect,
    jwt_for,
    press_consent,
    start_hub,
)
from .observe import FakeClock, activity, advance_time, expire_access_tokens

if TYPE_CHECKING:
    from .contract import ProviderContract


def __getattr__(name: str) -> Any:
    # The contract suite needs pytest; the fakes do not (a sandbox serves them without it).
    if name == "ProviderContract":
        from .contract import ProviderContract

        return ProviderContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALLOWED_REDIRECT",
    "JWT_SECRET",
    "FakeCall",
    "FakeClock",
    "FakeProvider",
    "FakeToken",
    "Grant",
    "Hold",
    "ProviderContract",
    "activity",
    "advance_time",
    "auth_headers",
    "begin_connect",
    "connect",
    "expire_access_tokens",
    "finish_connect",
    "jwt_for",
    "press_consent",
    "start_hub",
]
