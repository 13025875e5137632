"""Testing a provider plugin: the public kit (``docs/plugins.md``, "Testing a provider with
hub.testing"). A plugin package's tests import only ``hub`` and ``hub.testing``.

* :class:`FakeProvider` - a fake OAuth 2.0 provider to subclass with the provider's API;
* :class:`FakeCall`, :class:`FakeToken`, :class:`Grant` - what the fake recorded and issued;
* :func:`connect` - connect a user through the fake's consent page, as a browser would;
* :func:`jwt_for`, :func:`auth_headers` - credentials the hub under test accepts;
* :func:`start_hub` - a running hub around a plugin and its fake (the ``make_hub`` fixture);
* the pytest fixtures ``make_hub``, ``hub_jwt``, ``hub_database_url`` (:mod:`hub.testing.pytest_plugin`).

The hub's own code never imports this package.
"""

from .fake import FakeCall, FakeProvider, FakeToken, Grant
from .kit import ALLOWED_REDIRECT, JWT_SECRET, auth_headers, connect, jwt_for, press_consent, start_hub

__all__ = [
    "ALLOWED_REDIRECT",
    "JWT_SECRET",
    "FakeCall",
    "FakeProvider",
    "FakeToken",
    "Grant",
    "auth_headers",
    "connect",
    "jwt_for",
    "press_consent",
    "start_hub",
]
