"""The three-way merge of a call's state updates (hub/core/statemerge.py): base is the
state the call started from, mine what it asked to keep, theirs the row's value now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub import CallContext
from hub.core.statemerge import copy_state, merge_deadline, merge_state, merge_value


def test_unchanged_since_the_call_started_means_mine_as_asked() -> None:
    base = {"a": 1, "b": 2}
    assert merge_value(base, {"a": 1}, {"a": 1, "b": 2}) == {"a": 1}  # a removal is kept too
    assert merge_value([1, 2], [2, 1], [1, 2]) == [2, 1]  # and mine's order
    assert merge_state({"n": 1}, {"n": 2, "new": "x"}, {"n": 1, "other": True}) == {"n": 2, "new": "x", "other": True}


def test_two_calls_setting_different_entries_of_one_dict_keep_both() -> None:
    base = {"syncTokens": {"primary": "p1"}}
    first = merge_state(base, {"syncTokens": {"primary": "p2"}}, base)
    second = merge_state(base, {"syncTokens": {"primary": "p1", "work": "w1"}}, first)
    assert second == {"syncTokens": {"primary": "p2", "work": "w1"}}


def test_a_dict_entry_removed_by_mine_goes_and_theirs_additions_stay() -> None:
    base = {"c1": {"cal": "a"}, "c2": {"cal": "b"}}
    theirs = {**base, "c3": {"cal": "c"}}
    assert merge_value(base, {"c2": {"cal": "b"}, "c4": {"cal": "a"}}, theirs) == {"c2": {"cal": "b"}, "c3": {"cal": "c"}, "c4": {"cal": "a"}}


def test_nested_dicts_merge_and_a_scalar_both_changed_goes_to_the_later_writer() -> None:
    base = {"c1": {"exp": 1, "res": "r"}}
    theirs = {"c1": {"exp": 1, "res": "r", "seen": 5}}
    assert merge_value(base, {"c1": {"exp": 2, "res": "r"}}, theirs) == {"c1": {"exp": 2, "res": "r", "seen": 5}}
    assert merge_value({"n": 1}, {"n": 3}, {"n": 2}) == {"n": 3}
    assert merge_value(1, 3, 2) == 3


def test_lists_keep_theirs_order_less_mine_removals_then_mine_additions() -> None:
    base = ["c1", "c2"]
    theirs = ["c1", "c2", "c3"]  # a new channel, written meanwhile
    assert merge_value(base, ["c2", "c9"], theirs) == ["c2", "c3", "c9"]  # c1 renewed as c9
    assert merge_value([], ["x", "a"], ["a", "b"]) == ["a", "b", "x"]  # no element twice
    assert merge_value(("a",), ("a", "b"), ["a", "c"]) == ["a", "c", "b"]  # tuples are the lists they are stored as
    assert merge_value([{"id": 1}], [{"id": 1}, {"id": 2}], [{"id": 1}, {"id": 3}]) == [{"id": 1}, {"id": 3}, {"id": 2}]


def test_a_value_this_call_did_not_change_keeps_theirs() -> None:
    assert merge_value({"a": 1}, {"a": 1}, {"a": 2}) == {"a": 2}
    assert merge_state({"n": 1}, {"n": 1}, {"n": 7}) == {"n": 7}


@pytest.mark.parametrize(("base", "mine", "theirs", "want"), [
    ({"a": 1}, ["a"], {"b": 2}, ["a"]),  # the type changed: mine
    ("s", {"a": 1}, {"b": 2}, {"a": 1, "b": 2}),  # no dict to compare with: an addition of each entry
    (None, [1], [2], [2, 1]),
])
def test_mixed_types_fall_back_to_mine_or_a_union(base: Any, mine: Any, theirs: Any, want: Any) -> None:
    assert merge_value(base, mine, theirs) == want


def test_keys_new_on_both_sides_and_an_unknown_base() -> None:
    assert merge_state({}, {"cursor": {"a": 1}}, {"cursor": {"b": 2}}) == {"cursor": {"a": 1, "b": 2}}
    assert merge_state({}, {"cursor": "mine"}, {"cursor": "theirs"}) == {"cursor": "mine"}
    assert merge_state({"k": 1}, {"k": 2}, {}) == {"k": 2}  # gone from the row meanwhile: written again
    # A context built by hand has no base: the update is written as given, as it always was.
    assert merge_state(None, {"cursor": {"a": 1}}, {"cursor": {"b": 2}, "x": 0}) == {"cursor": {"a": 1}, "x": 0}


def test_a_removed_key_goes_when_the_row_has_not_moved_and_a_missing_one_is_no_error() -> None:
    assert merge_state({"old": 1, "n": 2}, {}, {"old": 1, "n": 2, "other": 3}, {"old"}) == {"n": 2, "other": 3}
    assert merge_state({"n": 2}, {}, {"n": 2}, {"never"}) == {"n": 2}
    assert merge_state({"n": 2, "gone": 0}, {"n": 3}, {"n": 2, "gone": 0}, ["gone"]) == {"n": 3}  # with an update of another key
    # A context built by hand has no base: the key is removed as asked.
    assert merge_state(None, {}, {"old": {"a": 1}, "x": 0}, {"old"}) == {"x": 0}


def test_a_removal_of_a_key_another_call_changed_meanwhile_wins_as_the_later_writer() -> None:
    # As a dict entry this call removed goes whatever the other call made of it.
    assert merge_value({"c1": 1, "c2": 2}, {"c2": 2}, {"c1": 5, "c2": 2}) == {"c2": 2}
    base = {"channels": {"c1": {"exp": 1}}, "n": 1}
    theirs = {"channels": {"c1": {"exp": 1}, "c2": {"exp": 2}}, "n": 4}
    assert merge_state(base, {}, theirs, {"channels", "n"}) == {}
    # The other order: a call that changed the key saves after the removal was saved.
    assert merge_state(base, {"n": 2}, {"channels": base["channels"]}) == {"channels": base["channels"], "n": 2}


def test_a_removal_keeps_a_key_the_call_never_saw_and_an_update_of_the_same_key_wins() -> None:
    assert merge_state({}, {}, {"added": "theirs"}, {"added"}) == {"added": "theirs"}  # set by another call meanwhile
    assert merge_state({"k": 1}, {"k": 2}, {"k": 1}, {"k"}) == {"k": 2}


def bare_context() -> CallContext:
    """A context with only what the state methods use; the rest is never read."""
    unused: Any = None
    return CallContext(unused, unused, {}, "u-1", unused, "", {})


def test_remove_state_and_update_state_in_one_call_the_last_word_wins() -> None:
    ctx = bare_context()
    ctx.update_state(a=1, b=2, c=3)
    ctx.remove_state("a", "gone")
    assert ctx.state_updates == {"b": 2, "c": 3} and ctx.state_removals == {"a", "gone"}
    ctx.update_state(gone=0)
    ctx.remove_state("c")
    assert ctx.state_updates == {"b": 2, "gone": 0} and ctx.state_removals == {"a", "c"}
    assert merge_state({"a": 1, "c": 3}, ctx.state_updates, {"a": 1, "c": 3}, ctx.state_removals) == {"b": 2, "gone": 0}


@pytest.mark.parametrize("keys", [(1,), ("ok", None), (("a", "b"),)])
def test_remove_state_takes_key_names_only(keys: tuple[Any, ...]) -> None:
    ctx = bare_context()
    ctx.update_state(ok=1)
    with pytest.raises(TypeError, match=r"remove_state takes the names of top-level state keys as str, not (int|NoneType|tuple)$"):
        ctx.remove_state(*keys)
    assert ctx.state_updates == {"ok": 1} and not ctx.state_removals  # nothing half done


def test_of_two_renewal_deadlines_asked_at_once_the_sooner_is_kept() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    week, hour = start + timedelta(days=7), start + timedelta(hours=1)
    assert merge_deadline(start, week, start) == week  # nobody else moved it: as asked
    assert merge_deadline(start, None, start) is None
    assert merge_deadline(start, week, hour) == hour  # a call meanwhile needs it sooner
    assert merge_deadline(start, hour, week) == hour
    assert merge_deadline(start, None, hour) == hour  # this call cancels, the other asked for one
    assert merge_deadline(start, week, None) == week  # the other cancelled, this one asks


def test_the_base_is_a_copy_a_handler_cannot_change_in_place() -> None:
    state = {"syncTokens": {"primary": "p1"}, "watch_channels": ["c1"], "n": 1}
    base = copy_state(state)
    state["syncTokens"]["work"] = "w1"
    state["watch_channels"].append("c2")
    assert base == {"syncTokens": {"primary": "p1"}, "watch_channels": ["c1"], "n": 1}
