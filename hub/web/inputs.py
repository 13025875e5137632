"""Reading a request's input: a strict JSON object body, and query parameters with
errors that name the field."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from ..validation import MAX_DEPTH, too_deep
from ..errors import BadRequest, UnsupportedMediaType, ValidationFailed


async def json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("body: a JSON object is required", details={"field": "(body)"})
    ctype = request.content_type
    # No Content-Type at all arrives as application/octet-stream: accept it as JSON.
    if ctype not in ("application/json", "application/octet-stream") and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type: expected application/json, got {ctype}", details={"field": "Content-Type"})
    try:
        # json.loads(raw, ...) as it would, minus building a decoder on every call.
        value = _STRICT.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except RecursionError:
        raise BadRequest("body: JSON nested too deeply", details={"field": "(body)"}, code="malformed_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = f": {exc}" if isinstance(exc, _StrictJSONError) else ""
        raise BadRequest(f"body: not valid JSON{where}{reason}", details={"field": "(body)"}, code="malformed_json") from None
    if not isinstance(value, dict):
        raise BadRequest("body: must be a JSON object", details={"field": "(body)"})
    # Bounded here, before anything runs: what follows (validation, redaction, the encoder
    # sending it upstream) recurses, and must never fail halfway through a call.
    deep = too_deep(value, root="(body)")
    if deep is not None:
        raise ValidationFailed(f"{deep}: nested deeper than {MAX_DEPTH} levels", details={"field": deep})
    return value


class _StrictJSONError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _StrictJSONError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise _StrictJSONError(f"{name} is not JSON")


_STRICT = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def single(q: Any, name: str) -> str | None:
    """One query parameter, given at most once and never empty: a repeated or empty
    parameter is refused rather than read one way here and another way there."""
    values = q.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise ValidationFailed(f"{name}: given {len(values)} times; give it once", details={"field": name})
    if values[0] == "":
        raise ValidationFailed(f"{name}: is empty; give a value or leave the parameter out", details={"field": name})
    return str(values[0])


def int_param(q: Any, name: str, default: int, low: int, high: int) -> int:
    raw = single(q, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name}: must be an integer from {low} to {high}", details={"field": name}) from None
    if not low <= value <= high:
        raise ValidationFailed(f"{name}: must be from {low} to {high}", details={"field": name})
    return value


def parse_since(q: Any) -> datetime | None:
    raw = single(q, "since")
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValidationFailed("since: must be an ISO 8601 date or date-time, e.g. 2026-01-31T12:00:00Z", details={"field": "since"}) from None


def no_unknown(q: Any, known: set[str]) -> None:
    for key in q.keys():
        if key not in known:
            raise ValidationFailed(f"{key}: unknown query parameter (known: {', '.join(sorted(known))})", details={"field": key})
