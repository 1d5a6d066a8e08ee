"""The DICOM upper layer state machine of PS3.8 section 9.2, as data: Table 9-10 and Tables 9-1 to 9-9.

:data:`TRANSITIONS` holds exactly the 123 cells that Table 9-10 fills in, keyed by (state, event), and
:data:`NEXT_STATE` the next state that Tables 9-6 to 9-9 give each action. This module only decides; carrying
out an action (writing a PDU, arming ARTIM, closing the transport) is :mod:`aiodicom.ul.connection`'s job.
"""

from __future__ import annotations

from enum import Enum

from aiodicom.errors import UsageError


class _Fast(Enum):
    """An enum whose members hash by identity: their equality is identity already, and the table's
    lookups, made for every PDU, then skip Enum's hash of the member's name."""

    __hash__ = object.__hash__


class State(_Fast):
    """The 13 states of PS3.8 9.2.1 (Tables 9-1 to 9-5)."""

    STA1 = "Sta1"
    STA2 = "Sta2"
    STA3 = "Sta3"
    STA4 = "Sta4"
    STA5 = "Sta5"
    STA6 = "Sta6"
    STA7 = "Sta7"
    STA8 = "Sta8"
    STA9 = "Sta9"
    STA10 = "Sta10"
    STA11 = "Sta11"
    STA12 = "Sta12"
    STA13 = "Sta13"

    @property
    def description(self) -> str:
        return _STATE_TEXT[self]


class Event(_Fast):
    """The 19 events, the rows of PS3.8 Table 9-10."""

    EVT1 = "Evt1"
    EVT2 = "Evt2"
    EVT3 = "Evt3"
    EVT4 = "Evt4"
    EVT5 = "Evt5"
    EVT6 = "Evt6"
    EVT7 = "Evt7"
    EVT8 = "Evt8"
    EVT9 = "Evt9"
    EVT10 = "Evt10"
    EVT11 = "Evt11"
    EVT12 = "Evt12"
    EVT13 = "Evt13"
    EVT14 = "Evt14"
    EVT15 = "Evt15"
    EVT16 = "Evt16"
    EVT17 = "Evt17"
    EVT18 = "Evt18"
    EVT19 = "Evt19"

    @property
    def description(self) -> str:
        return _EVENT_TEXT[self]


class Action(_Fast):
    """The 28 actions of PS3.8 9.2.2 (Tables 9-6 to 9-9)."""

    AE_1 = "AE-1"
    AE_2 = "AE-2"
    AE_3 = "AE-3"
    AE_4 = "AE-4"
    AE_5 = "AE-5"
    AE_6 = "AE-6"
    AE_7 = "AE-7"
    AE_8 = "AE-8"
    DT_1 = "DT-1"
    DT_2 = "DT-2"
    AR_1 = "AR-1"
    AR_2 = "AR-2"
    AR_3 = "AR-3"
    AR_4 = "AR-4"
    AR_5 = "AR-5"
    AR_6 = "AR-6"
    AR_7 = "AR-7"
    AR_8 = "AR-8"
    AR_9 = "AR-9"
    AR_10 = "AR-10"
    AA_1 = "AA-1"
    AA_2 = "AA-2"
    AA_3 = "AA-3"
    AA_4 = "AA-4"
    AA_5 = "AA-5"
    AA_6 = "AA-6"
    AA_7 = "AA-7"
    AA_8 = "AA-8"

    @property
    def description(self) -> str:
        return _ACTION_TEXT[self]


_STATE_TEXT = {
    State.STA1: "Idle",
    State.STA2: "Transport connection open (awaiting A-ASSOCIATE-RQ PDU)",
    State.STA3: "Awaiting local A-ASSOCIATE response primitive (from local user)",
    State.STA4: "Awaiting transport connection opening to complete (from local transport service)",
    State.STA5: "Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU",
    State.STA6: "Association established and ready for data transfer",
    State.STA7: "Awaiting A-RELEASE-RP PDU",
    State.STA8: "Awaiting local A-RELEASE response primitive (from local user)",
    State.STA9: "Release collision requestor side; awaiting A-RELEASE response (from local user)",
    State.STA10: "Release collision acceptor side; awaiting A-RELEASE-RP PDU",
    State.STA11: "Release collision requestor side; awaiting A-RELEASE-RP PDU",
    State.STA12: "Release collision acceptor side; awaiting A-RELEASE response primitive (from local user)",
    State.STA13: "Awaiting transport connection close indication (association no longer exists)",
}

_EVENT_TEXT = {
    Event.EVT1: "A-ASSOCIATE request (local user)",
    Event.EVT2: "Transport connection confirm (local transport service)",
    Event.EVT3: "A-ASSOCIATE-AC PDU (received on transport connection)",
    Event.EVT4: "A-ASSOCIATE-RJ PDU (received on transport connection)",
    Event.EVT5: "Transport connection indication (local transport service)",
    Event.EVT6: "A-ASSOCIATE-RQ PDU (received on transport connection)",
    Event.EVT7: "A-ASSOCIATE response primitive (accept)",
    Event.EVT8: "A-ASSOCIATE response primitive (reject)",
    Event.EVT9: "P-DATA request primitive",
    Event.EVT10: "P-DATA-TF PDU",
    Event.EVT11: "A-RELEASE request primitive",
    Event.EVT12: "A-RELEASE-RQ PDU (received on open transport connection)",
    Event.EVT13: "A-RELEASE-RP PDU (received on transport connection)",
    Event.EVT14: "A-RELEASE response primitive",
    Event.EVT15: "A-ABORT request primitive",
    Event.EVT16: "A-ABORT PDU (received on open transport connection)",
    Event.EVT17: "Transport connection closed indication (local transport service)",
    Event.EVT18: "ARTIM timer expired (association reject/release timer)",
    Event.EVT19: "Unrecognized or invalid PDU received",
}

_ACTION_TEXT = {
    Action.AE_1: "Issue TRANSPORT CONNECT request primitive to local transport service",
    Action.AE_2: "Send A-ASSOCIATE-RQ PDU",
    Action.AE_3: "Issue A-ASSOCIATE confirmation (accept) primitive",
    Action.AE_4: "Issue A-ASSOCIATE confirmation (reject) primitive and close transport connection",
    Action.AE_5: "Issue transport connection response primitive; start ARTIM timer",
    Action.AE_6: "Stop ARTIM timer; if the A-ASSOCIATE-RQ is acceptable by the service-provider, issue "
    "A-ASSOCIATE indication primitive, otherwise issue A-ASSOCIATE-RJ PDU and start ARTIM timer",
    Action.AE_7: "Send A-ASSOCIATE-AC PDU",
    Action.AE_8: "Send A-ASSOCIATE-RJ PDU and start ARTIM timer",
    Action.DT_1: "Send P-DATA-TF PDU",
    Action.DT_2: "Send P-DATA indication primitive",
    Action.AR_1: "Send A-RELEASE-RQ PDU",
    Action.AR_2: "Issue A-RELEASE indication primitive",
    Action.AR_3: "Issue A-RELEASE confirmation primitive, and close transport connection",
    Action.AR_4: "Issue A-RELEASE-RP PDU and start ARTIM timer",
    Action.AR_5: "Stop ARTIM timer",
    Action.AR_6: "Issue P-DATA indication",
    Action.AR_7: "Issue P-DATA-TF PDU",
    Action.AR_8: "Issue A-RELEASE indication (release collision)",
    Action.AR_9: "Send A-RELEASE-RP PDU",
    Action.AR_10: "Issue A-RELEASE confirmation primitive",
    Action.AA_1: "Send A-ABORT PDU (service-user source) and start (or restart) ARTIM timer",
    Action.AA_2: "Stop ARTIM timer if running; close transport connection",
    Action.AA_3: "Issue A-ABORT (service-user abort) or A-P-ABORT (service-provider abort) indication "
    "and close transport connection",
    Action.AA_4: "Issue A-P-ABORT indication primitive",
    Action.AA_5: "Stop ARTIM timer",
    Action.AA_6: "Ignore PDU",
    Action.AA_7: "Send A-ABORT PDU",
    Action.AA_8: "Send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication, "
    "and start ARTIM timer",
}

S, E, A = State, Event, Action

#: PS3.8 Table 9-10, row by row: (state, event) -> action for the 123 cells the standard fills in.
TRANSITIONS: dict[tuple[State, Event], Action] = {
    # Evt1: A-ASSOCIATE request (local user)
    (S.STA1, E.EVT1): A.AE_1,
    # Evt2: transport connection confirm
    (S.STA4, E.EVT2): A.AE_2,
    # Evt3: A-ASSOCIATE-AC PDU
    (S.STA2, E.EVT3): A.AA_1,
    (S.STA3, E.EVT3): A.AA_8,
    (S.STA5, E.EVT3): A.AE_3,
    (S.STA6, E.EVT3): A.AA_8,
    (S.STA7, E.EVT3): A.AA_8,
    (S.STA8, E.EVT3): A.AA_8,
    (S.STA9, E.EVT3): A.AA_8,
    (S.STA10, E.EVT3): A.AA_8,
    (S.STA11, E.EVT3): A.AA_8,
    (S.STA12, E.EVT3): A.AA_8,
    (S.STA13, E.EVT3): A.AA_6,
    # Evt4: A-ASSOCIATE-RJ PDU
    (S.STA2, E.EVT4): A.AA_1,
    (S.STA3, E.EVT4): A.AA_8,
    (S.STA5, E.EVT4): A.AE_4,
    (S.STA6, E.EVT4): A.AA_8,
    (S.STA7, E.EVT4): A.AA_8,
    (S.STA8, E.EVT4): A.AA_8,
    (S.STA9, E.EVT4): A.AA_8,
    (S.STA10, E.EVT4): A.AA_8,
    (S.STA11, E.EVT4): A.AA_8,
    (S.STA12, E.EVT4): A.AA_8,
    (S.STA13, E.EVT4): A.AA_6,
    # Evt5: transport connection indication
    (S.STA1, E.EVT5): A.AE_5,
    # Evt6: A-ASSOCIATE-RQ PDU
    (S.STA2, E.EVT6): A.AE_6,
    (S.STA3, E.EVT6): A.AA_8,
    (S.STA5, E.EVT6): A.AA_8,
    (S.STA6, E.EVT6): A.AA_8,
    (S.STA7, E.EVT6): A.AA_8,
    (S.STA8, E.EVT6): A.AA_8,
    (S.STA9, E.EVT6): A.AA_8,
    (S.STA10, E.EVT6): A.AA_8,
    (S.STA11, E.EVT6): A.AA_8,
    (S.STA12, E.EVT6): A.AA_8,
    (S.STA13, E.EVT6): A.AA_7,
    # Evt7: A-ASSOCIATE response primitive (accept)
    (S.STA3, E.EVT7): A.AE_7,
    # Evt8: A-ASSOCIATE response primitive (reject)
    (S.STA3, E.EVT8): A.AE_8,
    # Evt9: P-DATA request primitive
    (S.STA6, E.EVT9): A.DT_1,
    (S.STA8, E.EVT9): A.AR_7,
    # Evt10: P-DATA-TF PDU
    (S.STA2, E.EVT10): A.AA_1,
    (S.STA3, E.EVT10): A.AA_8,
    (S.STA5, E.EVT10): A.AA_8,
    (S.STA6, E.EVT10): A.DT_2,
    (S.STA7, E.EVT10): A.AR_6,
    (S.STA8, E.EVT10): A.AA_8,
    (S.STA9, E.EVT10): A.AA_8,
    (S.STA10, E.EVT10): A.AA_8,
    (S.STA11, E.EVT10): A.AA_8,
    (S.STA12, E.EVT10): A.AA_8,
    (S.STA13, E.EVT10): A.AA_6,
    # Evt11: A-RELEASE request primitive
    (S.STA6, E.EVT11): A.AR_1,
    # Evt12: A-RELEASE-RQ PDU
    (S.STA2, E.EVT12): A.AA_1,
    (S.STA3, E.EVT12): A.AA_8,
    (S.STA5, E.EVT12): A.AA_8,
    (S.STA6, E.EVT12): A.AR_2,
    (S.STA7, E.EVT12): A.AR_8,
    (S.STA8, E.EVT12): A.AA_8,
    (S.STA9, E.EVT12): A.AA_8,
    (S.STA10, E.EVT12): A.AA_8,
    (S.STA11, E.EVT12): A.AA_8,
    (S.STA12, E.EVT12): A.AA_8,
    (S.STA13, E.EVT12): A.AA_6,
    # Evt13: A-RELEASE-RP PDU
    (S.STA2, E.EVT13): A.AA_1,
    (S.STA3, E.EVT13): A.AA_8,
    (S.STA5, E.EVT13): A.AA_8,
    (S.STA6, E.EVT13): A.AA_8,
    (S.STA7, E.EVT13): A.AR_3,
    (S.STA8, E.EVT13): A.AA_8,
    (S.STA9, E.EVT13): A.AA_8,
    (S.STA10, E.EVT13): A.AR_10,
    (S.STA11, E.EVT13): A.AR_3,
    (S.STA12, E.EVT13): A.AA_8,
    (S.STA13, E.EVT13): A.AA_6,
    # Evt14: A-RELEASE response primitive
    (S.STA8, E.EVT14): A.AR_4,
    (S.STA9, E.EVT14): A.AR_9,
    (S.STA12, E.EVT14): A.AR_4,
    # Evt15: A-ABORT request primitive
    (S.STA3, E.EVT15): A.AA_1,
    (S.STA4, E.EVT15): A.AA_2,
    (S.STA5, E.EVT15): A.AA_1,
    (S.STA6, E.EVT15): A.AA_1,
    (S.STA7, E.EVT15): A.AA_1,
    (S.STA8, E.EVT15): A.AA_1,
    (S.STA9, E.EVT15): A.AA_1,
    (S.STA10, E.EVT15): A.AA_1,
    (S.STA11, E.EVT15): A.AA_1,
    (S.STA12, E.EVT15): A.AA_1,
    # Evt16: A-ABORT PDU
    (S.STA2, E.EVT16): A.AA_2,
    (S.STA3, E.EVT16): A.AA_3,
    (S.STA5, E.EVT16): A.AA_3,
    (S.STA6, E.EVT16): A.AA_3,
    (S.STA7, E.EVT16): A.AA_3,
    (S.STA8, E.EVT16): A.AA_3,
    (S.STA9, E.EVT16): A.AA_3,
    (S.STA10, E.EVT16): A.AA_3,
    (S.STA11, E.EVT16): A.AA_3,
    (S.STA12, E.EVT16): A.AA_3,
    (S.STA13, E.EVT16): A.AA_2,
    # Evt17: transport connection closed indication
    (S.STA2, E.EVT17): A.AA_5,
    (S.STA3, E.EVT17): A.AA_4,
    (S.STA4, E.EVT17): A.AA_4,
    (S.STA5, E.EVT17): A.AA_4,
    (S.STA6, E.EVT17): A.AA_4,
    (S.STA7, E.EVT17): A.AA_4,
    (S.STA8, E.EVT17): A.AA_4,
    (S.STA9, E.EVT17): A.AA_4,
    (S.STA10, E.EVT17): A.AA_4,
    (S.STA11, E.EVT17): A.AA_4,
    (S.STA12, E.EVT17): A.AA_4,
    (S.STA13, E.EVT17): A.AR_5,
    # Evt18: ARTIM timer expired (it runs only in Sta2 and Sta13)
    (S.STA2, E.EVT18): A.AA_2,
    (S.STA13, E.EVT18): A.AA_2,
    # Evt19: unrecognized or invalid PDU
    (S.STA2, E.EVT19): A.AA_1,
    (S.STA3, E.EVT19): A.AA_8,
    (S.STA5, E.EVT19): A.AA_8,
    (S.STA6, E.EVT19): A.AA_8,
    (S.STA7, E.EVT19): A.AA_8,
    (S.STA8, E.EVT19): A.AA_8,
    (S.STA9, E.EVT19): A.AA_8,
    (S.STA10, E.EVT19): A.AA_8,
    (S.STA11, E.EVT19): A.AA_8,
    (S.STA12, E.EVT19): A.AA_8,
    (S.STA13, E.EVT19): A.AA_7,
}

#: The next state each action gives (Tables 9-6 to 9-9); None where it depends on more than the action
#: (AE-6 on whether the A-ASSOCIATE-RQ is acceptable, AR-8 on the role): see :func:`next_state`.
NEXT_STATE: dict[Action, State | None] = {
    A.AE_1: S.STA4,
    A.AE_2: S.STA5,
    A.AE_3: S.STA6,
    A.AE_4: S.STA1,
    A.AE_5: S.STA2,
    A.AE_6: None,
    A.AE_7: S.STA6,
    A.AE_8: S.STA13,
    A.DT_1: S.STA6,
    A.DT_2: S.STA6,
    A.AR_1: S.STA7,
    A.AR_2: S.STA8,
    A.AR_3: S.STA1,
    A.AR_4: S.STA13,
    A.AR_5: S.STA1,
    A.AR_6: S.STA7,
    A.AR_7: S.STA8,
    A.AR_8: None,
    A.AR_9: S.STA11,
    A.AR_10: S.STA12,
    A.AA_1: S.STA13,
    A.AA_2: S.STA1,
    A.AA_3: S.STA1,
    A.AA_4: S.STA1,
    A.AA_5: S.STA1,
    A.AA_6: S.STA13,
    A.AA_7: S.STA13,
    A.AA_8: S.STA13,
}

#: Requests and responses of the local user: in a blank cell, the application's mistake.
LOCAL_PRIMITIVES = frozenset({E.EVT1, E.EVT7, E.EVT8, E.EVT9, E.EVT11, E.EVT14, E.EVT15})
#: Events raised by something the peer sent (a PDU, or bytes that do not make one: Evt19).
PDU_EVENTS = frozenset({E.EVT3, E.EVT4, E.EVT6, E.EVT10, E.EVT12, E.EVT13, E.EVT16, E.EVT19})


def next_state(action: Action, *, requestor: bool, acceptable: bool = True) -> State:
    """The state after ``action``.

    AE-6 goes to Sta3 when the A-ASSOCIATE-RQ is acceptable, else to Sta13 (the provider sends an
    A-ASSOCIATE-RJ and starts ARTIM). AR-8 (release collision) goes to Sta9 for the association requestor and
    to Sta10 for the acceptor. Every other action has one next state and ignores both flags.
    """
    state = NEXT_STATE[action]
    if state is not None:
        return state
    if action is A.AE_6:
        return S.STA3 if acceptable else S.STA13
    return S.STA9 if requestor else S.STA10


def transition(state: State, event: Event) -> Action | None:
    """The action Table 9-10 gives ``event`` in ``state``; None means nothing to do.

    The standard leaves the other cells blank and says nothing about them, so:

    - a local primitive (:data:`LOCAL_PRIMITIVES`) in a blank cell raises :class:`~aiodicom.errors.UsageError`
      and nothing goes on the wire;
    - a PDU event is blank only in Sta1 and Sta4, where no transport connection is open to a peer that could
      have sent it: ignored;
    - Evt18 outside Sta2 and Sta13 is a stale ARTIM deadline, and Evt2, Evt5, Evt17 elsewhere are transport
      notices with nothing left to act on: ignored.
    """
    action = TRANSITIONS.get((state, event))
    if action is None and event in LOCAL_PRIMITIVES:
        raise UsageError(
            f"{event.description} ({event.value}) is not allowed in {state.value} ({state.description})"
        )
    return action


def to_mermaid() -> str:
    """Table 9-10 as a Mermaid ``stateDiagram-v2``, one edge per (state, next state), labels "event / action".

    AE-6 and AR-8 are drawn to both of their possible next states. The output is deterministic.
    """
    order = {state: index for index, state in enumerate(State)}
    edges: dict[tuple[State, State], list[str]] = {}
    for (state, event), action in TRANSITIONS.items():
        targets = {
            next_state(action, requestor=r, acceptable=a) for r in (True, False) for a in (True, False)
        }
        for target in targets:
            edges.setdefault((state, target), []).append(f"{event.value} / {action.value}")
    lines = ["stateDiagram-v2"]
    # Mermaid reads ';' as the end of a statement, so the descriptions get commas instead
    lines += [f"    {s.name}: {s.value} {s.description.replace(';', ',')}" for s in State]
    lines.append("    [*] --> STA1")
    for source, target in sorted(edges, key=lambda pair: (order[pair[0]], order[pair[1]])):
        lines.append(f"    {source.name} --> {target.name}: {', '.join(edges[source, target])}")
    return "\n".join(lines) + "\n"
