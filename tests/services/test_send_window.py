"""StoreScu with an asynchronous operations window: several C-STOREs in flight on one association.

aiodicom to aiodicom through the latency proxy (5 ms and 50 ms each way), a raw acceptor that answers out of
order, an abort mid-window, and what a peer that grants no window (or a smaller one) gets."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections import Counter
from pathlib import Path

import pytest

from aiodicom.dimse import Command, CommandField
from aiodicom.errors import DimseError
from aiodicom.scp.store import StoreScp
from aiodicom.scu.store import StoreScu
from aiodicom.ul import encode_pdu
from aiodicom.ul.items import AsyncOperationsWindow, PresentationContextAC, UserInformation
from aiodicom.ul.pdu import AAssociateAC, AAssociateRQ, AReleaseRP, AReleaseRQ
from tests.interop.faultproxy import FaultProxy
from tests.interop.peers import Peer
from tests.interop.rawpeer import IMPLEMENTATION_UID, RawAcceptor, RawPeer
from tests.scp.part10 import EXPLICIT_LE, part10, small_ct

TIMEOUT = 20.0


def write_files(folder: Path, count: int, rows: int = 8) -> dict[str, Path]:
    """``count`` small CT files; their paths by SOP Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i in range(count):
        ct = small_ct(rows=rows)
        path = folder / f"{i:04d}.dcm"
        path.write_bytes(part10(ct))
        files[ct.sop_instance] = path
    return files


class Events:
    """Every event of a send, by name."""

    def __init__(self) -> None:
        self.seen: dict[str, list[object]] = {"sending": [], "sent": [], "error": []}

    def callbacks(self) -> dict[str, object]:
        return {
            "on_file_sending": self.seen["sending"].append,
            "on_file_sent": self.seen["sent"].append,
            "on_file_error": self.seen["error"].append,
        }

    def files(self, kind: str) -> Counter[str]:
        return Counter(e.file for e in self.seen[kind])  # type: ignore[attr-defined]


def stored_uids(out: Path) -> Counter[str]:
    return Counter(p.stem for p in out.rglob("*.dcm"))


def requests_before_first_response(proxy: FaultProxy, uids: set[str]) -> int:
    """How many of our instances had been sent upstream when the first C-STORE-RSP came back (the proxy's
    view: the receiver answers as soon as it stored one, before the sender has seen any response)."""
    upstream = bytearray()
    seen_ac = False
    for up, data in proxy.timeline:
        if up:
            upstream += data
        elif not seen_ac:
            seen_ac = True  # the first downstream bytes are the A-ASSOCIATE-AC
        else:
            break
    return sum(1 for uid in uids if uid.encode() in upstream)


@pytest.mark.parametrize("latency", [0.005, 0.05], ids=["5ms", "50ms"])
async def test_every_instance_stored_once_through_latency(tmp_path: Path, latency: float) -> None:
    files = write_files(tmp_path / "send", 30)
    out = tmp_path / "out"
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False, max_ops_performed=8) as scp,
        FaultProxy(scp.port, latency=latency, record=True) as proxy,
    ):
        scu = StoreScu(f"STORE-SCP@127.0.0.1:{proxy.port}", max_ops_invoked=8)
        for path in files.values():
            scu.add_file(path)
        events = Events()
        async with asyncio.timeout(TIMEOUT):
            result = await scu.send(**events.callbacks())  # type: ignore[arg-type]
    assert (result.successful, result.failed) == (30, 0)
    assert stored_uids(out) == Counter(list(files))  # every instance once, nothing else
    assert {f.sop_instance_uid for f in result.files} == set(files)
    assert all(f.status == 0 for f in result.files)
    names = Counter(str(p) for p in files.values())
    assert events.files("sending") == names and events.files("sent") == names and not events.seen["error"]
    assert requests_before_first_response(proxy, set(files)) > 1  # the window was used


async def test_no_window_without_max_ops_invoked(tmp_path: Path) -> None:
    """The control for the window check above: without a proposal, one file at a time."""
    files = write_files(tmp_path / "send", 6)
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False, max_ops_performed=8) as scp,
        FaultProxy(scp.port, latency=0.005, record=True) as proxy,
    ):
        scu = StoreScu(f"127.0.0.1:{proxy.port}")
        for path in files.values():
            scu.add_file(path)
        result = await asyncio.wait_for(scu.send(), TIMEOUT)
    assert result.successful == 6
    assert requests_before_first_response(proxy, set(files)) == 1
    assert b"\x53\x00\x00\x04" not in bytes(proxy.timeline[0][1])  # no window sub-item proposed


async def test_a_receiver_granting_one_gets_one_at_a_time(tmp_path: Path) -> None:
    files = write_files(tmp_path / "send", 6)
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp,  # grants 1
        FaultProxy(scp.port, latency=0.005, record=True) as proxy,
    ):
        scu = StoreScu(f"127.0.0.1:{proxy.port}", max_ops_invoked=8)
        for path in files.values():
            scu.add_file(path)
        result = await asyncio.wait_for(scu.send(), TIMEOUT)
    assert result.successful == 6
    assert requests_before_first_response(proxy, set(files)) == 1


def window_ac(rq: AAssociateRQ, granted: AsyncOperationsWindow | None) -> AAssociateAC:
    return AAssociateAC(
        rq.called_ae_title,
        rq.calling_ae_title,
        tuple(
            PresentationContextAC(pc.context_id, 0, pc.transfer_syntaxes[0])
            for pc in rq.presentation_contexts
        ),
        UserInformation.build(
            max_length=16384, implementation_class_uid=IMPLEMENTATION_UID, async_ops_window=granted
        ),
    )


def store_rsp(request: Command, status: int = 0) -> Command:
    return Command(
        command_field=CommandField.C_STORE_RSP,
        message_id_being_responded_to=request.message_id,
        affected_sop_class_uid=request.affected_sop_class_uid,
        affected_sop_instance_uid=request.affected_sop_instance_uid,
        status=status,
    )


async def test_responses_out_of_order_are_matched_by_message_id(tmp_path: Path) -> None:
    """A raw acceptor grants 4, reads four C-STORE-RQs before answering any, then answers them last first:
    each file gets its own status (one of them a failure), whatever the order."""
    files = write_files(tmp_path / "send", 12)
    refused = sorted(files)[3]
    batches: list[list[str]] = []
    proposed: list[AsyncOperationsWindow | None] = []

    async def script(peer: RawPeer) -> None:
        rq = await peer.read_pdu()
        assert isinstance(rq, AAssociateRQ)
        proposed.append(rq.user_information.async_ops_window)
        await peer.send(encode_pdu(window_ac(rq, AsyncOperationsWindow(4, 1))))
        left = len(files)
        while left:
            batch = [await peer.receive_message() for _ in range(min(4, left))]
            batches.append([m.command.affected_sop_instance_uid or "" for m in batch])
            for message in reversed(batch):
                status = 0xA700 if message.command.affected_sop_instance_uid == refused else 0
                await peer.send_command(message.context_id, store_rsp(message.command, status))
            left -= len(batch)
        assert isinstance(await peer.read_pdu(), AReleaseRQ)
        await peer.send(encode_pdu(AReleaseRP()))

    async with RawAcceptor(script) as acceptor:
        scu = StoreScu(f"127.0.0.1:{acceptor.port}", max_ops_invoked=16, retries=0)
        for path in files.values():
            scu.add_file(path)
        events = Events()
        result = await asyncio.wait_for(scu.send(**events.callbacks()), TIMEOUT)  # type: ignore[arg-type]
    assert not acceptor.errors, acceptor.errors
    assert proposed == [AsyncOperationsWindow(16, 1)]
    assert [len(b) for b in batches] == [4, 4, 4]  # four in flight each time (capped at the grant)
    assert (result.successful, result.failed) == (11, 1)
    by_uid = {f.sop_instance_uid: f for f in result.files}
    assert set(by_uid) == set(files)
    assert by_uid[refused].status == 0xA700 and by_uid[refused].error
    assert all(f.status == 0 for uid, f in by_uid.items() if uid != refused)
    assert [e.sop_instance_uid for e in events.seen["error"]] == [refused]  # type: ignore[attr-defined]
    assert len(events.seen["sent"]) == 11 and len(events.seen["sending"]) == 12


async def test_a_response_to_nothing_outstanding_aborts_and_fails_what_was_in_flight(tmp_path: Path) -> None:
    files = write_files(tmp_path / "send", 3)

    async def script(peer: RawPeer) -> None:
        rq = await peer.read_pdu()
        assert isinstance(rq, AAssociateRQ)
        await peer.send(encode_pdu(window_ac(rq, AsyncOperationsWindow(0, 1))))  # 0: unlimited
        first = await peer.receive_message()
        wrong = dataclasses.replace(first.command, message_id=(first.command.message_id or 0) + 1000)
        await peer.send_command(first.context_id, store_rsp(wrong))
        await peer.wait_closed()

    async with RawAcceptor(script) as acceptor:
        scu = StoreScu(f"127.0.0.1:{acceptor.port}", max_ops_invoked=2, retries=0)
        for path in files.values():
            scu.add_file(path)
        events = Events()
        result = await asyncio.wait_for(scu.send(**events.callbacks()), TIMEOUT)  # type: ignore[arg-type]
    assert not acceptor.errors, acceptor.errors
    assert result.successful == 0 and result.failed == 3
    assert Counter(f.file for f in result.files) == Counter(str(p) for p in files.values())
    assert len(events.seen["error"]) == 3
    assert any("not outstanding" in (f.error or "") for f in result.files)


async def test_abort_mid_window_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """The connection is cut while files are in flight: those fail once each (their responses never came),
    the ones answered count as sent, and the rest go on a new association."""
    files = write_files(tmp_path / "send", 40, rows=64)  # about 8.6 KB each
    out = tmp_path / "out"
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False, max_ops_performed=8) as scp,
        FaultProxy(scp.port, latency=0.005) as proxy,
    ):
        proxy.blackout_after(15 * 8700, 0.3)
        scu = StoreScu(f"127.0.0.1:{proxy.port}", max_ops_invoked=8, retry_backoff=0.2)
        for path in files.values():
            scu.add_file(path)
        events = Events()
        result = await asyncio.wait_for(scu.send(**events.callbacks()), TIMEOUT)  # type: ignore[arg-type]
    assert proxy.cuts == 1
    names = Counter(str(p) for p in files.values())
    assert Counter(f.file for f in result.files) == names  # one outcome per file
    assert result.successful + result.failed == 40
    assert 1 <= result.failed <= 9  # at most the window (and the file being sent) was in flight
    assert events.files("sent") + events.files("error") == names  # one final event per file
    assert not set(events.files("sent")) & set(events.files("error"))
    assert all(
        "no C-STORE response" in (f.error or "")
        or "abort" in (f.error or "").lower()
        or "closed" in (f.error or "")
        for f in result.files
        if f.status is None
    )
    stored = stored_uids(out)
    assert max(stored.values()) == 1  # nothing stored twice
    sent_ok = {f.sop_instance_uid for f in result.files if f.error is None}
    assert sent_ok <= set(stored)  # every file answered Success is there
    assert len(sent_ok) >= 40 - 9


async def test_throttle_applies_before_each_invocation(tmp_path: Path) -> None:
    files = write_files(tmp_path / "send", 6)
    async with StoreScp(
        0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False, max_ops_performed=8
    ) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}", max_ops_invoked=8, throttle_delay_ms=150)
        for path in files.values():
            scu.add_file(path)
        loop = asyncio.get_running_loop()
        began = loop.time()
        result = await asyncio.wait_for(scu.send(), TIMEOUT)
        assert loop.time() - began >= 5 * 0.15 * 0.9  # five pauses between six invocations
    assert result.successful == 6


async def test_max_ops_invoked_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_ops_invoked"):
        StoreScu("127.0.0.1:104", max_ops_invoked=0)
    with pytest.raises(ValueError, match="max_ops_invoked"):
        StoreScu("127.0.0.1:104", max_ops_invoked=70000)
    with pytest.raises(ValueError, match="max_ops_performed"):
        StoreScp(0, out_dir=tmp_path, max_ops_performed=-1)


WINDOW_SUB_ITEM = b"\x53\x00\x00\x04"


def answered_window(proxy: FaultProxy) -> bytes | None:
    """The window sub-item of the first A-ASSOCIATE-AC through ``proxy`` (its 4 values), None without."""
    ac = next(data for up, data in proxy.timeline if not up)
    assert ac[0] == 0x02, "expected an A-ASSOCIATE-AC"
    at = ac.find(WINDOW_SUB_ITEM, 74)
    return None if at < 0 else ac[at + 4 : at + 8]


@pytest.mark.interop
async def test_dcmtk_storescp_grants_no_window_and_still_receives(
    tmp_path: Path, dcmtk_storescp: Peer
) -> None:
    files = write_files(tmp_path / "send", 10)
    async with FaultProxy(dcmtk_storescp.port, record=True) as proxy:
        scu = StoreScu(f"STORESCP@127.0.0.1:{proxy.port}", max_ops_invoked=8)
        for path in files.values():
            scu.add_file(path)
        result = await asyncio.wait_for(scu.send(), TIMEOUT)
    assert (result.successful, result.failed) == (10, 0)
    assert WINDOW_SUB_ITEM in proxy.timeline[0][1]  # proposed
    assert answered_window(proxy) is None  # DCMTK answers none: one at a time
    assert requests_before_first_response(proxy, set(files)) == 1
    stored = {p.name for p in dcmtk_storescp.out_dir.rglob("*") if p.is_file()}
    assert len(stored) == 10


@pytest.mark.interop
@pytest.mark.parametrize("with_handler", [False, True], ids=["no-handler", "EVT_ASYNC_OPS"])
async def test_pynetdicom_grants_no_window(tmp_path: Path, with_handler: bool) -> None:
    """pynetdicom omits the sub-item, or answers 1, 1 when an EVT_ASYNC_OPS handler is bound: it never
    performs operations asynchronously, and gets them one at a time."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

    received: list[str] = []

    def on_store(event: object) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))  # type: ignore[attr-defined]
        return 0

    ae = AE(ae_title="PYNETDICOM")
    ae.add_supported_context(CTImageStorage, EXPLICIT_LE)
    handlers = [(evt.EVT_C_STORE, on_store)]
    if with_handler:
        handlers.append((evt.EVT_ASYNC_OPS, lambda event: (8, 1)))
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    try:
        port = server.server_address[1]
        files = write_files(tmp_path / "send", 6)
        async with FaultProxy(port, record=True) as proxy:
            scu = StoreScu(f"127.0.0.1:{proxy.port}", max_ops_invoked=8)
            for path in files.values():
                scu.add_file(path)
            result = await asyncio.wait_for(scu.send(), TIMEOUT)
    finally:
        server.shutdown()
    assert (result.successful, result.failed) == (6, 0)
    assert sorted(received) == sorted(files)
    assert answered_window(proxy) == (b"\x00\x01\x00\x01" if with_handler else None)
    assert requests_before_first_response(proxy, set(files)) == 1


async def test_silence_while_files_are_in_flight_times_out_each_once(tmp_path: Path) -> None:
    """A receiver that takes the window's worth and never answers: after dimse_timeout of silence the
    association is aborted and each file in flight fails once, with the timeout as its reason."""
    files = write_files(tmp_path / "send", 3)

    async def script(peer: RawPeer) -> None:
        rq = await peer.read_pdu()
        assert isinstance(rq, AAssociateRQ)
        await peer.send(encode_pdu(window_ac(rq, AsyncOperationsWindow(4, 1))))
        for _ in range(3):
            await peer.receive_message()
        await peer.wait_closed(timeout=TIMEOUT)

    async with RawAcceptor(script) as acceptor:
        scu = StoreScu(f"127.0.0.1:{acceptor.port}", max_ops_invoked=4, dimse_timeout=0.5, retries=0)
        for path in files.values():
            scu.add_file(path)
        events = Events()
        loop = asyncio.get_running_loop()
        began = loop.time()
        result = await asyncio.wait_for(scu.send(**events.callbacks()), TIMEOUT)  # type: ignore[arg-type]
        assert 0.45 <= loop.time() - began < TIMEOUT / 2
    assert not acceptor.errors, acceptor.errors
    assert result.failed == 3 and result.successful == 0
    assert all("within 0.5 s (dimse_timeout)" in (f.error or "") for f in result.files), result.files
    assert events.files("error") == Counter(str(p) for p in files.values())


async def test_fail_first_stops_the_batch_at_the_first_failure_in_the_window(tmp_path: Path) -> None:
    files = write_files(tmp_path / "send", 8)

    async def script(peer: RawPeer) -> None:
        rq = await peer.read_pdu()
        assert isinstance(rq, AAssociateRQ)
        await peer.send(encode_pdu(window_ac(rq, AsyncOperationsWindow(4, 1))))
        first = await peer.receive_message()
        await peer.send_command(first.context_id, store_rsp(first.command, 0xA700))
        await peer.wait_closed(timeout=TIMEOUT)

    async with RawAcceptor(script) as acceptor:
        scu = StoreScu(f"127.0.0.1:{acceptor.port}", max_ops_invoked=4, fail_first=True, retries=0)
        for path in files.values():
            scu.add_file(path)
        events = Events()
        with pytest.raises(ExceptionGroup) as raised:  # as without a window: from the sending task
            await asyncio.wait_for(scu.send(**events.callbacks()), TIMEOUT)  # type: ignore[arg-type]
    assert raised.group_contains(DimseError, match=r"0000\.dcm: Refused: Out of Resources \(0xA700\)")
    assert not acceptor.errors, acceptor.errors
    assert len(events.seen["sending"]) == 4  # nothing more went out after the failure
    assert len(events.seen["error"]) == 4 and not events.seen["sent"]


async def test_files_held_in_memory_do_not_grow_with_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The small files read ahead stay as many as without a window: a file's bytes are let go once it has
    gone out, though its response is still awaited (here a window of 16 over 20 ms each way)."""
    import aiodicom.services.send as send_module

    alive, most = [0], [0]

    class Tracked(bytes):
        def __del__(self) -> None:
            alive[0] -= 1

    read = send_module.read_small_file

    def tracked_read(path: str, limit: int) -> bytes | None:
        data = read(path, limit)
        if data is None:
            return None
        alive[0] += 1
        most[0] = max(most[0], alive[0])
        return Tracked(data)

    monkeypatch.setattr(send_module, "read_small_file", tracked_read)
    files = write_files(tmp_path / "send", 40)
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False, max_ops_performed=16) as scp,
        FaultProxy(scp.port, latency=0.02, record=True) as proxy,
    ):
        scu = StoreScu(f"127.0.0.1:{proxy.port}", max_ops_invoked=16)
        for path in files.values():
            scu.add_file(path)
        result = await asyncio.wait_for(scu.send(), TIMEOUT)
    assert result.successful == 40
    assert requests_before_first_response(proxy, set(files)) > 8  # the window was wide open
    lookahead = 1 + (os.cpu_count() or 1)  # the files prepared ahead (1 + conversion workers), as without
    assert most[0] <= lookahead + 2, (most[0], lookahead)
    assert alive[0] == 0  # nothing kept after the send
