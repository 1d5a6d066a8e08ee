"""PS3.8 Table 9-10 as data: spellings, the 123 cells, spot checks against the standard, every pair."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, strategies as st

from aiodicom.errors import UsageError
from aiodicom.ul.connection import HANDLERS
from aiodicom.ul.fsm import (
    LOCAL_PRIMITIVES,
    NEXT_STATE,
    PDU_EVENTS,
    TRANSITIONS,
    Action,
    Event,
    State,
    next_state,
    to_mermaid,
    transition,
)

DOCS = Path(__file__).parents[2] / "docs"


def test_enum_spellings_follow_the_standard() -> None:
    assert State.STA1.value == "Sta1" and State.STA13.value == "Sta13"
    assert Event.EVT3.value == "Evt3" and Event.EVT19.value == "Evt19"
    assert Action.AE_3.value == "AE-3" and Action.DT_2.value == "DT-2"
    assert Action.AR_10.value == "AR-10" and Action.AA_8.value == "AA-8"
    assert [s.value for s in State] == [f"Sta{i}" for i in range(1, 14)]
    assert [e.value for e in Event] == [f"Evt{i}" for i in range(1, 20)]
    assert len(Action) == 8 + 2 + 10 + 8


def test_every_member_has_a_description() -> None:
    for member in [*State, *Event, *Action]:
        assert member.description and member.description == member.description.strip()
    assert State.STA6.description == "Association established and ready for data transfer"
    assert Event.EVT9.description == "P-DATA request primitive"


def test_the_table_has_the_123_cells_of_the_standard() -> None:
    assert len(TRANSITIONS) == 123
    per_event = {event: sum(1 for _, e in TRANSITIONS if e is event) for event in Event}
    # Row by row, as printed in Table 9-10
    assert [per_event[e] for e in Event] == [
        1,
        1,
        11,
        11,
        1,
        11,
        1,
        1,
        2,
        11,
        1,
        11,
        11,
        3,
        10,
        11,
        12,
        2,
        11,
    ]


@pytest.mark.parametrize(
    ("state", "event", "action"),
    [
        ("Sta1", "Evt1", "AE-1"),
        ("Sta4", "Evt2", "AE-2"),
        ("Sta5", "Evt3", "AE-3"),
        ("Sta5", "Evt4", "AE-4"),
        ("Sta1", "Evt5", "AE-5"),
        ("Sta2", "Evt6", "AE-6"),
        ("Sta3", "Evt7", "AE-7"),
        ("Sta3", "Evt8", "AE-8"),
        ("Sta6", "Evt9", "DT-1"),
        ("Sta6", "Evt10", "DT-2"),
        ("Sta6", "Evt11", "AR-1"),
        ("Sta6", "Evt12", "AR-2"),
        ("Sta7", "Evt13", "AR-3"),
        ("Sta8", "Evt14", "AR-4"),
        ("Sta13", "Evt17", "AR-5"),
        ("Sta7", "Evt10", "AR-6"),
        ("Sta8", "Evt9", "AR-7"),
        ("Sta7", "Evt12", "AR-8"),
        ("Sta9", "Evt14", "AR-9"),
        ("Sta10", "Evt13", "AR-10"),
        ("Sta11", "Evt13", "AR-3"),
        ("Sta12", "Evt14", "AR-4"),
        ("Sta2", "Evt3", "AA-1"),
        ("Sta2", "Evt19", "AA-1"),
        ("Sta3", "Evt15", "AA-1"),
        ("Sta5", "Evt15", "AA-1"),  # also how no A-ASSOCIATE-AC in time ends (acse_timeout)
        ("Sta12", "Evt15", "AA-1"),
        ("Sta4", "Evt15", "AA-2"),
        ("Sta2", "Evt16", "AA-2"),
        ("Sta2", "Evt18", "AA-2"),
        ("Sta13", "Evt16", "AA-2"),
        ("Sta13", "Evt18", "AA-2"),
        ("Sta3", "Evt16", "AA-3"),
        ("Sta11", "Evt16", "AA-3"),
        ("Sta4", "Evt17", "AA-4"),
        ("Sta6", "Evt17", "AA-4"),
        ("Sta2", "Evt17", "AA-5"),
        ("Sta13", "Evt3", "AA-6"),
        ("Sta13", "Evt12", "AA-6"),
        ("Sta13", "Evt6", "AA-7"),
        ("Sta13", "Evt19", "AA-7"),
        ("Sta3", "Evt3", "AA-8"),
        ("Sta5", "Evt6", "AA-8"),
        ("Sta6", "Evt13", "AA-8"),
        ("Sta6", "Evt19", "AA-8"),
        ("Sta9", "Evt13", "AA-8"),
        ("Sta12", "Evt13", "AA-8"),
    ],
)
def test_cells(state: str, event: str, action: str) -> None:
    assert TRANSITIONS[State(state), Event(event)] is Action(action)
    assert transition(State(state), Event(event)) is Action(action)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        ("Sta1", "Evt9"),  # P-DATA before any association
        ("Sta2", "Evt15"),  # A-ABORT request: there is no association to abort yet
        ("Sta13", "Evt15"),
        ("Sta7", "Evt11"),  # a second A-RELEASE request
        ("Sta7", "Evt9"),  # P-DATA after our own A-RELEASE-RQ
        ("Sta10", "Evt14"),  # the acceptor answers a collision only after the peer's A-RELEASE-RP
        ("Sta4", "Evt3"),  # no transport connection yet
        ("Sta1", "Evt16"),
        ("Sta6", "Evt18"),  # ARTIM does not run in Sta6
    ],
)
def test_blank_cells(state: str, event: str) -> None:
    assert (State(state), Event(event)) not in TRANSITIONS


def test_blank_pdu_cells_are_only_where_no_connection_is_open() -> None:
    blank = {state for state in State for event in PDU_EVENTS if (state, event) not in TRANSITIONS}
    assert blank == {State.STA1, State.STA4}


def test_cross_check_with_pynetdicom() -> None:
    fsm = pytest.importorskip("pynetdicom.fsm")
    ours = {(event.value, state.value): action.value for (state, event), action in TRANSITIONS.items()}
    assert ours == fsm.TRANSITION_TABLE


def test_next_state_of_every_action() -> None:
    expected = {
        "AE-1": "Sta4", "AE-2": "Sta5", "AE-3": "Sta6", "AE-4": "Sta1", "AE-5": "Sta2", "AE-6": None,
        "AE-7": "Sta6", "AE-8": "Sta13", "DT-1": "Sta6", "DT-2": "Sta6",
        "AR-1": "Sta7", "AR-2": "Sta8", "AR-3": "Sta1", "AR-4": "Sta13", "AR-5": "Sta1", "AR-6": "Sta7",
        "AR-7": "Sta8", "AR-8": None, "AR-9": "Sta11", "AR-10": "Sta12",
        "AA-1": "Sta13", "AA-2": "Sta1", "AA-3": "Sta1", "AA-4": "Sta1", "AA-5": "Sta1", "AA-6": "Sta13",
        "AA-7": "Sta13", "AA-8": "Sta13",
    }  # fmt: skip
    assert {action.value: state and state.value for action, state in NEXT_STATE.items()} == expected
    for action, state in NEXT_STATE.items():
        if state is not None:
            for requestor in (True, False):
                for acceptable in (True, False):
                    assert next_state(action, requestor=requestor, acceptable=acceptable) is state


def test_next_state_of_ae6_and_ar8() -> None:
    assert next_state(Action.AE_6, requestor=False) is State.STA3
    assert next_state(Action.AE_6, requestor=False, acceptable=True) is State.STA3
    assert next_state(Action.AE_6, requestor=False, acceptable=False) is State.STA13
    assert next_state(Action.AR_8, requestor=True) is State.STA9
    assert next_state(Action.AR_8, requestor=False) is State.STA10


def test_local_primitive_in_a_blank_cell_is_a_usage_error() -> None:
    with pytest.raises(
        UsageError, match=r"P-DATA request primitive \(Evt9\) is not allowed in Sta1 \(Idle\)"
    ):
        transition(State.STA1, Event.EVT9)
    with pytest.raises(UsageError, match=r"A-ABORT request primitive \(Evt15\) is not allowed in Sta13"):
        transition(State.STA13, Event.EVT15)


def test_other_blank_cells_are_ignored() -> None:
    assert transition(State.STA6, Event.EVT18) is None  # a stale ARTIM deadline
    assert transition(State.STA1, Event.EVT10) is None  # a PDU without a connection
    assert transition(State.STA4, Event.EVT19) is None
    assert transition(State.STA1, Event.EVT17) is None
    assert transition(State.STA6, Event.EVT2) is None
    assert transition(State.STA6, Event.EVT5) is None


def test_every_action_has_exactly_one_handler_named_for_it() -> None:
    assert set(HANDLERS) == set(Action) == set(TRANSITIONS.values())
    assert len(set(HANDLERS.values())) == len(Action)  # no handler serves two actions
    for action, handler in HANDLERS.items():
        assert handler.__name__ == "_" + action.value.lower().replace("-", "_")
        assert handler.__doc__ is not None and handler.__doc__.startswith(f"{action.value}: ")


def test_events_fall_in_exactly_one_kind() -> None:
    transport_and_timer = {Event.EVT2, Event.EVT5, Event.EVT17, Event.EVT18}
    assert not LOCAL_PRIMITIVES & PDU_EVENTS
    assert LOCAL_PRIMITIVES | PDU_EVENTS | transport_and_timer == set(Event)
    assert len(LOCAL_PRIMITIVES) + len(PDU_EVENTS) + len(transport_and_timer) == len(Event)


@given(st.sampled_from(list(State)), st.sampled_from(list(Event)))
def test_every_state_event_pair(state: State, event: Event) -> None:
    try:
        action = transition(state, event)
    except UsageError:
        assert event in LOCAL_PRIMITIVES and (state, event) not in TRANSITIONS
        return
    if action is None:
        assert (state, event) not in TRANSITIONS and event not in LOCAL_PRIMITIVES
        return
    assert TRANSITIONS[state, event] is action
    for requestor in (True, False):
        for acceptable in (True, False):
            assert isinstance(next_state(action, requestor=requestor, acceptable=acceptable), State)


def test_mermaid_diagram_is_deterministic_and_complete() -> None:
    text = to_mermaid()
    assert text == to_mermaid()
    assert text.startswith("stateDiagram-v2\n") and ";" not in text
    for state in State:
        assert f"    {state.name}: {state.value} " in text
        assert f"{state.name} -->" in text or f"--> {state.name}:" in text
    assert "STA1 --> STA4: Evt1 / AE-1\n" in text
    assert "STA2 --> STA3: Evt6 / AE-6\n" in text and "STA2 --> STA13: Evt3 / AA-1, " in text
    assert "Evt6 / AE-6" in text.split("STA2 --> STA13: ")[1].splitlines()[0]
    assert "STA7 --> STA9: Evt12 / AR-8\n" in text and "STA7 --> STA10: Evt12 / AR-8\n" in text


def _gen_fsm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_fsm", DOCS / "gen_fsm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_diagram_is_up_to_date() -> None:
    assert _gen_fsm().main(["--check"]) == 0, "docs/state-diagram.md is stale: run python docs/gen_fsm.py"


def test_the_generator_notices_a_stale_page(tmp_path: Path) -> None:
    gen = _gen_fsm()
    page = tmp_path / "architecture.md"
    page.write_text("# Title\n\n<!-- fsm:begin -->\nold\n<!-- fsm:end -->\n\nAfter.\n")
    assert gen.main(["--check"], page=page) == 1
    assert gen.main([], page=page) == 0
    assert gen.main(["--check"], page=page) == 0
    text = page.read_text()
    assert text.startswith("# Title\n\n<!-- fsm:begin -->\n```mermaid\nstateDiagram-v2\n")
    assert text.endswith("<!-- fsm:end -->\n\nAfter.\n") and "| Sta13 |" in text
