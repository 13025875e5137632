"""JSON on the per-call path: orjson where it gives the JSON value the standard library
would, the standard library where it would not.

Every proxied call decodes the provider's answer and the integration's JSON columns, and
encodes the provider's request, the two activity payloads and the answer's envelope. The
standard library takes 3 to 10 times longer for each than orjson. orjson differs from it
at a few edges, and each is handled here rather than at every caller:

* **decoding**: an integer of 19 digits or more may not fit in 64 bits, and orjson reads
  one that does not as a float; NaN, Infinity, lone surrogates and encodings other than
  UTF-8 are refused by orjson and accepted by ``json``. Such texts go to ``json.loads``,
  so the value is the one it gives, and so is its error.
* **encoding**: integers past 64 bits, keys that are not strings, lone surrogates and
  nesting past orjson's limit raise ``TypeError``; those values are encoded by
  ``json.dumps``. Datetimes and dataclasses go to ``default`` as they do with ``json``
  (orjson would write its own forms). What remains differs in spelling, not in value
  (a float's exponent below -4 loses its zero: ``1e-7``, not ``1e-07``), or turns what was
  not valid JSON into JSON: NaN and the infinities become ``null`` (``json`` writes ``NaN``,
  which no JSON parser takes), and a plain :class:`~enum.Enum` member becomes its value
  (``json`` hands it to ``default``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# Every ASCII digit to "0", every other byte to " ": a run of 19 digits is then a
# substring search, several times faster than a regular expression's scan.
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 19


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``'s value (or its ``ValueError``), through orjson when that is
    the same."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if _LONG_RUN not in raw.translate(_DIGITS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as compact JSON in UTF-8, non-ASCII characters as they are: the bytes of
    ``json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":"))``
    but for the two differences above. Raises what that call raises for a value neither
    can encode (``TypeError``, ``ValueError``, ``RecursionError``)."""
    try:
        return orjson.dumps(value, default=default, option=_OPTIONS)
    except TypeError:
        return json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
