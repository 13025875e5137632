"""hub.jsontext: orjson on the per-call path must give the JSON values the standard library
gives, at each edge where orjson on its own would not (docs/performance.md, "CPU per call")."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from hub import jsontext
from hub.redact import capped_json


def stdlib(value: Any, default: Any = None) -> bytes:
    return json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclasses.dataclass
class Point:
    x: int


ENCODED_ALIKE = [
    {"a": 1, "b": [1, 2.5, None, True, False], "c": {"d": "é ✓ 𝄞"}},
    2**63 - 1,
    -(2**63),
    2**64 + 1,  # past 64 bits: orjson refuses it
    {1: "a", 2.5: "b", None: "c"},  # keys that are not strings: orjson refuses them
    [1e16, 0.1, -0.0, 123456789.123, 1.5e300],
    (1, 2, 3),
    datetime(2026, 12, 4, 19, 30, tzinfo=timezone.utc),  # str(), not orjson's own form
    date(2026, 12, 4),
    Point(1),  # str(), not orjson's object
    Decimal("1.10"),
    {"deep": [[[[[[[[[[{"x": 1}]]]]]]]]]]},
]


@pytest.mark.parametrize("value", ENCODED_ALIKE, ids=lambda v: type(v).__name__)
def test_dumps_gives_the_standard_librarys_bytes(value: Any) -> None:
    assert jsontext.dumps(value, default=str) == stdlib(value, str)


def test_dumps_without_default_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        jsontext.dumps({"when": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    with pytest.raises(TypeError):
        jsontext.dumps({"p": Point(1)})
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises((ValueError, RecursionError)):
        jsontext.dumps(looped)


def test_dumps_spells_small_exponents_shorter_for_the_same_number() -> None:
    floats = [1e-7, 2.5e-10, 5e-324]
    assert jsontext.dumps(floats) == b"[1e-7,2.5e-10,5e-324]"
    assert json.loads(jsontext.dumps(floats)) == floats


def test_dumps_writes_null_for_nan_where_json_writes_no_json_at_all() -> None:
    assert jsontext.dumps([math.nan, math.inf]) == b"[null,null]"


DECODED_ALIKE = [
    b'{"a":1,"b":[1,2.5,null,true],"c":"\\u00e9"}',
    b"123456789012345678901234567890",  # orjson alone would read a float
    b"-9223372036854775809",
    b'{"id": 12345678901234567890123, "n": 1}',
    b'"\\ud800"',  # a lone surrogate: orjson refuses it
    b"[NaN, Infinity, -Infinity]",  # orjson refuses them
    b"1e400",
    b'{"a": 1, "a": 2}',
    '{"text": "plain str in, as the database hands a JSON column back"}',
    '{"big": 98765432109876543210}',
]


@pytest.mark.parametrize("text", DECODED_ALIKE)
def test_loads_gives_the_standard_librarys_value(text: bytes | str) -> None:
    got, want = jsontext.loads(text), json.loads(text)
    assert repr(got) == repr(want)  # repr: 1 and 1.0, or nan, compare as they are


@pytest.mark.parametrize("text", [b"{bad", b"", b"[1,", "nope"])
def test_loads_refuses_what_json_refuses(text: bytes | str) -> None:
    with pytest.raises(ValueError):
        jsontext.loads(text)


def test_capped_json_stores_a_lone_surrogate_escaped_and_measures_utf8() -> None:
    stored = capped_json({"t": "a\ud800b"}, 1000)
    assert stored is not None and stored.isascii() and json.loads(stored) == {"t": "a\ud800b"}
    # The cap counts UTF-8 bytes: 300 three-byte characters are 900 bytes.
    fits = capped_json({"t": "€" * 300}, 920)
    cut = capped_json({"t": "€" * 300}, 880)
    assert fits is not None and json.loads(fits) == {"t": "€" * 300} and fits.plain
    assert cut is not None and json.loads(cut)["truncated"] is True and not cut.plain
