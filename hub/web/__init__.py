"""The HTTP face of the hub (aiohttp)."""

from .app import HUB_KEY, create_app

__all__ = ["HUB_KEY", "create_app"]
