"""Driving a browser's part of the connect flow, and reading the database raw."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp


async def consent(auth_url: str, decision: str = "allow") -> str:
    """Load the fake provider's consent page, submit it as a browser would, and return
    the URL the provider redirects the browser to (the hub's callback)."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(auth_url) as page:
            assert page.status == 200, await page.text()
            html = await page.text()
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
        fields = {k: _unescape(v) for k, v in fields.items()}
        fields["decision"] = decision
        action = re.search(r'<form[^>]*action="([^"]+)"', html)
        assert action, "consent page has no form"
        parts = urlsplit(auth_url)
        async with browser.post(f"{parts.scheme}://{parts.netloc}{action.group(1)}", data=fields, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            return resp.headers["Location"]


def callback_path(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _unescape(value: str) -> str:
    import html

    return html.unescape(value)


async def connect_slack(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    """The whole connect flow; returns the callback's JSON answer."""
    resp = await client.get("/api/integrations/slack/connect", headers=headers)
    assert resp.status == 200, await resp.text()
    auth_url = (await resp.json())["data"]["authUrl"]
    location = await consent(auth_url)
    resp = await client.get(callback_path(location), headers={"Accept": "application/json"})
    body = await resp.json()
    assert resp.status == 200, body
    return body
