"""Association negotiation as pure functions (PS3.8 9.3, PS3.7 Annex D.3.3).

The acceptor builds its A-ASSOCIATE-AC from the request and a :class:`ContextPolicy`; the requestor reads the
accepted contexts back from the AC. Nothing here does I/O: both sides call these and then send.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from aiodicom.uids import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    IMPLICIT_VR_LITTLE_ENDIAN,
    TRANSFER_SYNTAXES,
    UNCOMPRESSED_TRANSFER_SYNTAXES,
    VERIFICATION_SOP_CLASS,
)
from aiodicom.ul.items import (
    DICOM_APPLICATION_CONTEXT,
    AsyncOperationsWindow,
    PresentationContextAC,
    PresentationContextResult,
    PresentationContextRQ,
    RoleSelection,
    UserIdentityAC,
    UserInformation,
)
from aiodicom.ul.pdu import AAssociateAC, AAssociateRJ, AAssociateRQ

__all__ = [
    "EXPLICIT_VR_BIG_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "UNCOMPRESSED_TRANSFER_SYNTAXES",
    "VERIFICATION_SOP_CLASS",
    "AcceptedContext",
    "ContextPolicy",
    "accept",
    "accepted_contexts",
    "check_request",
    "grant_window",
    "negotiated_max_pdu",
    "negotiated_window",
    "propose_contexts",
    "user_information",
]

#: The longest value a user-information item can carry (its length field is 16 bits).
_USER_INFORMATION_MAX = 0xFFFF

#: A-ASSOCIATE-RJ values (PS3.8 Table 9-21)
REJECTED_PERMANENT = 1
REJECTED_TRANSIENT = 2
SOURCE_SERVICE_USER = 1
SOURCE_ACSE = 2
SOURCE_PRESENTATION = 3
REASON_NO_REASON = 1
REASON_APPLICATION_CONTEXT_NOT_SUPPORTED = 2
REASON_CALLING_AE_NOT_RECOGNIZED = 3
REASON_CALLED_AE_NOT_RECOGNIZED = 7
REASON_LOCAL_LIMIT_EXCEEDED = 2  # with SOURCE_PRESENTATION


@dataclass(frozen=True, slots=True)
class AcceptedContext:
    """An accepted presentation context and the roles negotiated for its SOP class.

    ``scu_role`` / ``scp_role`` are the association requestor's roles: by default (no role selection) the
    requestor is SCU only. A C-GET requestor needs ``scp_role`` to receive its C-STORE sub-operations.
    """

    context_id: int
    abstract_syntax: str
    transfer_syntax: str
    scu_role: bool = True
    scp_role: bool = False


@dataclass(frozen=True, slots=True)
class ContextPolicy:
    """What an acceptor accepts.

    ``abstract_syntaxes``: None = any. ``transfer_syntaxes``: in our preference order; None = any transfer
    syntax that DICOM defines (PS3.6 Table A-1), taking the requestor's first such proposal. A private
    transfer syntax is accepted only when listed, in ``transfer_syntaxes`` or ``extra_transfer_syntaxes``
    (accepted in any mode, after the others). Role selection (PS3.7 D.3.3.4): the requestor may act as
    SCU of ``scu_role_classes`` (None = any) and as SCP of ``scp_role_classes`` (None = any).
    """

    abstract_syntaxes: frozenset[str] | None = None
    transfer_syntaxes: tuple[str, ...] | None = None
    scp_role_classes: frozenset[str] | None = frozenset()
    scu_role_classes: frozenset[str] | None = None
    extra_transfer_syntaxes: tuple[str, ...] = ()

    def choose(self, proposed: PresentationContextRQ) -> PresentationContextAC:
        """The acceptor's answer for one proposed context (PS3.8 9.3.3.2)."""
        cid = proposed.context_id
        if proposed.abstract_syntax != VERIFICATION_SOP_CLASS and (
            self.abstract_syntaxes is not None and proposed.abstract_syntax not in self.abstract_syntaxes
        ):
            return PresentationContextAC(cid, PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED, None)
        ours = self.transfer_syntaxes
        if proposed.abstract_syntax == VERIFICATION_SOP_CLASS and ours is not None:
            ours = ours + tuple(ts for ts in UNCOMPRESSED_TRANSFER_SYNTAXES if ts not in ours)
        if ours is None:
            for ts in proposed.transfer_syntaxes:
                if ts in TRANSFER_SYNTAXES or ts in self.extra_transfer_syntaxes:
                    return PresentationContextAC(cid, PresentationContextResult.ACCEPTANCE, ts)
        else:
            for ts in ours + self.extra_transfer_syntaxes:
                if ts in proposed.transfer_syntaxes:
                    return PresentationContextAC(cid, PresentationContextResult.ACCEPTANCE, ts)
        return PresentationContextAC(cid, PresentationContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED, None)

    def roles(self, proposed: RoleSelection) -> RoleSelection:
        """The roles granted for a proposed role selection: 1 for each one granted, 0 for each turned down."""
        uid = proposed.sop_class_uid
        scu = proposed.scu_role and (self.scu_role_classes is None or uid in self.scu_role_classes)
        scp = proposed.scp_role and (self.scp_role_classes is None or uid in self.scp_role_classes)
        return RoleSelection(uid, scu, scp)


def user_information(
    max_pdu_length: int,
    *,
    role_selections: Iterable[RoleSelection] = (),
    async_ops_window: AsyncOperationsWindow | None = None,
    user_identity: object = None,
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
    implementation_version_name: str = IMPLEMENTATION_VERSION_NAME,
) -> UserInformation:
    """The user-information item we send: maximum length and our implementation identification always
    (ours by default; the caller validates others, see ``aiodicom.net.address.validate_implementation``)."""
    return UserInformation.build(
        max_length=max_pdu_length,
        implementation_class_uid=implementation_class_uid,
        implementation_version_name=implementation_version_name,
        async_ops_window=async_ops_window,
        role_selections=tuple(role_selections),
        user_identity=user_identity,  # type: ignore[arg-type]
    )


def propose_contexts(
    syntaxes: Iterable[tuple[str, Sequence[str]]], first_id: int = 1
) -> tuple[PresentationContextRQ, ...]:
    """Number ``(abstract syntax, transfer syntaxes)`` pairs as contexts 1, 3, 5... (at most 128)."""
    contexts = tuple(
        PresentationContextRQ(first_id + 2 * i, abstract, tuple(transfer))
        for i, (abstract, transfer) in enumerate(syntaxes)
    )
    if contexts and contexts[-1].context_id > 255:
        raise ValueError(f"{len(contexts)} presentation contexts proposed; one association holds at most 128")
    return contexts


def accept(
    rq: AAssociateRQ,
    policy: ContextPolicy,
    *,
    max_pdu_length: int,
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
    implementation_version_name: str = IMPLEMENTATION_VERSION_NAME,
    user_identity_response: bytes | None = None,
    max_ops_performed: int = 1,
) -> tuple[AAssociateAC, dict[int, AcceptedContext]]:
    """The acceptor's A-ASSOCIATE-AC for ``rq`` and the contexts it accepted, by context ID.

    ``max_ops_performed``: how many operations we perform asynchronously (0: any number); the window
    granted is :func:`grant_window`'s. ``user_identity_response`` (bytes, possibly empty) is sent as the
    user identity server response (PS3.7 D.3.3.7.2): give it only when the identity was accepted and a
    positive response was requested.

    Role selection is answered per SOP class; a SOP class for which the requestor would be left with no
    role has every context of its abstract syntax rejected (user rejection). When the answers would not
    fit the user-information item (a request can fill it legally), the role answers that do not fit are
    left out: the default roles then apply to those SOP classes.
    """
    proposed_roles = {r.sop_class_uid: r for r in rq.user_information.role_selections}
    role_answers = [policy.roles(role) for role in proposed_roles.values()]
    no_role = {r.sop_class_uid for r in role_answers if not r.scu_role and not r.scp_role}
    answers = tuple(
        PresentationContextAC(pc.context_id, PresentationContextResult.USER_REJECTION, None)
        if pc.abstract_syntax in no_role
        else policy.choose(pc)
        for pc in rq.presentation_contexts
    )
    window = grant_window(rq.user_information.async_ops_window, max_ops_performed)
    identity = None if user_identity_response is None else UserIdentityAC(user_identity_response)

    def info(roles: Sequence[RoleSelection]) -> UserInformation:
        return user_information(
            max_pdu_length,
            role_selections=roles,
            async_ops_window=window,
            implementation_class_uid=implementation_class_uid,
            implementation_version_name=implementation_version_name,
            user_identity=identity,
        )

    fixed = _encoded_length(info(()))
    room, kept = _USER_INFORMATION_MAX - fixed, 0
    for answer in role_answers:
        room -= 8 + len(answer.sop_class_uid)  # sub-item header, UID length, the UID, two role bytes
        if room < 0:
            break
        kept += 1
    role_answers = role_answers[:kept]
    ac = AAssociateAC(rq.called_ae_title, rq.calling_ae_title, answers, info(role_answers))
    replied = {r.sop_class_uid: r for r in role_answers}
    abstract = {pc.context_id: pc.abstract_syntax for pc in rq.presentation_contexts}
    return ac, _accepted(answers, abstract, replied, proposed_roles)


def _window_limit(offered: int, ours: int) -> int:
    """The smaller of two window sizes where 0 is unlimited."""
    if offered == 0 or ours == 0:
        return max(offered, ours)
    return min(offered, ours)


def grant_window(
    proposed: AsyncOperationsWindow | None, max_ops_performed: int
) -> AsyncOperationsWindow | None:
    """The acceptor's asynchronous operations window (PS3.7 D.3.3.3): None when none was proposed (the
    sub-item is then omitted); otherwise the operations the requestor may invoke at once, at most what it
    offered and what we perform (0 on both sides: unlimited), and 1 for those it performs: this acceptor
    invokes nothing asynchronously on the requestor. Granting 1, 1 still answers the sub-item (Figure D.3-6).
    """
    if proposed is None:
        return None
    return AsyncOperationsWindow(_window_limit(proposed.max_invoked, max_ops_performed), 1)


def negotiated_window(proposed: AsyncOperationsWindow | None, granted: AsyncOperationsWindow | None) -> int:
    """The requestor's window: how many operations it may have outstanding at once (at least 1).

    No sub-item proposed or none answered is 1 (synchronous, the default). What the acceptor granted is
    capped at what we proposed, a grant of 0 (unlimited) included; a proposal of 0 with a grant of 0 would
    be unbounded and is kept at 1 here: a sender proposes a number.
    """
    if proposed is None or granted is None:
        return 1
    if granted.max_invoked == 0:
        return max(proposed.max_invoked, 1)
    if proposed.max_invoked == 0:
        return granted.max_invoked
    return max(min(proposed.max_invoked, granted.max_invoked), 1)


def _encoded_length(info: UserInformation) -> int:
    out = bytearray()
    info.encode(out)
    return len(out) - 4


def accepted_contexts(rq: AAssociateRQ, ac: AAssociateAC) -> dict[int, AcceptedContext]:
    """The requestor's view of an A-ASSOCIATE-AC: the accepted contexts with their negotiated roles.

    Context results for IDs that were never proposed are ignored.
    """
    abstract = {pc.context_id: pc.abstract_syntax for pc in rq.presentation_contexts}
    proposed_roles = {r.sop_class_uid: r for r in rq.user_information.role_selections}
    replied = {r.sop_class_uid: r for r in ac.user_information.role_selections}
    return _accepted(ac.presentation_contexts, abstract, replied, proposed_roles)


def _accepted(
    answers: Iterable[PresentationContextAC],
    abstract: dict[int, str],
    replied: dict[str, RoleSelection],
    proposed: dict[str, RoleSelection],
) -> dict[int, AcceptedContext]:
    result: dict[int, AcceptedContext] = {}
    for answer in answers:
        if not answer.accepted or answer.transfer_syntax is None or answer.context_id not in abstract:
            continue
        uid = abstract[answer.context_id]
        scu, scp = True, False  # default roles (PS3.7 D.3.3.4)
        if uid in proposed and uid in replied:
            scu = proposed[uid].scu_role and replied[uid].scu_role
            scp = proposed[uid].scp_role and replied[uid].scp_role
        result[answer.context_id] = AcceptedContext(answer.context_id, uid, answer.transfer_syntax, scu, scp)
    return result


def negotiated_max_pdu(peer_user_information: UserInformation) -> int:
    """The peer's maximum P-DATA-TF length; 0 (or absent) means no limit."""
    return peer_user_information.max_length or 0


def check_request(
    rq: AAssociateRQ,
    *,
    ae_title: str,
    require_called_ae_title: bool = False,
    allowed_calling_ae_titles: Collection[str] | None = None,
) -> AAssociateRJ | None:
    """The service-user checks of an A-ASSOCIATE-RQ: an A-ASSOCIATE-RJ to send, or None to go on.

    A request without any presentation context cannot be served: rejected permanently, no reason given.
    """
    if not rq.presentation_contexts:
        return AAssociateRJ(REJECTED_PERMANENT, SOURCE_SERVICE_USER, REASON_NO_REASON)
    if rq.application_context_name != DICOM_APPLICATION_CONTEXT:
        return AAssociateRJ(REJECTED_PERMANENT, SOURCE_SERVICE_USER, REASON_APPLICATION_CONTEXT_NOT_SUPPORTED)
    if require_called_ae_title and rq.called_ae_title != ae_title:
        return AAssociateRJ(REJECTED_PERMANENT, SOURCE_SERVICE_USER, REASON_CALLED_AE_NOT_RECOGNIZED)
    if allowed_calling_ae_titles is not None and rq.calling_ae_title not in allowed_calling_ae_titles:
        return AAssociateRJ(REJECTED_PERMANENT, SOURCE_SERVICE_USER, REASON_CALLING_AE_NOT_RECOGNIZED)
    return None
