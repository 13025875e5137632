"""The state machine of DESIGN.md §5: every allowed move works, every other is refused."""

from __future__ import annotations

import pytest

from hub.errors import Conflict
from hub.core.lifecycle import ALLOWED, Status, move
from hub.store.models import Integration

A, X, E, I, D = (Status.ACTIVE, Status.EXPIRED, Status.ERROR, Status.INACTIVE, Status.DELETED)
TABLE = {
    None: {A},
    A: {X, E, I, D},
    X: {A, E, I, D},
    E: {A, I, D},
    I: {A, D},
    D: {A},
}


def test_table_is_the_designed_one():
    assert {k: set(v) for k, v in ALLOWED.items()} == TABLE


@pytest.mark.parametrize("start", list(TABLE))
@pytest.mark.parametrize("to", list(Status))
def test_each_move(start, to):
    row = Integration(id=7, provider="slack", status=start.value if start else None, version=3)
    if start == to:
        assert move(row, to, "same") is None
        assert row.version == 3
    elif to in TABLE[start]:
        entry = move(row, to, "because")
        assert row.status == to.value and row.version == 4 and row.status_reason == "because"
        assert entry.kind == "transition"
        assert entry.request_data == {"from": start.value if start else None, "to": to.value, "reason": "because"}
    else:
        with pytest.raises(Conflict) as info:
            move(row, to, "nope")
        assert row.status == (start.value if start else None) and row.version == 3
        assert info.value.details["allowedTransitions"] == sorted(s.value for s in TABLE[start])
        assert (start.value if start else "not connected") in info.value.message
