"""The retrieve tally, without a peer: how C-GET and C-MOVE responses and the sub-operations answered here
become the counts, the status, ``cancelled`` and ``matched`` of a retrieve's result.

A C-MOVE knows only what the peer's responses say; a C-GET answers every sub-operation itself, so what it
answered is what completed (a peer's count may leave out an instance sent after a C-CANCEL), while the
peer alone knows what failed before reaching it.
"""

from __future__ import annotations

import pytest

from aiodicom.dimse import Command
from aiodicom.services.retrieve import RetrieveResult, SubOperation, Tally, no_match, worse_status

MOVE_SOP_CLASS = "1.2.840.10008.5.1.4.1.2.2.2"
GET_SOP_CLASS = "1.2.840.10008.5.1.4.1.2.2.3"
MOVE_RQ = Command.c_move_rq(1, MOVE_SOP_CLASS, "DEST")
GET_RQ = Command.c_get_rq(1, GET_SOP_CLASS)

PENDING, SUCCESS, WARNING, FAILED, CANCELLED = 0xFF00, 0x0000, 0xB000, 0xA702, 0xFE00


def move_rsp(status: int, remaining: int | None, completed: int, failed: int, warning: int) -> Command:
    return Command.c_move_rsp(MOVE_RQ, status, remaining, completed, failed, warning)


def get_rsp(status: int, remaining: int | None, completed: int, failed: int, warning: int) -> Command:
    return Command.c_get_rsp(GET_RQ, status, remaining, completed, failed, warning)


def counts(tally: Tally) -> tuple[int, int, int]:
    r = tally.result
    return r.completed, r.failed, r.warning


def test_a_move_counts_what_the_peer_says() -> None:
    tally = Tally(3)
    assert tally.remaining == 3 and tally.done == 0
    tally.response(move_rsp(PENDING, 2, 1, 0, 0))
    assert counts(tally) == (1, 0, 0) and tally.remaining == 2
    tally.response(move_rsp(PENDING, 1, 1, 1, 0))
    assert counts(tally) == (1, 1, 0) and tally.remaining == 1
    tally.response(move_rsp(WARNING, 0, 1, 1, 1))
    completed = tally.finish(WARNING)
    assert counts(tally) == (1, 1, 1)
    assert (completed.total, completed.completed, completed.failed, completed.warning) == (3, 1, 1, 1)
    assert completed.status == WARNING and tally.result.status == WARNING
    assert not completed.cancelled and completed.matched
    assert tally.result.total == 3 and tally.remaining == 0
    assert completed.duration_seconds >= 0
    assert completed.message.startswith("1 completed, 1 with warnings, 1 failed of 3 in ")
    assert tally.result.message == "1 completed, 1 with warnings, 1 failed of 3 (status 0xB000)"
    assert not tally.result.refused


def test_a_response_without_every_count_changes_no_count() -> None:
    tally = Tally(4)
    tally.response(move_rsp(PENDING, 3, 1, 0, 0))
    tally.response(Command.c_move_rsp(MOVE_RQ, PENDING, remaining=2))  # counts left out: optional in pending
    assert counts(tally) == (1, 0, 0)
    assert tally.remaining == 2


def test_a_get_counts_what_it_answered_and_the_peers_failures() -> None:
    tally = Tally(4, receiving=True)
    tally.stored(SUCCESS)
    tally.stored(0xB007)  # a warning status (coercion of data elements)
    tally.stored(0xA700)  # a failure answered here (out of resources)
    assert counts(tally) == (1, 1, 1) and tally.done == 3
    # the peer says 3 completed (one it sent after a cancel, which never reached us) and 2 failed (one
    # failed before it reached us): completed and warnings are ours, failures the larger figure
    tally.response(get_rsp(CANCELLED, None, 3, 2, 0))
    assert counts(tally) == (1, 2, 1)
    completed = tally.finish(CANCELLED, cancelled=True)
    assert completed.cancelled and completed.status == CANCELLED
    assert (completed.total, completed.completed, completed.failed, completed.warning) == (4, 1, 2, 1)
    assert tally.result.cancelled
    assert completed.message.endswith(" s (cancelled)")
    assert tally.result.message.endswith("(status 0xFE00, cancelled)")
    assert not tally.result.refused  # a cancelled retrieve is not a refusal


def test_a_move_takes_the_larger_of_answered_and_reported() -> None:
    tally = Tally(2)
    tally.stored(SUCCESS)  # MoveScu's own receiver stored one before the peer's response said so
    assert counts(tally) == (1, 0, 0)
    tally.response(move_rsp(PENDING, 1, 0, 0, 0))
    assert counts(tally) == (1, 0, 0)
    tally.response(move_rsp(SUCCESS, 0, 2, 0, 0))
    assert counts(tally) == (2, 0, 0)


def test_remaining_counts_down_from_the_peers_latest_figure() -> None:
    tally = Tally(5, receiving=True)
    assert tally.remaining == 5  # nothing said yet: what the survey expects
    tally.stored(SUCCESS)
    assert tally.remaining == 4
    tally.response(get_rsp(PENDING, 2, 1, 0, 0))
    assert tally.remaining == 2
    tally.stored(SUCCESS)
    assert tally.remaining == 1  # answered since the peer last said how many remain
    tally.stored(SUCCESS)
    tally.stored(SUCCESS)
    assert tally.remaining == 0  # never below zero
    tally.response(get_rsp(PENDING, 3, 4, 0, 0))
    assert tally.remaining == 3


def test_remaining_without_an_expectation_is_zero() -> None:
    tally = Tally()
    tally.stored(SUCCESS)
    assert tally.remaining == 0 and tally.done == 1


def test_the_counts_of_several_requests_add_up() -> None:
    tally = Tally(5, receiving=True)
    tally.begin()
    tally.stored(SUCCESS)
    tally.stored(SUCCESS)
    tally.response(get_rsp(SUCCESS, 0, 2, 0, 0))
    tally.begin()  # the next series, another C-GET of the same retrieve
    tally.stored(SUCCESS)
    tally.response(get_rsp(PENDING, 1, 1, 0, 0))
    assert counts(tally) == (3, 0, 0)
    tally.response(get_rsp(WARNING, 0, 1, 2, 0))
    assert counts(tally) == (3, 2, 0)
    assert tally.finish(WARNING).total == 5


def test_asking_again_counts_what_arrives_and_not_the_same_failures_twice() -> None:
    tally = Tally(3, receiving=True)
    tally.begin()
    tally.stored(SUCCESS)
    tally.response(get_rsp(WARNING, 0, 1, 2, 0))
    assert counts(tally) == (1, 2, 0)
    tally.begin(again=True)  # ask again for the two that failed
    tally.stored(SUCCESS)
    tally.response(get_rsp(WARNING, 0, 1, 1, 0))  # one came, one failed again
    assert counts(tally) == (2, 2, 0)  # the failure of the one that failed again was counted already
    tally.recovered(1)  # the one that came had been counted as failed
    assert counts(tally) == (2, 1, 0)
    tally.recovered(5)
    assert counts(tally) == (2, 0, 0)  # never below zero
    completed = tally.finish(SUCCESS)
    assert completed.total == 2 and completed.status == SUCCESS


def test_a_retrieve_with_no_final_response() -> None:
    tally = Tally(2, receiving=True)
    tally.stored(SUCCESS)
    completed = tally.finish(None, cancelled=True)
    assert completed.status is None  # none came: the task was cancelled and had to abort
    assert tally.result.status == CANCELLED
    assert completed.cancelled and completed.completed == 1 and completed.total == 1


def test_progress_events_carry_the_counts_so_far() -> None:
    tally = Tally(3, receiving=True)
    tally.stored(SUCCESS)
    event = tally.event(file="/out/1.dcm", sop_instance_uid="1.2.3")
    assert event == SubOperation(2, 1, 0, 0, file="/out/1.dcm", sop_instance_uid="1.2.3")
    assert event.total == 3
    assert event.message == "1/3 sub-operations: /out/1.dcm"
    forwarded = tally.event(
        sop_instance_uid="1.2.4", forwarded_to="DEST@127.0.0.1:1", forward_error="refused"
    )
    assert forwarded.message == "1/3 sub-operations: 1.2.4 (forward to DEST@127.0.0.1:1 failed: refused)"
    assert tally.event().message == "1/3 sub-operations"


def test_nothing_matched() -> None:
    result, completed = no_match()
    assert not result.matched and not completed.matched
    assert (result.total, result.completed, result.failed, result.warning) == (0, 0, 0, 0)
    assert result.message == completed.message == "nothing matches the query: no retrieve was sent"
    assert not result.refused and result.status == 0 and not result.cancelled


@pytest.mark.parametrize(
    ("status", "completed", "warning", "cancelled", "refused"),
    [
        (0xC000, 0, 0, False, True),  # failed, nothing came: the retrieve itself was refused
        (0xA701, 0, 0, False, True),  # out of resources: unable to calculate number of matches
        (0xA702, 0, 0, False, False),  # unable to perform sub-operations: the counts report them
        (0xFE00, 0, 0, False, False),  # cancelled
        (0xC000, 0, 0, True, False),  # a C-CANCEL was sent
        (0xC000, 1, 0, False, False),  # something came
        (0xC000, 0, 1, False, False),  # something came, with a warning
        (0xB000, 0, 0, False, False),  # a warning is not a failure
        (0x0000, 0, 0, False, False),
    ],
)
def test_refused(status: int, completed: int, warning: int, cancelled: bool, refused: bool) -> None:
    result = RetrieveResult(status=status, completed=completed, warning=warning, cancelled=cancelled)
    assert result.refused is refused


def test_status_names() -> None:
    assert RetrieveResult(status=0xFE00).status_name == "Cancel"
    assert RetrieveResult().status_name == "Success"


@pytest.mark.parametrize(
    ("first", "second", "worse"),
    [
        (SUCCESS, SUCCESS, SUCCESS),
        (SUCCESS, WARNING, WARNING),
        (WARNING, SUCCESS, WARNING),
        (WARNING, 0xA702, 0xA702),
        (0xC000, WARNING, 0xC000),
        (0xC000, 0xA702, 0xA702),  # of two failures, the later
        (0xC000, CANCELLED, CANCELLED),
        (CANCELLED, 0xC000, CANCELLED),  # a cancel outranks everything
        (CANCELLED, SUCCESS, CANCELLED),
    ],
)
def test_the_status_of_several_requests_is_the_worst(first: int, second: int, worse: int) -> None:
    assert worse_status(first, second) == worse
