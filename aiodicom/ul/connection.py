"""One sans-IO upper-layer connection, for either role: bytes in, events out, bytes out, time passed in.

The network layer feeds received bytes (``get_buffer()`` + ``buffer_updated()``, or ``receive_data()``), gets
back events, writes whatever ``send()``, ``send_data()`` and ``data_to_send()`` return, closes the transport
when ``wants_close`` is set, and arms a timer at ``get_timer()`` that calls ``handle_timer(now)``. Every
decision goes through :data:`aiodicom.ul.fsm.TRANSITIONS`; :data:`HANDLERS` carry out its actions.

Received bytes cost memory only once they arrive: a PDU header is judged on its own (a PDU the state does not
expect aborts at once, before its body), P-DATA-TF values stream out as :class:`PDVData` pieces as they come,
however long the PDU, and only the other PDUs (capped) are buffered whole. The pieces are memoryviews into
the receive buffer, valid until the next call that receives data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Literal, cast

from aiodicom.errors import AbortReason, AbortSource, ProtocolError, UsageError
from aiodicom.ul import pdu as _pdu
from aiodicom.ul.fsm import NEXT_STATE, TRANSITIONS, Action, Event, State, next_state, transition
from aiodicom.ul.pdu import (
    PDU,
    PDU_HEADER,
    PDU_HEADER_LENGTH,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
    check_request_contexts,
    decode_pdu,
    encode_pdu,
    read_pdv_header,
)

#: Association PDUs are not bound by the advertised maximum length; they get this cap instead.
ASSOCIATION_PDU_CAP = 1 << 20
#: Default time the requestor waits for the A-ASSOCIATE-AC/RJ, and ARTIM (PS3.8 9.1.5).
DEFAULT_ACSE_TIMEOUT = 30.0
DEFAULT_ARTIM_TIMEOUT = 30.0

#: The receive buffer starts this small (what a connection that has not associated yet costs) and doubles
#: each time a read fills it, up to _STREAM_BUFFER while P-DATA streams, or to the size of the
#: association PDU being received (capped): it grows with what arrives, never with what a header declares.
_FIRST_BUFFER = 4096
_STREAM_BUFFER = 256 * 1024
_MIN_FREE = 1024  # free space below which the buffer is compacted (or grown) before the next read

#: Per PDU type: its class, the event its arrival raises (Table 9-10's rows), and its name.
_PDU_TYPES: dict[int, tuple[type, Event, str]] = {
    _pdu.A_ASSOCIATE_RQ: (AAssociateRQ, Event.EVT6, "A-ASSOCIATE-RQ"),
    _pdu.A_ASSOCIATE_AC: (AAssociateAC, Event.EVT3, "A-ASSOCIATE-AC"),
    _pdu.A_ASSOCIATE_RJ: (AAssociateRJ, Event.EVT4, "A-ASSOCIATE-RJ"),
    _pdu.P_DATA_TF: (PDataTF, Event.EVT10, "P-DATA-TF"),
    _pdu.A_RELEASE_RQ: (AReleaseRQ, Event.EVT12, "A-RELEASE-RQ"),
    _pdu.A_RELEASE_RP: (AReleaseRP, Event.EVT13, "A-RELEASE-RP"),
    _pdu.A_ABORT: (AAbort, Event.EVT16, "A-ABORT"),
}
_PDU_EVENTS: dict[type, Event] = {cls: event for cls, event, _ in _PDU_TYPES.values()}
_EVENT_OF_TYPE: dict[int, Event] = {pdu_type: event for pdu_type, (_, event, _) in _PDU_TYPES.items()}
_NAME_OF_TYPE: dict[int, str] = {pdu_type: name for pdu_type, (_, _, name) in _PDU_TYPES.items()}
#: Actions taken on a PDU's header alone: what they do does not depend on the PDU's body.
_ON_HEADER = frozenset({Action.AA_1, Action.AA_8})
_SEND_EVENTS: dict[type, Event] = {
    AAssociateRQ: Event.EVT1,
    AAssociateAC: Event.EVT7,
    AAssociateRJ: Event.EVT8,
    PDataTF: Event.EVT9,
    AReleaseRQ: Event.EVT11,
    AReleaseRP: Event.EVT14,
    AAbort: Event.EVT15,
}
#: The P-DATA request's column of Table 9-10 (DT-1 in Sta6, AR-7 in Sta8): one look-up per send.
_P_DATA_CELLS: dict[State, Action] = {s: a for (s, e), a in TRANSITIONS.items() if e is Event.EVT9}


@dataclass(frozen=True, slots=True)
class ProviderAbort:
    """A-P-ABORT indication: the association ended without an A-ABORT from the peer's user.

    ``local`` is True when this side detected the fault (and sent an A-ABORT with ``reason``); False when the
    peer's provider aborted or the transport closed.
    """

    reason: AbortReason
    message: str
    local: bool


@dataclass(frozen=True, slots=True)
class ReleaseComplete:
    """The association was released (A-RELEASE confirmation, or the end of a release collision)."""


@dataclass(frozen=True, slots=True)
class AssociationRequestRefused:
    """The acceptor refused an A-ASSOCIATE-RQ by itself (AE-6): the request and the A-ASSOCIATE-RJ sent."""

    request: AAssociateRQ
    rejection: AAssociateRJ


@dataclass(frozen=True, slots=True)
class PDVData:
    """Bytes of a presentation data value, as they arrived (P-DATA indication, streamed).

    A PDV's value may come in several pieces, in order; ``is_last`` is set on the final piece of a PDV
    whose message control header says "last fragment". ``data`` is a memoryview into the receive buffer,
    valid until the next call that receives data.
    """

    context_id: int
    is_command: bool
    is_last: bool
    data: memoryview


ConnectionEvent = PDU | PDVData | ProviderAbort | ReleaseComplete | AssociationRequestRefused
Buffers = list[bytes | bytearray | memoryview]
_Events = list[ConnectionEvent]


class Connection:
    """The association state machine of one transport connection (PS3.8 9.2), without I/O.

    ``role`` is ``"requestor"`` or ``"acceptor"``. ``max_pdu_length`` is what this side advertises: with
    ``strict`` a larger P-DATA-TF from the peer aborts the association; without, it is accepted up to
    :data:`PDATA_HARD_CAP`.
    """

    def __init__(
        self,
        role: Literal["requestor", "acceptor"],
        *,
        max_pdu_length: int = 16384,
        strict: bool = False,
        artim_timeout: float = DEFAULT_ARTIM_TIMEOUT,
        acse_timeout: float = DEFAULT_ACSE_TIMEOUT,
    ) -> None:
        if role not in ("requestor", "acceptor"):
            raise ValueError(f"role must be 'requestor' or 'acceptor', not {role!r}")
        self.role = role
        self.state = State.STA1
        self.max_pdu_length = max_pdu_length
        self.strict = strict
        self.artim_timeout = artim_timeout
        self.acse_timeout = acse_timeout
        self.wants_close = False
        self.request: AAssociateRQ | None = None
        self.accept: AAssociateAC | None = None
        self._artim: float | None = None
        self._acse_deadline: float | None = None
        self._outgoing: Buffers = []
        self._pending_rq: bytes | None = None
        self._discard = False  # after a framing error the byte stream has no PDU boundaries left
        self._buf = bytearray(_FIRST_BUFFER)
        self._start = 0
        self._end = 0
        self._filled = False  # the last read filled the buffer: more is coming, so grow it
        self._whole = 0  # bytes of the association PDU being buffered whole (header included), or 0
        self._body_left = 0  # bytes left of the P-DATA-TF body being streamed or of a body being skipped
        self._skipping = False  # the body being passed over is ignored (AA-6, or after an abort)
        self._pdv_left = 0  # bytes left of the PDV value being streamed
        self._pdv_context = 0
        self._pdv_command = False
        self._pdv_last = False

    @property
    def requestor(self) -> bool:
        return self.role == "requestor"

    @property
    def established(self) -> bool:
        """True while P-DATA may be sent (Sta6, or Sta8 after a release indication)."""
        return self.state in (State.STA6, State.STA8)

    @property
    def closed(self) -> bool:
        return self.state is State.STA1 and self.wants_close

    # ------------------------------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """The earliest deadline (ARTIM, or the wait for the A-ASSOCIATE-AC), or None."""
        artim, acse = self._artim, self._acse_deadline
        if artim is None or acse is None:
            return acse if artim is None else artim
        return min(artim, acse)

    def handle_timer(self, now: float) -> list[ConnectionEvent]:
        """Fire the deadlines that have passed; returns the resulting events."""
        events: list[ConnectionEvent] = []
        if self._acse_deadline is not None and now >= self._acse_deadline and self.state is State.STA5:
            # No A-ASSOCIATE-AC in time: a local A-ABORT request (Evt15 in Sta5: AA-1, Sta13, ARTIM).
            events.extend(self._step(Event.EVT15, now, AAbort(AbortSource.SERVICE_USER, 0)))
            events.append(
                ProviderAbort(AbortReason.NOT_SPECIFIED, "no answer to the A-ASSOCIATE-RQ in time", True)
            )
        if self._artim is not None and now >= self._artim:
            self._artim = None
            action = transition(self.state, Event.EVT18)
            if action is not None:
                events.extend(self._run(action, Event.EVT18, None, now))
        return events

    # ---------------------------------------------------------------------------------- transport

    def associate(self, rq: AAssociateRQ, now: float) -> None:
        """A-ASSOCIATE request (requestor, Sta1): the RQ goes out once the transport is connected."""
        self._step(Event.EVT1, now)
        self.request = rq
        self._pending_rq = encode_pdu(rq)

    def connection_made(self, now: float) -> Buffers:
        """The transport connection is open: Evt2 for the requestor, Evt5 for the acceptor."""
        events = self._step(Event.EVT2 if self.requestor else Event.EVT5, now)
        assert not events
        return self.data_to_send()

    def connection_lost(self, now: float) -> list[ConnectionEvent]:
        """The transport connection closed (Evt17)."""
        action = transition(self.state, Event.EVT17)
        if action is None:
            self.state = State.STA1
            return []
        return self._run(action, Event.EVT17, None, now)

    # -------------------------------------------------------------------------------------- send

    def send(self, pdu: PDU, now: float) -> Buffers:
        """Send a PDU as the local user's primitive; returns the buffers to write.

        Raises :class:`~aiodicom.errors.UsageError` (nothing sent) if the state does not allow it.
        """
        event = _SEND_EVENTS[type(pdu)]
        if event is Event.EVT1:
            raise UsageError("use associate() to send an A-ASSOCIATE-RQ")
        if event is Event.EVT9:
            return self.send_data([encode_pdu(pdu)])
        if event is Event.EVT15 and self.state in (State.STA1, State.STA2, State.STA13):
            if self.state is not State.STA1:
                self._close()  # no association to abort (yet, or any more): just close the transport
            return []
        self._step(event, now, pdu)
        return self.data_to_send()

    def send_data(self, buffers: Sequence[bytes | bytearray | memoryview]) -> Buffers:
        """P-DATA request (Evt9) of whole P-DATA-TF PDUs (as :func:`aiodicom.dimse.fragment` makes them):
        DT-1 in Sta6, AR-7 in Sta8, and :class:`~aiodicom.errors.UsageError` (nothing sent) elsewhere.
        Returns the buffers to write: the very list given (no copy, no join), after anything queued before."""
        action = _P_DATA_CELLS.get(self.state)
        if action is None:
            transition(self.state, Event.EVT9)  # raises UsageError: the cell is blank
            raise AssertionError("unreachable")
        self._run(action, Event.EVT9, buffers, 0.0)  # P-DATA starts and stops no timer: no time needed
        return self.data_to_send()

    def abort(self, reason: AbortReason, message: str, now: float) -> list[ConnectionEvent]:
        """Abort because of a fault this side found above the PDU layer (a DIMSE error): AA-8."""
        return self._fault(ProtocolError(message, reason), now)

    def data_to_send(self) -> Buffers:
        """Buffers queued by automatic actions (A-ABORT on a fault, the RP of a release collision...)."""
        out, self._outgoing = self._outgoing, []
        return out

    # ------------------------------------------------------------------------------------ receive

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable view where the transport puts received bytes (``BufferedProtocol.get_buffer``)."""
        buf = self._buf
        if self._start == self._end:
            self._start = self._end = 0
            if len(buf) > _STREAM_BUFFER and not self._whole:
                self._buf = buf = bytearray(_STREAM_BUFFER)  # give back the room a large PDU needed
        free = len(buf) - self._end
        if free >= _MIN_FREE and not (self._filled and self._can_grow()):
            return memoryview(buf)[self._end :]
        size = self._end - self._start
        target = len(buf)
        if self._filled or len(buf) - size < _MIN_FREE:
            target = max(target, min(2 * target, self._growth_limit()), size + _MIN_FREE)
        if target > len(buf):
            grown = bytearray(target)  # never resize: older memoryviews may still be around
            grown[:size] = buf[self._start : self._end]
            self._buf = buf = grown
        elif self._start:
            buf[:size] = buf[self._start : self._end]
        self._start, self._end = 0, size
        self._filled = False
        return memoryview(buf)[size:]

    def _growth_limit(self) -> int:
        """The size the buffer may reach now: the association PDU being buffered, or the streaming size."""
        if self._whole:
            return self._whole
        return _STREAM_BUFFER if self.established else _FIRST_BUFFER

    def _can_grow(self) -> bool:
        return len(self._buf) < self._growth_limit()

    def buffer_updated(self, nbytes: int, now: float) -> list[ConnectionEvent]:
        """``nbytes`` were written into the view of :meth:`get_buffer`; returns the events they complete."""
        self._filled = self._end + nbytes == len(self._buf)
        self._end += nbytes
        return self._parse(now)

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> list[ConnectionEvent]:
        """Feed received bytes (a convenience over get_buffer/buffer_updated: copies them once)."""
        view = memoryview(data)
        events: list[ConnectionEvent] = []
        while len(view):
            target = self.get_buffer(len(view))
            n = min(len(target), len(view))
            target[:n] = view[:n]
            view = view[n:]
            events.extend(self.buffer_updated(n, now))
        return events

    def _parse(self, now: float) -> list[ConnectionEvent]:
        events: list[ConnectionEvent] = []
        buf = self._buf
        while not self._discard:
            avail = self._end - self._start
            if self._body_left:
                if not avail:
                    break
                if self._skipping:
                    n = min(avail, self._body_left)
                    self._start += n
                    self._body_left -= n
                    self._skipping = self._body_left > 0
                    continue
                if not self._pdata(buf, avail, events, now):
                    break
                continue
            if avail < PDU_HEADER_LENGTH:
                break
            pdu_type, length = PDU_HEADER.unpack_from(buf, self._start)
            if not self._whole:
                try:
                    self._check_header(pdu_type, length)
                except ProtocolError as exc:
                    self._discard = True
                    events.extend(self._fault(exc, now))
                    break
                if self._on_header(pdu_type, length, events, now):
                    continue
                self._whole = PDU_HEADER_LENGTH + length
            if avail < self._whole:
                break  # an association PDU (capped) is buffered whole: the buffer grows as it arrives
            end = self._start + self._whole
            self._whole = 0
            view = memoryview(buf)[self._start : end]
            try:
                if pdu_type == _pdu.A_ASSOCIATE_RQ:
                    check_request_contexts(view)
                pdu = decode_pdu(view)
                _check_parameters(pdu)
            except ProtocolError as exc:
                self._start = end
                events.extend(self._fault(exc, now))
                continue
            self._start = end
            event = _PDU_EVENTS[type(pdu)]
            action = transition(self.state, event)
            if action is not None:
                events.extend(self._run(action, event, pdu, now))
        if self._discard:
            self._start = self._end = 0
            self._whole = self._body_left = self._pdv_left = 0
        return events

    def _on_header(self, pdu_type: int, length: int, events: list[ConnectionEvent], now: float) -> bool:
        """Act on a PDU header when the body is not needed: True when the body is taken care of (streamed,
        skipped), False when the PDU must be buffered whole first."""
        if self.state is State.STA1:  # the connection is over; late bytes mean nothing
            self._skip(length)
            return True
        event = _EVENT_OF_TYPE[pdu_type]
        action = transition(self.state, event)
        if pdu_type == _pdu.P_DATA_TF and action in (Action.DT_2, Action.AR_6):
            self._start += PDU_HEADER_LENGTH
            self._body_left = length
            self._pdv_left = 0
            events.extend(self._run(action, event, None, now))  # DT-2/AR-6: the pieces follow
            return True
        if action is None or action is Action.AA_6:
            self._skip(length)  # ignored, as the table says: its body is passed over, never buffered
            return True
        if action in _ON_HEADER:
            name = _NAME_OF_TYPE[pdu_type]
            fault = ProtocolError(
                f"unexpected {name} in state {self.state.value} ({self.state.description})",
                AbortReason.UNEXPECTED_PDU,
            )
            self._skip(length)
            events.extend(self._run(action, event, fault, now))
            return True
        return False

    def _skip(self, length: int) -> None:
        self._start += PDU_HEADER_LENGTH
        self._body_left = length
        self._skipping = True

    def _pdata(self, buf: bytearray, avail: int, events: list[ConnectionEvent], now: float) -> bool:
        """Stream the P-DATA-TF body being received: PDV headers, then value pieces as they arrive.

        Returns False when more bytes are needed."""
        if self._pdv_left:
            n = min(avail, self._pdv_left)
            start = self._start
            self._start = start + n
            self._pdv_left -= n
            self._body_left -= n
            last = self._pdv_last and not self._pdv_left
            events.append(
                PDVData(self._pdv_context, self._pdv_command, last, memoryview(buf)[start : start + n])
            )
            return True
        if avail < 6 and self._body_left >= 6:
            return False
        try:
            length, context_id, control = read_pdv_header(buf, self._start, self._body_left)
        except ProtocolError as exc:
            self._discard = True
            events.extend(self._fault(exc, now))
            return False
        # bits 2-7 of the message control header are reserved: not checked (PS3.8 E.2)
        self._start += 6
        self._body_left -= 6
        self._pdv_left = length - 2
        self._pdv_context = context_id
        self._pdv_command = bool(control & 1)
        self._pdv_last = bool(control & 2)
        if not self._pdv_left and self._pdv_last:  # an empty last fragment still ends the message
            events.append(PDVData(context_id, self._pdv_command, True, memoryview(b"")))
        return True

    def _check_header(self, pdu_type: int, length: int) -> None:
        if pdu_type == _pdu.P_DATA_TF:
            if self.strict and length > self.max_pdu_length and self.max_pdu_length:
                raise ProtocolError(
                    f"P-DATA-TF of {length} bytes exceeds our maximum length ({self.max_pdu_length})",
                    AbortReason.INVALID_PDU_PARAMETER_VALUE,
                )
            if length == 0:
                raise ProtocolError("P-DATA-TF carries no PDV item", AbortReason.INVALID_PDU_PARAMETER_VALUE)
        elif _pdu.A_ASSOCIATE_RQ <= pdu_type <= _pdu.A_ABORT:
            if length > ASSOCIATION_PDU_CAP:
                raise ProtocolError(
                    f"PDU type 0x{pdu_type:02X} of {length} bytes exceeds the limit ({ASSOCIATION_PDU_CAP})",
                    AbortReason.INVALID_PDU_PARAMETER_VALUE,
                )
            if pdu_type >= _pdu.A_ASSOCIATE_RJ and length != 4:
                raise ProtocolError(
                    f"PDU type 0x{pdu_type:02X} has length {length}, not 4",
                    AbortReason.INVALID_PDU_PARAMETER_VALUE,
                )
        else:
            raise ProtocolError(f"unrecognized PDU type 0x{pdu_type:02X}", AbortReason.UNRECOGNIZED_PDU)

    # ------------------------------------------------------------------------------------ actions

    def _fault(self, exc: ProtocolError, now: float) -> list[ConnectionEvent]:
        """An invalid PDU (Evt19) or a fault found above: abort as the table says for this state."""
        action = transition(self.state, Event.EVT19)
        if action is None:
            return []
        return self._run(action, Event.EVT19, exc, now)

    def _step(self, event: Event, now: float, pdu: PDU | None = None) -> list[ConnectionEvent]:
        action = transition(self.state, event)
        if action is None:
            return []
        return self._run(action, event, pdu, now)

    def _write(self, data: bytes) -> None:
        self._outgoing.append(data)

    def _close(self) -> None:
        self.state = State.STA1
        self._artim = self._acse_deadline = None
        self.wants_close = True

    def _start_artim(self, now: float) -> None:
        self._artim = now + self.artim_timeout
        self._acse_deadline = None  # ARTIM runs in Sta2 and Sta13, never while an A-ASSOCIATE-AC is awaited

    def _run(self, action: Action, event: Event, arg: object, now: float) -> list[ConnectionEvent]:
        """Carry out one action of Table 9-10, move to its next state (the one place that decides it), then
        run what follows by itself."""
        events: list[ConnectionEvent] = []
        handler, fixed = _PLAN[action]
        then = handler(self, event, arg, now, events)
        if then is None and fixed is not None:  # most actions: one next state, nothing follows
            self.state = fixed
            return events
        if fixed is None:  # AE-6 (was the request acceptable?) and AR-8 (which role?)
            fixed = next_state(action, requestor=self.requestor, acceptable=then is not _Then.REFUSED)
        self.state = fixed
        if then is _Then.RESPOND:  # a release collision: the A-RELEASE response follows at once
            events.extend(self._step(Event.EVT14, now, AReleaseRP()))
        return events

    # One handler per action of PS3.8 9.2.2, named for it; arg: the PDU, the P-DATA buffers or the fault.

    def _ae_1(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AE-1: issue a transport connect request (the caller opens the connection)."""

    def _ae_2(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AE-2: send the A-ASSOCIATE-RQ; the wait for its answer starts."""
        assert self._pending_rq is not None
        self._write(self._pending_rq)
        self._pending_rq = None
        self._acse_deadline = now + self.acse_timeout

    def _ae_3(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AE-3: A-ASSOCIATE confirmation (accept)."""
        assert isinstance(arg, AAssociateAC)
        self._acse_deadline = None
        self.accept = arg
        events.append(arg)

    def _ae_4(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AE-4: A-ASSOCIATE confirmation (reject), then close the transport."""
        assert isinstance(arg, AAssociateRJ)
        events.append(arg)
        self._close()

    def _ae_5(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AE-5: the transport connection is accepted; start ARTIM."""
        self._start_artim(now)

    def _ae_6(self, event: Event, arg: object, now: float, events: _Events) -> _Then | None:
        """AE-6: stop ARTIM; A-ASSOCIATE indication, or the provider's A-ASSOCIATE-RJ and ARTIM."""
        assert isinstance(arg, AAssociateRQ)
        self._artim = None
        self.request = arg
        if arg.protocol_version & 1:
            events.append(arg)
            return None
        rj = AAssociateRJ(1, 2, 2)  # the provider refuses a protocol version without bit 0 (PS3.8 9.3.2)
        self._write(encode_pdu(rj))
        self._start_artim(now)
        events.append(AssociationRequestRefused(arg, rj))
        return _Then.REFUSED

    def _ae_7(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AE-7: send the A-ASSOCIATE-AC."""
        assert isinstance(arg, AAssociateAC)
        self.accept = arg
        self._write(encode_pdu(arg))

    def _ae_8(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AE-8: send the A-ASSOCIATE-RJ and start ARTIM."""
        assert isinstance(arg, AAssociateRJ)
        self._write(encode_pdu(arg))
        self._start_artim(now)

    def _dt_1(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """DT-1: send P-DATA-TF PDUs: the request's buffers, as they are."""
        buffers = cast("Sequence[bytes | bytearray | memoryview]", arg)  # what send_data() passes
        if self._outgoing or type(buffers) is not list:
            self._outgoing.extend(buffers)
        else:  # adopted as it is: data_to_send() hands the caller's own list back
            self._outgoing = buffers

    def _dt_2(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """DT-2: P-DATA indication. Taken on the P-DATA-TF header; its PDVs stream out as PDVData."""

    def _ar_1(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AR-1: send the A-RELEASE-RQ."""
        self._write(encode_pdu(AReleaseRQ()))

    def _ar_2(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AR-2: A-RELEASE indication."""
        events.append(AReleaseRQ())

    def _ar_3(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AR-3: A-RELEASE confirmation, then close the transport."""
        events.append(ReleaseComplete())
        self._close()

    def _ar_4(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AR-4: send the A-RELEASE-RP and start ARTIM."""
        self._write(encode_pdu(AReleaseRP()))
        self._start_artim(now)

    def _ar_5(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AR-5: stop ARTIM (the transport closed in Sta13)."""
        self._artim = None

    def _ar_6(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AR-6: P-DATA indication while awaiting the A-RELEASE-RP (streamed, as DT-2)."""

    def _ar_7(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AR-7: send P-DATA-TF PDUs before answering the peer's A-RELEASE-RQ, as DT-1 does."""
        self._dt_1(event, arg, now, events)

    def _ar_8(self, event: Event, arg: object, now: float, events: _Events) -> _Then | None:
        """AR-8: release collision; the requestor answers at once (AR-9), the acceptor later (AR-10)."""
        return _Then.RESPOND if self.requestor else None

    def _ar_9(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AR-9: send the A-RELEASE-RP (release collision, requestor)."""
        self._write(encode_pdu(AReleaseRP()))

    def _ar_10(self, event: Event, arg: object, now: float, events: _Events) -> _Then | None:
        """AR-10: A-RELEASE confirmation (release collision, acceptor); our A-RELEASE-RP follows."""
        events.append(ReleaseComplete())
        return _Then.RESPOND

    def _aa_1(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AA-1: send an A-ABORT (the user's, or the provider's for a PDU before any RQ); start ARTIM."""
        if event is Event.EVT15:
            abort = arg if isinstance(arg, AAbort) else AAbort(AbortSource.SERVICE_USER, 0)
        else:
            reason = arg.reason if isinstance(arg, ProtocolError) else AbortReason.UNEXPECTED_PDU
            abort = AAbort(AbortSource.SERVICE_PROVIDER, reason)
            events.append(ProviderAbort(reason, _describe_fault(arg, self.state), True))
        self._write(encode_pdu(abort))
        self._start_artim(now)

    def _aa_2(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AA-2: stop ARTIM; close the transport."""
        self._close()

    def _aa_3(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AA-3: A-ABORT (or A-P-ABORT) indication from the peer's A-ABORT; close the transport."""
        assert isinstance(arg, AAbort)
        events.append(arg)
        self._close()

    def _aa_4(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AA-4: A-P-ABORT indication: the transport closed under the association."""
        events.append(ProviderAbort(AbortReason.NOT_SPECIFIED, "the peer closed the connection", False))
        self._close()

    def _aa_5(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AA-5: stop ARTIM (the transport closed before any request)."""
        self._close()

    def _aa_6(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AA-6: ignore the PDU (after we aborted or released)."""

    def _aa_7(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AA-7: send an A-ABORT (provider) for a PDU in Sta13."""
        reason = arg.reason if isinstance(arg, ProtocolError) else AbortReason.UNEXPECTED_PDU
        self._write(encode_pdu(AAbort(AbortSource.SERVICE_PROVIDER, reason)))

    def _aa_8(self, event: Event, arg: object, now: float, events: _Events) -> None:
        """AA-8: send an A-ABORT (provider), A-P-ABORT indication, start ARTIM."""
        reason = arg.reason if isinstance(arg, ProtocolError) else AbortReason.UNEXPECTED_PDU
        self._write(encode_pdu(AAbort(AbortSource.SERVICE_PROVIDER, reason)))
        self._start_artim(now)
        events.append(ProviderAbort(reason, _describe_fault(arg, self.state), True))


class _Then(Enum):
    """What an action asks of :meth:`Connection._run` besides its next state."""

    REFUSED = "the provider refused the A-ASSOCIATE-RQ (AE-6): Sta13, not Sta3"
    RESPOND = "a release collision goes on with the local A-RELEASE response (Evt14)"


_Handler = Callable[[Connection, Event, object, float, _Events], _Then | None]

#: The method that carries out each action, found by its name (AE-1 is ``_ae_1``): built once, one per action.
HANDLERS: Mapping[Action, _Handler] = MappingProxyType(
    {action: getattr(Connection, f"_{action.name.lower()}") for action in Action}
)
#: Each action's handler and its next state (None where it depends on more than the action).
_PLAN: dict[Action, tuple[_Handler, State | None]] = {a: (h, NEXT_STATE[a]) for a, h in HANDLERS.items()}


def _check_parameters(pdu: PDU) -> None:
    """What a decoded association PDU may not carry although it parses: a maximum length of 1-6 bytes,
    which no PDV fits (0 means unlimited)."""
    if isinstance(pdu, AAssociateRQ | AAssociateAC):
        max_length = pdu.user_information.max_length
        if max_length is not None and 0 < max_length <= 6:
            raise ProtocolError(
                f"maximum PDU length {max_length} cannot carry a PDV", AbortReason.INVALID_PDU_PARAMETER_VALUE
            )


def _describe_fault(arg: object, state: State) -> str:
    if isinstance(arg, ProtocolError):
        return str(arg)
    name = _pdu.describe(arg) if isinstance(arg, tuple(_PDU_EVENTS)) else "event"  # type: ignore[arg-type]
    return f"unexpected {name} in state {state.value} ({state.description})"
