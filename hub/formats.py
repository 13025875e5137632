"""The string formats action input is checked for (JSON Schema ``format``), by the hub's
own rules so that every installation checks them alike."""

from __future__ import annotations

import re
from datetime import date

from jsonschema import FormatChecker

__all__ = ["FORMATS"]

# Formats a provider would refuse are refused here, with the field named. jsonschema checks
# "date-time" only when an optional package happens to be installed, so the formats input
# most often gets wrong are checked by our own rules, the same on every installation.
FORMATS = FormatChecker()
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")


@FORMATS.checks("date")
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


@FORMATS.checks("time")
def _is_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    match = _TIME.fullmatch(value)
    if not match:
        return False
    hours, minutes, seconds = (int(match.group(i)) for i in (1, 2, 3))
    offset = match.group(5)
    offset_ok = offset in ("Z", "z") or (int(offset[1:3]) < 24 and int(offset[4:6]) < 60)
    return hours < 24 and minutes < 60 and seconds < 60 and offset_ok


@FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    """RFC 3339: a full date, ``T`` (or ``t``, or a space), a full time with its offset."""
    if not isinstance(value, str) or len(value) < 11:
        return not isinstance(value, str)
    day, sep, rest = value[:10], value[10], value[11:]
    return sep in "Tt " and _is_date(day) and _is_time(rest)


@FORMATS.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or (len(value) <= 254 and bool(_EMAIL.fullmatch(value)))
