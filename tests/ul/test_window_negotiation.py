"""The asynchronous operations window (PS3.7 D.3.3.3): what an acceptor grants, what a requestor uses."""

from __future__ import annotations

import pytest

from aiodicom.ul.items import AsyncOperationsWindow as W
from aiodicom.ul.negotiation import (
    ContextPolicy,
    accept,
    grant_window,
    negotiated_window,
    propose_contexts,
    user_information,
)
from aiodicom.ul.pdu import AAssociateRQ

CT, EXPLICIT = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1"


@pytest.mark.parametrize(
    ("proposed", "ours", "granted"),
    [
        (None, 8, None),  # not in the request: omitted from the response
        (W(16, 1), 8, W(8, 1)),  # negotiated down to what we perform
        (W(4, 1), 8, W(4, 1)),  # never more than offered
        (W(0, 1), 8, W(8, 1)),  # unlimited offered: we give a number
        (W(5, 1), 0, W(5, 1)),  # we take any number: what was offered
        (W(0, 0), 0, W(0, 1)),  # both unlimited; we invoke nothing on the requestor: 1 performed
        (W(8, 8), 1, W(1, 1)),  # one at a time is answered 1, 1 (Figure D.3-6), not omitted
    ],
)
def test_grant_window(proposed: W | None, ours: int, granted: W | None) -> None:
    assert grant_window(proposed, ours) == granted


def test_accept_answers_the_window_granted() -> None:
    contexts = propose_contexts([(CT, (EXPLICIT,))])
    rq = AAssociateRQ("SCP", "SCU", contexts, user_information(16384, async_ops_window=W(12, 1)))
    ac, _ = accept(rq, ContextPolicy(), max_pdu_length=16384, max_ops_performed=8)
    assert ac.user_information.async_ops_window == W(8, 1)
    ac, _ = accept(rq, ContextPolicy(), max_pdu_length=16384)  # default: synchronous
    assert ac.user_information.async_ops_window == W(1, 1)
    plain = AAssociateRQ("SCP", "SCU", contexts, user_information(16384))
    ac, _ = accept(plain, ContextPolicy(), max_pdu_length=16384, max_ops_performed=8)
    assert ac.user_information.async_ops_window is None


@pytest.mark.parametrize(
    ("proposed", "granted", "window"),
    [
        (W(8, 1), W(8, 1), 8),
        (W(8, 1), W(3, 1), 3),  # the grant
        (W(8, 1), W(20, 1), 8),  # capped at our proposal (a grant above it is the peer's mistake)
        (W(8, 1), W(0, 1), 8),  # 0 = unlimited: still capped at our proposal
        (W(8, 1), W(1, 1), 1),
        (W(8, 1), None, 1),  # no sub-item answered (DCMTK): synchronous
        (None, W(8, 1), 1),  # none proposed: whatever comes back, one at a time
        (W(0, 1), W(0, 1), 1),  # nothing bounds it: kept at one
    ],
)
def test_negotiated_window(proposed: W | None, granted: W | None, window: int) -> None:
    assert negotiated_window(proposed, granted) == window
