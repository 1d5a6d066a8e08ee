"""PS3.8 Table 9-10 as data: spellings, cell count, spot checks against the standard, every (state, event)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiodicom.errors import UsageError
from aiodicom.ul.fsm import (
    LOCAL_PRIMITIVES,
    NEXT_STATE,
    TRANSITIONS,
    Action,
    Event,
    State,
    next_state,
    to_mermaid,
    transition,
)


def test_enum_spellings_follow_the_standard() -> None:
    assert State.STA1.value == "Sta1" and State.STA13.value == "Sta13"
    assert Event.EVT3.value == "Evt3" and Event.EVT19.value == "Evt19"
    assert Action.AE_3.value == "AE-3" and Action.AR_10.value == "AR-10" and Action.AA_8.value == "AA-8"
    assert len(State) == 13 and len(Event) == 19 and len(Action) == 28


def test_the_table_has_the_123_cells_of_the_standard() -> None:
    assert len(TRANSITIONS) == 123


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
        ("Sta6", "Evt15", "AA-1"),
        ("Sta4", "Evt15", "AA-2"),
        ("Sta2", "Evt18", "AA-2"),
        ("Sta13", "Evt18", "AA-2"),
        ("Sta13", "Evt16", "AA-2"),
        ("Sta6", "Evt16", "AA-3"),
        ("Sta6", "Evt17", "AA-4"),
        ("Sta4", "Evt17", "AA-4"),
        ("Sta2", "Evt17", "AA-5"),
        ("Sta13", "Evt10", "AA-6"),
        ("Sta13", "Evt6", "AA-7"),
        ("Sta13", "Evt19", "AA-7"),
        ("Sta6", "Evt19", "AA-8"),
        ("Sta6", "Evt3", "AA-8"),
        ("Sta12", "Evt13", "AA-8"),
    ],
)
def test_cells(state: str, event: str, action: str) -> None:
    assert TRANSITIONS[(State(state), Event(event))] is Action(action)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        ("Sta1", "Evt9"),
        ("Sta2", "Evt15"),
        ("Sta13", "Evt15"),
        ("Sta7", "Evt11"),
        ("Sta5", "Evt3"),
        ("Sta1", "Evt3"),
    ],
)
def test_blank_cells(state: str, event: str) -> None:
    if state == "Sta5" and event == "Evt3":  # a defined cell, as a control
        assert (State(state), Event(event)) in TRANSITIONS
        return
    assert (State(state), Event(event)) not in TRANSITIONS


def test_next_states() -> None:
    assert NEXT_STATE[Action.AE_2] is State.STA5
    assert NEXT_STATE[Action.AA_8] is State.STA13
    assert next_state(Action.AE_6, requestor=False, acceptable=True) is State.STA3
    assert next_state(Action.AE_6, requestor=False, acceptable=False) is State.STA13
    assert next_state(Action.AR_8, requestor=True) is State.STA9
    assert next_state(Action.AR_8, requestor=False) is State.STA10
    assert set(NEXT_STATE) == set(Action)


def test_local_primitive_in_a_blank_cell_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="P-DATA request primitive is not allowed in Sta1"):
        transition(State.STA1, Event.EVT9)


def test_stale_timer_and_pdus_without_a_connection_are_ignored() -> None:
    assert transition(State.STA6, Event.EVT18) is None
    assert transition(State.STA1, Event.EVT10) is None


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
    for requestor in (True, False):
        for acceptable in (True, False):
            assert isinstance(next_state(action, requestor=requestor, acceptable=acceptable), State)


def test_mermaid_diagram_is_deterministic_and_complete() -> None:
    text = to_mermaid()
    assert text == to_mermaid()
    assert all(f"{state.name}:" in text for state in State)
    assert "STA7 --> STA9: Evt12 / AR-8" in text and "STA7 --> STA10: Evt12 / AR-8" in text


def test_the_docs_diagram_is_up_to_date() -> None:
    path = Path(__file__).parents[2] / "docs" / "gen_fsm.py"
    spec = importlib.util.spec_from_file_location("gen_fsm", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0
