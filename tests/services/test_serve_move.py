"""C-MOVE served from handlers: into an aiodicom StoreScp (byte for byte, with MoveScu), DCMTK movescu into a
DCMTK storescp; unknown destinations, refusing destinations, the resolver hook."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread

from aiodicom import MoveScu, QueryRetrieveScp, StoreScp
from aiodicom.dimse import Command, CommandField
from aiodicom.net.client import connect
from aiodicom.services.query import encode_identifier
from aiodicom.services.serve_common import QueryContext
from tests.dataset.samples import split_meta
from tests.interop.peers import free_port, run_dcmtk
from tests.interop.studies import QrData
from tests.services.serving import Catalog

STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **options: Any) -> AsyncIterator[QueryRetrieveScp]:
    scp = QueryRetrieveScp(port=0, host="127.0.0.1", out_dir=tmp_path / "in", archive=False, **options)
    async with scp:
        yield scp


def body(data: bytes) -> bytes:
    return data[split_meta(data)[1] :]


async def _raw_move(port: int, destination: str, query: dict[str, Any]) -> list[Command]:
    async with connect(f"127.0.0.1:{port}", contexts=[STUDY_MOVE], calling_ae_title="MOVER") as assoc:
        ctx = assoc.context_for(STUDY_MOVE)
        identifier = encode_identifier(query, ctx.transfer_syntax)
        await assoc.send(ctx.context_id, Command.c_move_rq(11, STUDY_MOVE, destination), identifier)
        responses = []
        while True:
            message = await assoc.receive_response(11, CommandField.C_MOVE_RSP, 30)
            responses.append(message.command)
            if message.command.status not in (0xFF00, 0xFF01):
                return responses


async def test_move_into_an_aiodicom_receiver_byte_for_byte(tmp_path: Path, qr_data: QrData) -> None:
    catalog = Catalog(qr_data)
    destinations: list[tuple[str, QueryContext]] = []
    received: list[Any] = []

    def move(query: Dataset, destination: str, context: QueryContext) -> list[Path]:
        destinations.append((destination, context))
        return catalog.paths(query)

    receiver = StoreScp(port=0, host="127.0.0.1", ae_title="RECEIVER", out_dir=tmp_path / "dest")
    receiver.on_file_stored(received.append)
    async with receiver:
        table = {"DEST": f"RECEIVER@127.0.0.1:{receiver.port}"}
        async with serving(
            tmp_path, on_find=catalog.matches, on_move=move, remote_aes=table, pending_interval=0
        ) as scp:
            scu = MoveScu(f"QR-SCP@127.0.0.1:{scp.port}", calling_ae_title="MOVER")
            result = await scu.move_study({"PatientID": "QR-PAT-1"}, move_destination="DEST")
            responses = await _raw_move(
                scp.port,
                "DEST",
                {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": qr_data.b.study_instance_uid},
            )
    study = qr_data.a
    assert result.status == 0 and result.completed == len(study.instances)
    for inst in study.instances:
        path = (
            tmp_path
            / "dest"
            / inst.study_instance_uid
            / inst.series_instance_uid
            / f"{inst.sop_instance_uid}.dcm"
        )
        assert body(path.read_bytes()) == body(inst.path.read_bytes()), inst.source
    assert [r.remaining for r in responses] == [2, 1, 0, None]
    assert [r.completed for r in responses] == [1, 2, 3, 3] and responses[-1].status == 0
    destination, context = destinations[-1]
    assert (
        destination == "DEST" and context.move_destination == "DEST" and context.calling_ae_title == "MOVER"
    )
    assert len(received) == len(study.instances) + 3
    # each sub-operation says who asked for it: the move's requestor and its message ID
    assert all(r.move_originator_ae_title == "MOVER" for r in received)
    assert {r.move_originator_message_id for r in received[-3:]} == {11}


async def test_pending_responses_come_at_most_once_per_interval(tmp_path: Path, qr_data: QrData) -> None:
    """One pending response after the first sub-operation, then one per ``pending_interval`` at most: with
    an interval longer than the move, the first and the final response are all; 0 sends one per instance."""
    paths = [inst.path for inst in qr_data.a.instances + qr_data.b.instances]
    receiver = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "dest")
    async with receiver:
        table = {"DEST": f"127.0.0.1:{receiver.port}"}
        query = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2"}
        every = [*range(1, len(paths) + 1), len(paths)]
        for interval, expected in ((3600.0, [1, len(paths)]), (0.0, every)):
            options = {"remote_aes": table, "pending_interval": interval}
            async with serving(tmp_path, on_move=lambda q, d, c: paths, **options) as scp:
                responses = await _raw_move(scp.port, "DEST", query)
            assert [r.completed for r in responses] == expected, interval
            assert [r.status for r in responses] == [0xFF00] * (len(expected) - 1) + [0]
            assert responses[0].remaining == len(paths) - 1 and responses[-1].remaining is None
    with pytest.raises(ValueError, match="pending_interval"):
        QueryRetrieveScp(port=0, out_dir=tmp_path / "x", archive=False, pending_interval=-1)


async def test_unknown_destination_and_the_resolver(tmp_path: Path, qr_data: QrData) -> None:
    calls: list[str] = []
    ct = qr_data.b.instances[0]

    def move(query: Dataset, destination: str, context: QueryContext) -> list[Path]:
        calls.append(destination)
        return [ct.path]

    receiver = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "dest")
    async with receiver, serving(tmp_path, on_move=move) as scp:
        unknown = await _raw_move(
            scp.port, "NOBODY", {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2"}
        )
        assert [r.status for r in unknown] == [0xA801] and calls == []

        @scp.on_resolve_ae
        async def resolve(title: str) -> str | None:
            return f"127.0.0.1:{receiver.port}" if title == "LATE" else None

        found = await _raw_move(scp.port, "LATE", {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2"})
        assert found[-1].status == 0 and found[-1].completed == 1 and calls == ["LATE"]


async def test_refusing_destination_fails_every_sub_operation(tmp_path: Path, qr_data: QrData) -> None:
    instances = qr_data.b.instances

    async def move(query: Dataset, destination: str, context: QueryContext) -> AsyncIterator[Path]:
        for inst in instances:
            yield inst.path

    closed_port = free_port()  # nothing listens there
    refusing = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "r", allowed_calling_ae_titles=["OTHER"])
    async with refusing:
        table = {"GONE": f"127.0.0.1:{closed_port}", "REFUSES": f"127.0.0.1:{refusing.port}"}
        async with serving(tmp_path, on_move=move, remote_aes=table) as scp:
            for title in ("GONE", "REFUSES"):
                responses = await _raw_move(
                    scp.port, title, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2"}
                )
                final = responses[-1]
                assert (final.status, final.completed, final.failed) == (0xA702, 0, 3), title
                assert final.remaining is None  # an async generator: the total was never known


@pytest.mark.interop
async def test_dcmtk_movescu_into_dcmtk_storescp(tmp_path: Path, qr_data: QrData, qr_storescp: Any) -> None:
    catalog = Catalog(qr_data)
    port = free_port()
    dest = qr_storescp(port)
    table = {"STORESCP": f"127.0.0.1:{port}"}
    async with serving(tmp_path, on_move=lambda q, d, c: catalog.paths(q), remote_aes=table) as scp:
        proc = await asyncio.to_thread(
            run_dcmtk,
            "movescu", "-S", "-aec", "QR-SCP", "-aem", "STORESCP", "-k", "QueryRetrieveLevel=STUDY",
            "-k", f"StudyInstanceUID={qr_data.b.study_instance_uid}", "127.0.0.1", str(scp.port),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = {dcmread(f).SOPInstanceUID: f for f in dest.out_dir.iterdir()}
    assert set(got) == {i.sop_instance_uid for i in qr_data.b.instances}
    for inst in qr_data.b.instances:
        source, arrived = dcmread(inst.path), dcmread(got[inst.sop_instance_uid])
        if 0xFFFCFFFC in source:  # storescp drops Data Set Trailing Padding when it stores
            del source[0xFFFCFFFC]
        assert set(arrived.keys()) == set(source.keys())
        assert all(arrived[e.tag] == e for e in source)


def test_the_servers_default_pending_interval_is_the_services() -> None:
    from aiodicom.scp.serving import PENDING_INTERVAL
    from aiodicom.services.serve_retrieve import DEFAULT_PENDING_INTERVAL, RetrieveSettings

    assert (
        PENDING_INTERVAL
        == DEFAULT_PENDING_INTERVAL
        == RetrieveSettings.__dataclass_fields__["pending_interval"].default
    )
