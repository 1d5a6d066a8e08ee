from __future__ import annotations

from aiodicom.ul.items import AsyncOperationsWindow, PresentationContextRQ, RoleSelection
from aiodicom.ul.negotiation import (
    ContextPolicy,
    accept,
    accepted_contexts,
    check_request,
    propose_contexts,
    user_information,
)
from aiodicom.ul.pdu import AAssociateRJ, AAssociateRQ

CT, MR, VERIFICATION = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.1.1"
IMPLICIT, EXPLICIT, JPEG = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50"


def request(
    *contexts: PresentationContextRQ, roles: tuple[RoleSelection, ...] = (), window: bool = False
) -> AAssociateRQ:
    ui = user_information(
        16384, role_selections=roles, async_ops_window=AsyncOperationsWindow(5, 5) if window else None
    )
    return AAssociateRQ("SCP", "SCU", contexts, ui)


def test_acceptor_picks_per_context_by_its_own_preference() -> None:
    rq = request(*propose_contexts([(CT, (IMPLICIT, EXPLICIT)), (MR, (JPEG,)), (VERIFICATION, (IMPLICIT,))]))
    policy = ContextPolicy(abstract_syntaxes=frozenset({CT, MR}), transfer_syntaxes=(EXPLICIT, IMPLICIT))
    ac, accepted = accept(rq, policy, max_pdu_length=32768)
    results = [(pc.context_id, pc.result, pc.transfer_syntax) for pc in ac.presentation_contexts]
    assert results == [(1, 0, EXPLICIT), (3, 4, None), (5, 0, IMPLICIT)]  # Verification always accepted
    assert set(accepted) == {1, 5}
    assert ac.user_information.max_length == 32768 and ac.user_information.async_ops_window is None
    assert accepted_contexts(rq, ac) == accepted


def test_any_transfer_syntax_takes_the_requestors_first_and_unknown_abstract_is_refused() -> None:
    rq = request(*propose_contexts([(CT, (JPEG, EXPLICIT)), ("1.2.3.4", (IMPLICIT,))]))
    ac, _ = accept(rq, ContextPolicy(abstract_syntaxes=frozenset({CT})), max_pdu_length=0)
    assert [(pc.result, pc.transfer_syntax) for pc in ac.presentation_contexts] == [(0, JPEG), (3, None)]


def test_roles_and_async_operations() -> None:
    roles = (RoleSelection(CT, False, True), RoleSelection(MR, True, True))
    rq = request(*propose_contexts([(CT, (IMPLICIT,)), (MR, (IMPLICIT,))]), roles=roles, window=True)
    ac, accepted = accept(rq, ContextPolicy(scp_role_classes=frozenset({CT})), max_pdu_length=16384)
    assert ac.user_information.role_selections == (
        RoleSelection(CT, False, True),
        RoleSelection(MR, True, False),
    )
    assert ac.user_information.async_ops_window == AsyncOperationsWindow(1, 1)  # no asynchronous operations
    assert (accepted[1].scu_role, accepted[1].scp_role) == (False, True)
    assert (accepted[3].scu_role, accepted[3].scp_role) == (True, False)


def test_service_user_checks() -> None:
    rq = request(*propose_contexts([(CT, (IMPLICIT,))]))
    assert check_request(rq, ae_title="SCP", require_called_ae_title=True) is None
    assert check_request(rq, ae_title="OTHER", require_called_ae_title=True) == AAssociateRJ(1, 1, 7)
    assert check_request(rq, ae_title="X", allowed_calling_ae_titles={"A"}) == AAssociateRJ(1, 1, 3)
