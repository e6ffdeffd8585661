"""The previous active set in the cursor, and the diff that turns it into resolutions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import MalformedPayload
from connectors.ncentral.tracking import Known, State, decode, encode, reconcile

T0 = datetime(2024, 7, 16, 14, 0, tzinfo=UTC)


def _known(task: int, unit: int = 100) -> Known:
    return Known(task, unit, {"id": f"{task}@m", "customer": {"id": str(unit), "name": "C"},
                              "message": "Disk issue on ACME-DC01", "raised_at":
                              "2024-07-16T13:00:00.000Z"})


def test_a_state_round_trips_through_the_position() -> None:
    """What is encoded comes back: clock, run number, baseline flag, every issue's data."""
    state = State(stamp=T0, seq=41, baselined=True,
                  issues={t: _known(t) for t in (55501, 55502, 7)})

    back = decode(encode(state))

    assert back.stamp == T0 and back.seq == 41 and back.baselined is True
    assert back.issues == state.issues
    assert {t: k.alert for t, k in back.issues.items()} == \
        {t: k.alert for t, k in state.issues.items()}


def test_positions_sort_in_run_order_whatever_the_issues() -> None:
    """The hub refuses a cursor that goes back: the prefix orders runs, not the payload."""
    big = {t: _known(t) for t in range(1, 300)}
    runs = [State(T0, 1, True, big), State(T0, 2, True, {}),
            State(T0 + timedelta(seconds=1), 3, True, big), State(T0 + timedelta(days=1), 4,
                                                                   True, {})]

    positions = [encode(s) for s in runs]

    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)


def test_a_large_active_set_stays_small() -> None:
    """Thousands of remembered issues compress to a cursor the database holds easily."""
    state = State(T0, 1, True, {t: _known(t, 100 + t % 40) for t in range(5000)})

    assert len(encode(state)) < 200_000


@pytest.mark.parametrize("position", [
    "2024-07-16T14:00:00.000Z",
    "2024-07-16T14:00:00.000Z~12~",
    "2024-07-16T14:00:00.000Z~x~abc",
    "not-a-time~0000000001~eNqrVkpSsjI0MtBRSlayijYxMNBRSlOyio0FAFRdBQs",
    "2024-07-16T14:00:00.000Z~0000000001~!!!!",
])
def test_damaged_positions_are_refused(position: str) -> None:
    """A position that is not ours (or was damaged) raises instead of forgetting issues."""
    with pytest.raises(MalformedPayload):
        decode(position)


def test_gone_from_a_complete_listing_is_resolved() -> None:
    """Listed before, not now, and its org unit was read completely: resolved."""
    previous = {1: _known(1), 2: _known(2)}

    outcome = reconcile(previous, {2: previous[2]}, complete={100}, existing={100})

    assert [k.task for k in outcome.resolved] == [1]
    assert set(outcome.remembered) == {2}


def test_an_incomplete_or_failed_listing_resolves_nothing() -> None:
    """A truncated page or a failed org unit carries every remembered issue over."""
    previous = {1: _known(1, 100), 2: _known(2, 200), 3: _known(3, 200)}

    outcome = reconcile(previous, {}, complete={100}, existing={100, 200})

    assert [k.task for k in outcome.resolved] == [1]
    assert [k.task for k in outcome.carried] == [2, 3]
    assert set(outcome.remembered) == {2, 3}


def test_a_vanished_org_unit_is_forgotten_without_events() -> None:
    """A deleted customer's issues were never seen clearing: dropped, not resolved."""
    previous = {1: _known(1, 300)}

    outcome = reconcile(previous, {}, complete={100}, existing={100})

    assert outcome.resolved == [] and outcome.remembered == {}
    assert [k.task for k in outcome.dropped] == [1]


def test_unknown_existence_keeps_what_was_not_read() -> None:
    """When the customer listing itself was incomplete, nothing is dropped."""
    previous = {1: _known(1, 300)}

    outcome = reconcile(previous, {}, complete=set(), existing=None)

    assert set(outcome.remembered) == {1} and outcome.dropped == []
