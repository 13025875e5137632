"""The one pooled HTTP client the hub uses to talk to providers.

:class:`Upstream` owns the ``aiohttp.ClientSession`` (created once per process, closed on
shutdown). Each provider gets a :class:`ProviderHTTP` view of it: bound to a base URL,
limited to a number of concurrent calls, with timeouts, a response-size cap and retries
for idempotent calls that hit 429 or 5xx. Every response passes through the provider's
``hub_check_response`` hook, so a handler only ever sees answers that succeeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from . import jsontext
from .errors import (
    BadRequest,
    HubError,
    MalformedResponse,
    ProviderAuthError,
    ProviderTimeout,
    RateLimited,
    Throttled,
    TransientProviderError,
    ValidationFailed,
)
from .ratelimit import RateLimit, SlidingWindow, admit

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})

# What must never be in one path segment taken from input: a separator, or a percent-
# encoding of a dot or a separator, which some server or proxy on the way may decode.
_UNSAFE_SEGMENT = re.compile(r"[/\\]|%(?:2e|2f|5c)", re.IGNORECASE)
# A dot segment, spelt plainly or percent-encoded: URL normalisation (yarl's, or any server's)
# removes it together with the segment before it, so the request would go somewhere else.
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


def segment_problem(value: str) -> str | None:
    """Why ``value`` cannot be one path segment, or ``None`` when it can."""
    if value in ("", ".", ".."):
        return "must not be empty, '.' or '..'"
    if _UNSAFE_SEGMENT.search(value):
        return "must not contain '/', '\\' or a percent-encoded '.', '/' or '\\'"
    return None


def path_segment(name: str, value: Any) -> str:
    """``value`` as one percent-encoded path segment; :class:`BadRequest` naming ``name``
    when it could change the shape of the path (the value itself is never echoed: it may be
    a credential)."""
    text = str(value)
    problem = segment_problem(text)
    if problem is not None:
        raise ValidationFailed(f"{name}: {problem} (it is used as a segment of the provider's URL path)", details={"field": name})
    return quote(text, safe="")


@dataclass(frozen=True)
class UpstreamResponse:
    """A provider's answer, read whole (bounded by ``max_response_bytes``)."""

    provider: str
    method: str
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON is a :class:`MalformedResponse`."""
        if not self.body:
            return None
        try:
            return jsontext.loads(self.body)
        except ValueError:
            raise MalformedResponse(
                f"{self.provider} answered with a body that is not valid JSON (HTTP {self.status})"
            ) from None

    def retry_after(self) -> float | None:
        value = self.headers.get("Retry-After")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None


@dataclass(frozen=True)
class UpstreamSettings:
    connect_timeout: float = 5.0
    total_timeout: float = 30.0
    max_retries: int = 2
    max_retry_wait: float = 10.0
    max_response_bytes: int = 10 * 1024 * 1024
    max_concurrency: int = 64
    # The longest a request waits for room in a provider's request budget before it is
    # refused with 429 and Retry-After (None: wait as long as it takes).
    max_queue_wait: float | None = 3.0


ResponseCheck = Callable[[UpstreamResponse], Awaitable[None]]


class Upstream:
    """Owner of the shared ``ClientSession``."""

    def __init__(self, settings: UpstreamSettings | None = None) -> None:
        self.settings = settings or UpstreamSettings()
        self._session: aiohttp.ClientSession | None = None
        # What "now" is, and how to wait, for the request budgets; tests move them.
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], Awaitable[object]] = asyncio.sleep

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=self.settings.total_timeout, sock_connect=self.settings.connect_timeout
                ),
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                raise_for_status=False,
                auto_decompress=True,
                # A request's ``json=`` body: the same JSON value as aiohttp's json.dumps.
                json_serialize_bytes=jsontext.dumps,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Upstream.start() has not been called")
        return self._session

    def for_provider(
        self,
        provider: str,
        *,
        base_url: str,
        check: ResponseCheck | None = None,
        max_concurrency: int | None = None,
        rate_limits: tuple[RateLimit, ...] = (),
    ) -> ProviderHTTP:
        limit = asyncio.Semaphore(max_concurrency or self.settings.max_concurrency)
        windows = tuple(SlidingWindow(r) for r in rate_limits)
        return ProviderHTTP(self, provider, base_url, check, limit, {}, windows)


class ProviderHTTP:
    """An HTTP client bound to one provider's base URL (and, for actions, one token).

    ``path`` may be relative (joined to the base URL) or an absolute URL (token and
    revoke endpoints live elsewhere).
    """

    def __init__(
        self,
        upstream: Upstream,
        provider: str,
        base_url: str,
        check: ResponseCheck | None,
        limit: asyncio.Semaphore,
        headers: Mapping[str, str],
        windows: tuple[SlidingWindow, ...] = (),
    ) -> None:
        self._upstream = upstream
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._check = check
        self._limit = limit
        self._headers = dict(headers)
        self._windows = windows

    def with_headers(self, headers: Mapping[str, str]) -> ProviderHTTP:
        """A copy that sends ``headers`` on every request (credentials, for instance)."""
        return ProviderHTTP(
            self._upstream, self.provider, self.base_url, self._check, self._limit, {**self._headers, **headers}, self._windows
        )

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def path(self, template: str, /, **params: Any) -> str:
        """``template`` with each ``{name}`` replaced by ``params[name]`` as one
        percent-encoded segment: ``path("calendars/{calendarId}/events", calendarId=cal)``.

        A value that is empty, ``.`` or ``..``, or holds ``/``, ``\\`` or a percent-encoded
        dot or separator is a :class:`BadRequest` naming the parameter, before anything is
        sent. A missing parameter is a ``KeyError``: a bug in the caller, not bad input.
        """
        return _PARAM.sub(lambda m: path_segment(m.group(1), params[m.group(1)]), template)

    async def get(self, path: str, **kw: Any) -> UpstreamResponse:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> UpstreamResponse:
        return await self.request("POST", path, **kw)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
        check: bool = True,
        path_params: Mapping[str, Any] | None = None,
    ) -> UpstreamResponse:
        """Send a request; return the response once the provider's check accepts it.

        With ``path_params``, ``path`` is a template filled in by :meth:`path`. Whatever
        way the path was built, one with a dot segment (``.``, ``..``, ``%2e``) or a
        backslash is refused with :class:`BadRequest` before anything is sent.

        Idempotent methods (or ``retry=True``) are retried on 429, 5xx and timeouts, with
        backoff that honours ``Retry-After`` up to a cap; anything else raises the typed
        error at once, so a 429 reaches the client with its ``Retry-After``.
        """
        if path_params is not None:
            path = self.path(path, **path_params)
        _check_shape(path)
        method = method.upper()

        async def once() -> UpstreamResponse:
            response = await self._send(method, self.url(path), params, json, data, headers)
            if check and self._check is not None:
                await self._check(response)
            return response

        return await self._retrying(method, retry, once)

    async def forward(
        self, method: str, path: str, *, query: str = "", body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> UpstreamResponse:
        """Send ``method`` to ``path`` under the API base as it is given (already percent-
        encoded, checked by the caller to stay under the base), with this client's headers
        (the integration's credentials) over ``headers``, and return the provider's answer
        whatever its status: the proxy hands it back verbatim.

        Retries, the request budget, the size cap and timeouts are those of
        :meth:`request`: a 429 or 5xx to an idempotent method is sent again, and the last
        answer is returned. The provider's response check runs only to recognise refused
        credentials (:class:`ProviderAuthError`, which it raises); a 401 is one too. HEAD
        sends no body.
        """
        _check_shape(path)
        method = method.upper()
        url = URL(f"{self.base_url}/{path.lstrip('/')}" + (f"?{query}" if query else ""), encoded=True)
        payload = None if method == "HEAD" else (body or None)
        ours = {k.lower() for k in self._headers}
        theirs = {k: v for k, v in (headers or {}).items() if k.lower() not in ours}  # the credentials win

        async def once() -> UpstreamResponse:
            response = await self._send(method, url, None, None, payload, theirs)
            if response.status == 401:
                raise ProviderAuthError(f"{self.provider} refused the credentials (HTTP 401)", provider_code="unauthorized")
            if self._check is not None:
                try:
                    await self._check(response)
                except ProviderAuthError:
                    raise
                except HubError:
                    pass  # the provider's own answer, handed back as it is
            if response.status == 429 or response.status >= 500:
                raise _Again(response)
            return response

        try:
            return await self._retrying(method, None, once)
        except _Again as last:
            return last.response

    async def _retrying(self, method: str, retry: bool | None, once: Callable[[], Awaitable[UpstreamResponse]]) -> UpstreamResponse:
        settings = self._upstream.settings
        may_retry = (method in IDEMPOTENT) if retry is None else retry
        attempts = settings.max_retries + 1 if may_retry else 1
        for attempt in range(attempts):
            try:
                return await once()
            except Throttled:
                raise  # the hub's own budget: waiting already had its bound
            except (RateLimited, TransientProviderError) as exc:
                if attempt + 1 >= attempts:
                    raise
                wait = _backoff(attempt, getattr(exc, "retry_after", None))
                if wait > settings.max_retry_wait:
                    raise
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _send(
        self,
        method: str,
        url: str | URL,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: Mapping[str, Any] | bytes | None,
        headers: Mapping[str, str] | None,
    ) -> UpstreamResponse:
        settings = self._upstream.settings
        all_headers = {**self._headers, **(headers or {})}
        if self._windows:
            # A per-token budget belongs to the credential a request carries, whichever
            # hook or action sends it; a digest keeps the credential itself out of memory.
            token_key = _digest(all_headers.get("Authorization", ""))
            keyed = [(w, "" if w.limit.per == "app" else token_key) for w in self._windows]
            up = self._upstream
            await admit(keyed, max_wait=settings.max_queue_wait, clock=up.clock, sleep=up.sleep)
        async with self._limit:
            try:
                async with self._upstream.session.request(
                    method,
                    url,
                    params=_clean_params(params),
                    json=json_body,
                    data=data,
                    headers=all_headers,
                    allow_redirects=False,
                ) as resp:
                    body = b"" if method == "HEAD" else await _read_capped(resp, settings.max_response_bytes, self.provider)
                    return UpstreamResponse(
                        provider=self.provider,
                        method=method,
                        url=str(url).partition("?")[0],
                        status=resp.status,
                        # aiohttp's read-only view: header names stay case-insensitive.
                        headers=resp.headers,
                        body=body,
                    )
            except HubError:
                raise
            except asyncio.TimeoutError:
                raise ProviderTimeout(f"{self.provider} did not answer in time") from None
            except ValueError:
                # aiohttp refuses to send some values (control characters in a header, say)
                raise BadRequest(f"the request to {self.provider} carries a value that cannot be sent over HTTP") from None
            except aiohttp.ClientError as exc:
                raise TransientProviderError(
                    f"could not reach {self.provider}: {type(exc).__name__}"
                ) from None


class _Again(TransientProviderError):
    """A provider's 429 or 5xx answer to a forwarded call: sent again while retries last,
    else handed back as it is."""

    def __init__(self, response: UpstreamResponse) -> None:
        super().__init__(f"{response.provider} answered HTTP {response.status}")
        self.response = response
        self.retry_after = response.retry_after()


def _check_shape(path: str) -> None:
    if path.startswith(("http://", "https://")):
        return
    where = path.split("?", 1)[0].split("#", 1)[0]
    if _DOT_SEGMENT.search(where) or "\\" in where or "%5c" in where.lower():
        raise BadRequest("the request path holds a '.' or '..' segment or a backslash, which would change where it goes")


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, provider: str) -> bytes:
    if resp.content_length is not None:
        if resp.content_length > cap:
            raise MalformedResponse(f"{provider} answered with {resp.content_length} bytes, over the {cap}-byte limit")
        # A declared length within the cap: aiohttp reads exactly that much (a longer
        # body is a protocol error), so one read is as safe as counting chunks.
        if not resp.headers.get("Content-Encoding"):
            return await resp.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise MalformedResponse(f"{provider} answered with more than the {cap}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Drop ``None`` values and spell booleans the way web APIs expect."""
    if not params:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return retry_after
    return 0.2 * (2**attempt) + random.uniform(0, 0.1)
