"""The DICOM upper layer state machine: PS3.8 section 9.2, Table 9-10, as data.

:data:`TRANSITIONS` holds exactly the 123 cells the standard defines, keyed by (state, event). Carrying out an
action (sending a PDU, starting ARTIM...) is :mod:`aiodicom.ul.connection`'s job; this module only decides.
"""

from __future__ import annotations

from enum import Enum

from aiodicom.errors import UsageError


class State(Enum):
    """The 13 states of PS3.8 Table 9-10."""

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


class Event(Enum):
    """The 19 events of PS3.8 Table 9-10."""

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


class Action(Enum):
    """The actions of PS3.8 Tables 9-6 to 9-9."""

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
    State.STA3: "Awaiting local A-ASSOCIATE response primitive",
    State.STA4: "Awaiting transport connection opening to complete",
    State.STA5: "Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU",
    State.STA6: "Association established and ready for data transfer",
    State.STA7: "Awaiting A-RELEASE-RP PDU",
    State.STA8: "Awaiting local A-RELEASE response primitive",
    State.STA9: "Release collision requestor side; awaiting A-RELEASE response",
    State.STA10: "Release collision acceptor side; awaiting A-RELEASE-RP PDU",
    State.STA11: "Release collision requestor side; awaiting A-RELEASE-RP PDU",
    State.STA12: "Release collision acceptor side; awaiting A-RELEASE response primitive",
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
    Action.AE_6: "Stop ARTIM timer; if A-ASSOCIATE-RQ acceptable by service-provider, issue A-ASSOCIATE "
    "indication primitive, otherwise issue A-ASSOCIATE-RJ PDU and start ARTIM timer",
    Action.AE_7: "Send A-ASSOCIATE-AC PDU",
    Action.AE_8: "Send A-ASSOCIATE-RJ PDU and start ARTIM timer",
    Action.DT_1: "Send P-DATA-TF PDU",
    Action.DT_2: "Send P-DATA indication primitive",
    Action.AR_1: "Send A-RELEASE-RQ PDU",
    Action.AR_2: "Issue A-RELEASE indication primitive",
    Action.AR_3: "Issue A-RELEASE confirmation primitive and close transport connection",
    Action.AR_4: "Issue A-RELEASE-RP PDU and start ARTIM timer",
    Action.AR_5: "Stop ARTIM timer",
    Action.AR_6: "Issue P-DATA indication",
    Action.AR_7: "Issue P-DATA-TF PDU",
    Action.AR_8: "Issue A-RELEASE indication (release collision)",
    Action.AR_9: "Send A-RELEASE-RP PDU",
    Action.AR_10: "Issue A-RELEASE confirmation primitive",
    Action.AA_1: "Send A-ABORT PDU (service-user source) and start (or restart) ARTIM timer",
    Action.AA_2: "Stop ARTIM timer if running; close transport connection",
    Action.AA_3: "Issue A-ABORT or A-P-ABORT indication and close transport connection",
    Action.AA_4: "Issue A-P-ABORT indication primitive",
    Action.AA_5: "Stop ARTIM timer",
    Action.AA_6: "Ignore PDU",
    Action.AA_7: "Send A-ABORT PDU",
    Action.AA_8: "Send A-ABORT PDU (service-provider source), issue A-P-ABORT indication, start ARTIM timer",
}

S, E, A = State, Event, Action
_ASSOCIATED = (S.STA6, S.STA7, S.STA8, S.STA9, S.STA10, S.STA11, S.STA12)
_CONNECTED = (S.STA3, S.STA5, *_ASSOCIATED)  # states with a connection where an unexpected PDU aborts (AA-8)


def _row(event: Event, cells: dict[State, Action]) -> dict[tuple[State, Event], Action]:
    return {(state, event): action for state, action in cells.items()}


def _unexpected(event: Event, sta2: Action, sta13: Action, **overrides: Action) -> dict[State, Action]:
    """A PDU row: AA-1 in Sta2, AA-8 while connected, the given action in Sta13, overrides by state name."""
    cells = {S.STA2: sta2, **{state: A.AA_8 for state in _CONNECTED}, S.STA13: sta13}
    cells.update({State[name]: action for name, action in overrides.items()})
    return cells


#: PS3.8 Table 9-10: (state, event) -> action, for the 123 cells the standard defines.
TRANSITIONS: dict[tuple[State, Event], Action] = {
    **_row(E.EVT1, {S.STA1: A.AE_1}),
    **_row(E.EVT2, {S.STA4: A.AE_2}),
    **_row(E.EVT3, _unexpected(E.EVT3, A.AA_1, A.AA_6, STA5=A.AE_3)),
    **_row(E.EVT4, _unexpected(E.EVT4, A.AA_1, A.AA_6, STA5=A.AE_4)),
    **_row(E.EVT5, {S.STA1: A.AE_5}),
    **_row(E.EVT6, _unexpected(E.EVT6, A.AE_6, A.AA_7)),
    **_row(E.EVT7, {S.STA3: A.AE_7}),
    **_row(E.EVT8, {S.STA3: A.AE_8}),
    **_row(E.EVT9, {S.STA6: A.DT_1, S.STA8: A.AR_7}),
    **_row(E.EVT10, _unexpected(E.EVT10, A.AA_1, A.AA_6, STA6=A.DT_2, STA7=A.AR_6)),
    **_row(E.EVT11, {S.STA6: A.AR_1}),
    **_row(E.EVT12, _unexpected(E.EVT12, A.AA_1, A.AA_6, STA6=A.AR_2, STA7=A.AR_8)),
    **_row(E.EVT13, _unexpected(E.EVT13, A.AA_1, A.AA_6, STA7=A.AR_3, STA10=A.AR_10, STA11=A.AR_3)),
    **_row(E.EVT14, {S.STA8: A.AR_4, S.STA9: A.AR_9, S.STA12: A.AR_4}),
    **_row(E.EVT15, {S.STA3: A.AA_1, S.STA4: A.AA_2, S.STA5: A.AA_1, **{s: A.AA_1 for s in _ASSOCIATED}}),
    **_row(E.EVT16, {S.STA2: A.AA_2, **{s: A.AA_3 for s in _CONNECTED}, S.STA13: A.AA_2}),
    **_row(E.EVT17, {S.STA2: A.AA_5, S.STA4: A.AA_4, **{s: A.AA_4 for s in _CONNECTED}, S.STA13: A.AR_5}),
    **_row(E.EVT18, {S.STA2: A.AA_2, S.STA13: A.AA_2}),
    **_row(E.EVT19, _unexpected(E.EVT19, A.AA_1, A.AA_7)),
}

#: The state each action leads to; None where it depends on context (AE-6, AR-8): see :func:`next_state`.
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

#: Requests and responses of the local user: in a blank cell they are usage errors.
LOCAL_PRIMITIVES = frozenset({E.EVT1, E.EVT7, E.EVT8, E.EVT9, E.EVT11, E.EVT14, E.EVT15})
#: Events raised by a PDU from the peer.
PDU_EVENTS = frozenset({E.EVT3, E.EVT4, E.EVT6, E.EVT10, E.EVT12, E.EVT13, E.EVT16, E.EVT19})


def next_state(action: Action, *, requestor: bool, acceptable: bool = True) -> State:
    """The state after ``action``. AE-6 goes to Sta3 when the A-ASSOCIATE-RQ is acceptable, else Sta13;
    AR-8 (release collision) goes to Sta9 for the association requestor and Sta10 for the acceptor."""
    state = NEXT_STATE[action]
    if state is not None:
        return state
    if action is A.AE_6:
        return S.STA3 if acceptable else S.STA13
    return S.STA9 if requestor else S.STA10


def transition(state: State, event: Event) -> Action | None:
    """The action for ``event`` in ``state``, or None when there is nothing to do.

    A local primitive in a blank cell raises :class:`~aiodicom.errors.UsageError` (nothing goes on the wire).
    The other blank cells cannot carry a PDU from a live peer (Sta1 and Sta4 have no open connection) or are a
    stale timer or transport notice: they are ignored.
    """
    action = TRANSITIONS.get((state, event))
    if action is None and event in LOCAL_PRIMITIVES:
        raise UsageError(f"{event.description} is not allowed in {state.value} ({state.description})")
    return action


def to_mermaid() -> str:
    """The state diagram as Mermaid ``stateDiagram-v2`` text, drawn from :data:`TRANSITIONS`."""
    edges: dict[tuple[State, State], list[str]] = {}
    for (state, event), action in TRANSITIONS.items():
        targets = {
            next_state(action, requestor=r, acceptable=a) for r in (True, False) for a in (True, False)
        }
        for target in sorted(targets, key=lambda s: int(s.value[3:])):
            edges.setdefault((state, target), []).append(f"{event.value} / {action.value}")
    lines = ["stateDiagram-v2"]
    for state in State:
        lines.append(f"    {state.name}: {state.value} {state.description}")
    lines.append("    [*] --> STA1")
    for (source, target), labels in edges.items():
        lines.append(f"    {source.name} --> {target.name}: {', '.join(labels)}")
    return "\n".join(lines) + "\n"
