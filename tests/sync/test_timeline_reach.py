"""How far before a join a timeline read from scratch goes: the run of joins of a
membership history, and the reach the history visibility at the join allows."""

from __future__ import annotations

import pytest

from homeserver.sync.memberships import JoinRun, RoomMemberships
from homeserver.sync.timelines import Reach, reach_before_join
from storage.sync import MembershipRow


def _history(*memberships: tuple[str, int]) -> RoomMemberships:
    rows = [MembershipRow("!r", f"${stream}", m, stream) for m, stream in memberships]
    return RoomMemberships("!r", rows)


def test_join_run_of_a_plain_join() -> None:
    run = _history(("join", 10), ("join", 12)).join_run(20)
    assert run is not None
    assert (run.first.stream, run.floor, run.invited, run.earlier) == (10, 9, None, frozenset())


def test_join_run_after_invites_and_earlier_memberships() -> None:
    history = _history(
        ("invite", 3), ("leave", 4), ("invite", 7), ("invite", 8), ("join", 10), ("leave", 15)
    )
    run = history.join_run(20)  # left by then: the run just before leaving
    assert run is not None
    assert run.first.stream == 10
    assert run.invited is not None and run.invited.stream == 7
    assert run.earlier == {"invite", "leave"}
    assert history.join_run(9) is None  # only invited at 9


def test_no_join_run_without_a_join() -> None:
    assert _history(("invite", 3), ("leave", 4)).join_run(10) is None
    assert _history(("knock", 3)).join_run(10) is None


def _run(invited: int | None = None, earlier: frozenset[str] = frozenset()) -> JoinRun:
    invite = None if invited is None else MembershipRow("!r", "$i", "invite", invited)
    return JoinRun(MembershipRow("!r", "$j", "join", 10), invite, earlier)


@pytest.mark.parametrize("visibility", [None, "shared", "world_readable"])
def test_readable_history_is_read_without_checks(visibility: str | None) -> None:
    assert reach_before_join(_run(), visibility, changed=False) == Reach(0, None)


def test_joined_stops_at_the_join_unless_joined_before() -> None:
    assert reach_before_join(_run(), "joined", changed=False) == Reach(9, None)
    assert reach_before_join(_run(invited=5), "joined", changed=False) == Reach(9, None)
    again = _run(earlier=frozenset({"join", "leave"}))
    assert reach_before_join(again, "joined", changed=False) == Reach(0, 9)


def test_invited_reaches_back_to_the_invite() -> None:
    assert reach_before_join(_run(), "invited", changed=False) == Reach(9, None)
    assert reach_before_join(_run(invited=5), "invited", changed=False) == Reach(4, None)
    earlier = _run(invited=5, earlier=frozenset({"invite", "leave"}))
    assert reach_before_join(earlier, "invited", changed=False) == Reach(0, 9)


@pytest.mark.parametrize("visibility", ["shared", "joined", "invited", "world_readable"])
def test_a_changed_visibility_is_checked_event_by_event(visibility: str) -> None:
    assert reach_before_join(_run(), visibility, changed=True) == Reach(0, 9)
