"""Merging what a call asked to keep into a plugin state that moved while it ran.

A call reads the integration's state when it starts (the *base*) and asks, through
``update_state``, for whole top-level values (*mine*), and through ``remove_state`` for
top-level keys to drop. Other calls for the same integration may have written those
values since (*theirs*, read under the row lock).
Writing *mine* as it is would undo their changes; :func:`merge_state` keeps both:

- theirs unchanged since base: mine, as asked;
- dicts: the entries mine added, changed or removed relative to base, applied onto theirs
  (an entry both changed is merged the same way, so nested dicts merge too);
- lists: theirs in its order, less the elements mine removed, then the elements mine
  added that theirs lacks (elements compared by equality, as a set);
- anything else (a scalar, a type that changed): the later writer, mine.

A removed top-level key is a value *mine* no longer has, merged by the same rules: it goes
when theirs is unchanged since base, and also when theirs changed it meanwhile (the later
writer wins, as a dict entry mine removed goes whatever theirs made of it); theirs stays
when base lacked the key (the call removed nothing it had seen).

The renewal deadline (``ctx.renew_by``) follows the state it was derived from: when another
call set one since this call started, the sooner of the two is kept (:func:`merge_deadline`),
since a renewal that comes early only renews, while one that comes late lets something
upstream run out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

_MISSING: Any = object()


def merge_value(base: Any, mine: Any, theirs: Any) -> Any:
    """One value three ways; ``_MISSING`` stands for "no such key" in base or theirs."""
    if theirs is _MISSING or _same(theirs, base):
        return mine
    if _same(mine, base):
        return theirs  # this call did not change it: keep what was written since
    if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
        return _merge_dict(base if isinstance(base, Mapping) else {}, mine, theirs)
    if isinstance(mine, list | tuple) and isinstance(theirs, list | tuple):
        return _merge_list(base if isinstance(base, list | tuple) else [], mine, theirs)
    return mine


def merge_state(base: Mapping[str, Any] | None, updates: Mapping[str, Any], current: Mapping[str, Any],
                removals: Iterable[str] = ()) -> dict[str, Any]:
    """``current`` with ``updates`` applied and the keys in ``removals`` removed (an update
    of the same key wins: ``CallContext`` keeps the two apart). ``base`` is the state the
    call started from; ``None`` (not known) writes each change as it is, as before there was
    a merge."""
    merged = dict(current)
    changes = dict.fromkeys(removals, _MISSING) | dict(updates)
    for key, mine in changes.items():
        value = mine if base is None else merge_value(base.get(key, _MISSING), mine, current.get(key, _MISSING))
        if value is _MISSING:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def copy_state(value: Any) -> Any:
    """A copy of a state read from the row, deep in its dicts and lists (the rest of JSON is
    immutable): about half the time of ``copy.deepcopy``, which runs on every call."""
    if isinstance(value, dict):
        return {k: copy_state(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_state(v) for v in value]
    return value


def merge_deadline(base: datetime | None, mine: datetime | None, theirs: datetime | None) -> datetime | None:
    """When to call ``hub_renew``: ``mine`` unless the row's deadline moved since the call
    started (from ``base`` to ``theirs``); then the sooner one, and theirs over none."""
    if theirs == base or theirs is None:
        return mine
    return theirs if mine is None else min(mine, theirs)


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return bool(a == b or _plain(a) == _plain(b))


def _plain(value: Any) -> Any:
    """Tuples compare as the lists they are stored as."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _merge_dict(base: Mapping[str, Any], mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(theirs)
    for key in base:
        if key not in mine:
            merged.pop(key, None)  # removed by this call
    for key, value in mine.items():
        was = base.get(key, _MISSING)
        if not _same(value, was):
            merged[key] = merge_value(was, value, theirs.get(key, _MISSING))
    return merged


def _merge_list(base: list[Any] | tuple[Any, ...], mine: list[Any] | tuple[Any, ...], theirs: list[Any] | tuple[Any, ...]) -> list[Any]:
    old, new, now = _plain(base), _plain(mine), _plain(theirs)
    removed = [v for v in old if v not in new]
    merged = [v for v, p in zip(theirs, now, strict=True) if p not in removed]
    kept = [p for p in now if p not in removed]
    for v, p in zip(mine, new, strict=True):
        if p not in old and p not in kept:
            merged.append(v)
            kept.append(p)
    return merged
