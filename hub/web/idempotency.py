"""The ``Idempotency-Key`` request header on every write (POST, PUT, PATCH, DELETE):
reading and checking the key, and turning the core's verdict into an answer.

The header is an RFC 8941 string (``Idempotency-Key: "8e03978e-..."``); a bare value
without the quotes is taken as the key too, as most clients send it. A key is 1 to 255
printable ASCII characters; anything else is a 400 naming the header. Keys belong to the
authenticated caller: two users may use the same key without meeting.
"""

from __future__ import annotations

from aiohttp import web

from ..core.idempotency import HEADER, Replay
from ..errors import BadRequest
from ..store.idempotency import Request, fingerprint
from .middleware import CALLER, HUB_KEY, Handler, authenticate, respond_to

MAX_KEY_LENGTH = 255
REPLAYED = "Idempotent-Replayed"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Headers that belong to one sending of an answer, not to the answer itself.
_NOT_STORED = frozenset({"content-length", "date", "server", "transfer-encoding", "connection"})


def parse_key(values: list[str]) -> str:
    """The key in the header's values; :class:`BadRequest` naming the header otherwise."""
    if len(values) != 1:
        raise _bad(f"send the header once (it came {len(values)} times)")
    raw = values[0].strip()
    key = _sf_string(raw) if raw.startswith('"') else raw
    if not key:
        raise _bad("must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise _bad(f"must be at most {MAX_KEY_LENGTH} characters (a UUID is 36)")
    if not all(" " <= c <= "~" for c in key):
        raise _bad("must be printable ASCII (letters, digits, punctuation and spaces)")
    return key


def _sf_string(raw: str) -> str:
    """An RFC 8941 sf-string: DQUOTE, printable ASCII with ``\\"`` and ``\\\\`` escapes, DQUOTE."""
    out: list[str] = []
    i, end = 1, len(raw)
    while i < end:
        c = raw[i]
        if c == "\\":
            if i + 1 >= end or raw[i + 1] not in '"\\':
                raise _bad('is not a valid quoted string: "\\" may only escape \'"\' or "\\"')
            out.append(raw[i + 1])
            i += 2
            continue
        if c == '"':
            if i != end - 1:
                raise _bad("is not a valid quoted string: text follows the closing quote")
            return "".join(out)
        out.append(c)
        i += 1
    raise _bad("is not a valid quoted string: the closing quote is missing")


def _bad(problem: str) -> BadRequest:
    return BadRequest(f"{HEADER}: {problem}", details={"field": HEADER})


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    # /mcp: a tool call's key travels in its JSON-RPC request (``_meta``), one per call.
    if request.method not in WRITES or HEADER not in request.headers or request.match_info.http_exception is not None or request.path == "/mcp":
        return await handler(request)
    key = parse_key(request.headers.getall(HEADER))
    who = request.get(CALLER)
    if who is None:
        # A public write (a token flow's POST …/tokens): the key needs someone to belong to.
        if "Authorization" not in request.headers:
            raise _bad("applies to requests that carry a JWT; this one carries none (a token flow's state is single-use already)")
        who = authenticate(request)
    body = await request.read()
    service = request.app[HUB_KEY].idempotency
    outcome = await service.begin(Request(who.user_id, key, request.method, request.rel_url.raw_path_qs, fingerprint(body)))
    if isinstance(outcome, Replay):
        return web.Response(status=outcome.status, body=outcome.body, headers={**outcome.headers, REPLAYED: "true"})
    try:
        response = await handler(request)
    except Exception as exc:
        response = respond_to(request, exc)
    body_out = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else None
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _NOT_STORED}
    await service.end(outcome, response.status, headers, body_out)
    return response
