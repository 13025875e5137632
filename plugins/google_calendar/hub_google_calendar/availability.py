"""Free time from busy time: the arithmetic behind "when am I available?".

Google's freeBusy endpoint only says when a calendar is *busy*.  This module
turns that into the complement people actually want: the free stretches
between two instants that fall inside working hours (in a given time zone)
and are long enough to be worth offering.

How it works
------------
1. Everything is converted to UTC first and all comparisons and arithmetic
   happen there.  Python compares and subtracts two datetimes that share a
   tzinfo by their wall-clock fields, ignoring the UTC offset, so local
   datetimes give wrong answers around DST changes (01:30 EDT and 02:00 EST
   are 90 minutes apart, but 30 by wall-clock arithmetic).  UTC has no such
   problems.
2. The busy intervals are clipped to the requested range, sorted and merged
   into disjoint, non-touching intervals: O(busy log busy).
3. For every calendar day (in the target zone) that the range touches and
   whose weekday is a working day, the working window is built from wall-clock
   times on that date and converted to UTC, so each day gets the offset in
   force on that day.  Windows are clipped to the range.
4. A single sweep over the windows and merged busy intervals subtracts one
   from the other (O(days + busy)); slots shorter than ``minimum`` are dropped
   and the rest are converted back to the target zone for display.

Wall-clock times that do not exist or occur twice
-------------------------------------------------
A working-hours boundary such as 02:30 can be missing from a day (the clocks
spring forward over it) or occur twice (the clocks fall back over it).  Both
cases follow one rule: *a boundary is the first instant at which a clock in
the target zone shows that time or a later one on that date.*

* A repeated time resolves to its first occurrence (``fold=0``): on
  America/New_York's 2026-11-01, hours 01:30-02:00 run from 01:30 EDT to
  02:00 EST, i.e. 90 real minutes.
* A missing time resolves to the moment the clocks jump: on Europe/Berlin's
  2026-03-29 (02:00 -> 03:00), a start of 02:30 becomes 03:00 CEST, and hours
  02:15-02:45 produce no window at all because that day has no such times.

The rule is monotonic (a later wall time never maps to an earlier instant),
so windows never come out inverted and days never overlap.  Python's own
``fold=0`` behaviour for missing times (push forward by the gap, 02:30 ->
03:30) would break that: 02:59 would land after 03:00.

Overnight shifts (end before start) are not supported; split them into two
calls or two ``WorkingHours`` if needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "MAX_RANGE",
    "WorkingHours",
    "free_slots",
    "parse_instant",
    "resolve_zone",
    "to_json",
]

#: The longest range ``free_slots`` accepts.  The work grows with the number
#: of days, so the range is capped to keep the cost of one request bounded.
MAX_RANGE = timedelta(days=62)

_UTC = UTC
_ONE_DAY = timedelta(days=1)
_ONE_MINUTE = timedelta(minutes=1)
# datetime's resolution: the binary search for a DST jump stops here.
_RESOLUTION = timedelta(microseconds=1)

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class WorkingHours:
    """Daily working hours as wall-clock times, plus the working weekdays.

    ``days`` uses ``datetime.weekday()`` numbering: Monday=0 ... Sunday=6.
    """

    start: time = time(9, 0)
    end: time = time(17, 0)
    days: frozenset[int] = frozenset({0, 1, 2, 3, 4})

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time):
                raise ValueError(f"working hours {name} must be a datetime.time, got {value!r}")
            if value.tzinfo is not None:
                # The zone is chosen per call; a tzinfo here would be silently
                # ignored or contradict it, so refuse it outright.
                raise ValueError(
                    f"working hours {name} must be a plain wall-clock time without a tzinfo, got {value!r}"
                )
        if self.end <= self.start:
            raise ValueError(
                f"working hours must end after they start (start {self.start.isoformat()}, "
                f"end {self.end.isoformat()}); overnight shifts are not supported"
            )
        try:
            days = frozenset(self.days)
        except TypeError:
            raise ValueError(f"working days must be a collection of weekday numbers, got {self.days!r}") from None
        for day in days:
            # bool is an int subclass; True/False as a weekday is surely a bug.
            if not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 6:
                raise ValueError(f"working days must be weekday numbers 0 (Monday) to 6 (Sunday), got {day!r}")
        # Accept any iterable (a list from a config file, say) but store the
        # frozenset so instances stay hashable and immutable.
        object.__setattr__(self, "days", days)


def resolve_zone(tz: str | tzinfo) -> tzinfo:
    """Return a tzinfo for an IANA name such as ``"Europe/Berlin"``.

    A tzinfo object is returned unchanged.  Unknown or malformed names raise
    ``ValueError`` naming the value, so callers can answer with a 400.
    """
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str):
        raise ValueError(f"unknown time zone: {tz!r}")
    try:
        return ZoneInfo(tz)
    # ZoneInfoNotFoundError is a KeyError; malformed keys ("", "/etc/x",
    # "../x") and non-TZif files raise ValueError; odd paths may raise OSError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone: {tz!r}") from None


def parse_instant(value: str) -> datetime:
    """Parse an RFC 3339 date-time (``Z`` or a numeric offset) into an aware datetime.

    A value without a UTC offset is ambiguous, so it raises ``ValueError``
    rather than being guessed at.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 date-time string, got {value!r}")
    text = value.strip()
    # RFC 3339 allows lower-case "t" and "z" (and, in a note, a space as the
    # separator); fromisoformat only understands the upper-case forms.
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    if len(text) > 10 and text[10] in "tT ":
        text = f"{text[:10]}T{text[11:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 date-time: {value!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"date-time has no UTC offset (naive): {value!r}")
    return parsed


def free_slots(
    time_min: datetime,
    time_max: datetime,
    busy: Iterable[tuple[datetime, datetime]] | Iterable[Mapping[str, str]],
    *,
    tz: str | tzinfo,
    hours: WorkingHours = WorkingHours(),
    minimum: timedelta = timedelta(minutes=30),
) -> list[Interval]:
    """Return the free slots in ``[time_min, time_max)``, sorted, in zone ``tz``.

    ``busy`` holds ``(start, end)`` pairs of aware datetimes or mappings with
    RFC 3339 ``"start"``/``"end"`` strings, as Google's freeBusy returns them.
    Busy intervals may overlap, touch, be unsorted, be empty or reach outside
    the range.  Each returned slot lies inside one day's working hours, does
    not overlap any busy interval and lasts at least ``minimum``.

    Raises ``ValueError`` for bad input: naive datetimes, an empty or
    inverted range, a range longer than 62 days, an unknown time zone, a
    negative minimum or a malformed busy interval.
    """
    zone = resolve_zone(tz)
    start = _as_utc(time_min, "time_min")
    end = _as_utc(time_max, "time_max")
    if end <= start:
        raise ValueError(f"time_max ({time_max}) must be after time_min ({time_min})")
    if end - start > MAX_RANGE:
        raise ValueError("the range is longer than 62 days")
    # Wrong types here are programming errors, not bad requests.
    if not isinstance(hours, WorkingHours):
        raise TypeError(f"hours must be a WorkingHours, got {hours!r}")
    if not isinstance(minimum, timedelta):
        raise TypeError(f"minimum must be a timedelta, got {minimum!r}")
    if minimum < timedelta(0):
        raise ValueError(f"minimum must be a non-negative timedelta, got {minimum!r}")

    merged = _merge_busy(busy, start, end)
    try:
        windows = list(_working_windows(start, end, zone, hours))
    except OverflowError:
        # Only reachable at the very ends of datetime's range (year 1 / 9999).
        raise ValueError("the range is outside the supported dates") from None
    return [
        (slot_start.astimezone(zone), slot_end.astimezone(zone))
        for slot_start, slot_end in _subtract(windows, merged)
        if slot_end - slot_start >= minimum
    ]


def to_json(slots: Iterable[Interval], tz: str | tzinfo) -> list[dict]:
    """Render slots as ``{"start", "end", "minutes"}`` dicts in zone ``tz``.

    ``minutes`` is the real elapsed time, rounded down to whole minutes.
    """
    zone = resolve_zone(tz)
    rendered = []
    for slot_start, slot_end in slots:
        begin = _as_utc(slot_start, "slot start")
        finish = _as_utc(slot_end, "slot end")
        rendered.append(
            {
                "start": begin.astimezone(zone).isoformat(),
                "end": finish.astimezone(zone).isoformat(),
                # Subtract in UTC: across a DST change, local wall clocks
                # would give the wrong duration.
                "minutes": (finish - begin) // _ONE_MINUTE,
            }
        )
    return rendered


# --------------------------------------------------------------------------
# Internals


def _as_utc(value: object, what: str) -> datetime:
    """An aware datetime (or RFC 3339 string) as a UTC datetime."""
    if isinstance(value, str):
        value = parse_instant(value)
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be an aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime (with a UTC offset), got naive {value.isoformat()}")
    return value.astimezone(_UTC)


def _busy_pairs(busy: Iterable[object]) -> Iterator[Interval]:
    """Yield each busy interval as a ``(start, end)`` pair in UTC."""
    for item in busy:
        if isinstance(item, Mapping):
            try:
                raw_start, raw_end = item["start"], item["end"]
            except KeyError:
                raise ValueError(f"busy interval needs 'start' and 'end': {item!r}") from None
        elif isinstance(item, (str, bytes)):
            # A two-character string would unpack as a "pair"; refuse it.
            raise ValueError(f"busy interval must be a (start, end) pair or a mapping, got {item!r}")
        else:
            try:
                raw_start, raw_end = item
            except (TypeError, ValueError):
                raise ValueError(f"busy interval must be a (start, end) pair or a mapping, got {item!r}") from None
        begin = _as_utc(raw_start, "busy start")
        finish = _as_utc(raw_end, "busy end")
        if finish < begin:
            raise ValueError(f"busy interval ends before it starts: {item!r}")
        yield begin, finish


def _merge_busy(busy: Iterable[object], start: datetime, end: datetime) -> list[Interval]:
    """Clip busy intervals to [start, end], then sort and merge them.

    Touching intervals are merged too, so a gap between two merged intervals
    is always a real, non-empty stretch of free time.
    """
    clipped = []
    for begin, finish in _busy_pairs(busy):
        begin, finish = max(begin, start), min(finish, end)
        if begin < finish:  # empty or entirely outside the range
            clipped.append((begin, finish))
    clipped.sort()
    merged: list[Interval] = []
    for begin, finish in clipped:
        if merged and begin <= merged[-1][1]:
            if finish > merged[-1][1]:
                merged[-1] = (merged[-1][0], finish)
        else:
            merged.append((begin, finish))
    return merged


def _wall_to_instant(day: date, wall: time, zone: tzinfo) -> datetime:
    """The first instant (in UTC) at which a clock in ``zone`` shows ``wall`` or later on ``day``.

    See the module docstring for why missing times snap to the DST jump.
    """
    local = datetime.combine(day, wall.replace(tzinfo=None, fold=0), tzinfo=zone)
    target = local.replace(tzinfo=None)
    # fold=0 is the earlier reading of a repeated time, which is what we
    # want; the round trip tells whether the wall time exists at all.
    instant = local.astimezone(_UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == target:
        return instant
    # The time falls into a spring-forward gap.  With fold=0 the offset from
    # before the jump is used, which lands after it; fold=1 uses the offset
    # from after the jump, which lands before it.  The jump lies between, and
    # a binary search finds it without access to the zone's transition table.
    low = local.replace(fold=1).astimezone(_UTC)
    high = instant
    if low > high:  # a tzinfo that treats fold the other way round
        low, high = high, low
    while high - low > _RESOLUTION:
        middle = low + (high - low) // 2
        if middle.astimezone(zone).replace(tzinfo=None) >= target:
            high = middle
        else:
            low = middle
    return high


def _working_windows(start: datetime, end: datetime, zone: tzinfo, hours: WorkingHours) -> Iterator[Interval]:
    """Yield each working day's window, clipped to [start, end], in time order (UTC)."""
    day = start.astimezone(zone).date()
    last_day = end.astimezone(zone).date()
    while day <= last_day:
        if day.weekday() in hours.days:
            window_start = max(_wall_to_instant(day, hours.start, zone), start)
            window_end = min(_wall_to_instant(day, hours.end, zone), end)
            if window_start < window_end:
                yield window_start, window_end
        day += _ONE_DAY


def _subtract(windows: list[Interval], busy: list[Interval]) -> list[Interval]:
    """Remove merged, sorted ``busy`` from sorted, disjoint ``windows`` in one sweep."""
    free: list[Interval] = []
    first = 0
    for window_start, window_end in windows:
        # Windows come in time order, so busy intervals that end before this
        # one starts can never matter again.  Only an interval straddling two
        # windows is looked at twice, which keeps the sweep linear.
        while first < len(busy) and busy[first][1] <= window_start:
            first += 1
        cursor = window_start
        index = first
        while index < len(busy) and busy[index][0] < window_end:
            busy_start, busy_end = busy[index]
            if busy_start > cursor:
                free.append((cursor, busy_start))
            cursor = max(cursor, busy_end)
            index += 1
        if cursor < window_end:
            free.append((cursor, window_end))
    return free
