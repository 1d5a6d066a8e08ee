"""What the tests of the built-in archive check: stored files, answers, that it still serves."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset

from aiodicom import EchoScu, FindScu, QueryBuilder
from aiodicom.dimse import Command, CommandField
from aiodicom.net.client import connect
from tests.dataset.samples import split_meta
from tests.interop.pacs import Pacs
from tests.interop.studies import Instance, QrData

pytestmark = pytest.mark.interop

STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


# ------------------------------------------------------------------------------------------- helpers


def stored_path(pacs: Pacs, inst: Instance) -> Path:
    """Where the archive keeps ``inst`` (StoreScp's layout under ``--out-dir``)."""
    assert pacs.out_dir is not None
    return pacs.out_dir / inst.study_instance_uid / inst.series_instance_uid / f"{inst.sop_instance_uid}.dcm"


def body(data: bytes) -> bytes:
    """The data set of a Part 10 file, without preamble and file meta."""
    return data[split_meta(data)[1] :]


def assert_same_dataset(received: Dataset, inst: Instance, stored: Path) -> None:
    """``received`` is element by element (VR, value; Pixel Data byte for byte) the archive's ``stored`` file
    of ``inst``, in its transfer syntax, group 0002 aside (each writer makes its own file meta). And that
    file is the test file as DCMTK's storescu (the archive's loader) sent it: without Data Set Trailing
    Padding, and with the encapsulated Pixel Data that two pydicom test files declare OW as OB."""
    kept = pydicom.dcmread(stored)
    assert str(received.file_meta.TransferSyntaxUID) == inst.transfer_syntax_uid, inst.source
    assert str(kept.file_meta.TransferSyntaxUID) == inst.transfer_syntax_uid, inst.source
    assert set(received.keys()) == set(kept.keys()), inst.source
    for elem in kept:
        assert received[elem.tag] == elem, f"{inst.source}: {elem.keyword} differs"
    source = pydicom.dcmread(inst.path)
    source.pop(0xFFFCFFFC, None)
    assert set(source.keys()) == set(kept.keys()), inst.source
    for elem in source:
        if elem.tag == 0x7FE00010:
            assert kept.PixelData == source.PixelData, inst.source
        else:
            assert kept[elem.tag] == elem, f"{inst.source}: {elem.keyword} differs"


async def study_uids(pacs: Pacs) -> list[str]:
    """The archive's studies, by a study-level C-FIND on a new association: its index as the world sees it."""
    result = await FindScu(pacs.address).find(QueryBuilder.study())
    assert result.status == 0x0000
    return sorted(str(m["StudyInstanceUID"]) for m in result.matches)


async def assert_still_serving(pacs: Pacs, qr_data: QrData) -> None:
    """A C-ECHO and a C-FIND still work, and the index holds studies A and B (nothing gained or lost)."""
    echo = await EchoScu(pacs.address).echo()
    assert echo.status == 0x0000
    assert await study_uids(pacs) == sorted(s.study_instance_uid for s in qr_data.studies)


async def raw_find(pacs: Pacs, identifier: bytes, sop_class: str = STUDY_FIND) -> Command:
    """A C-FIND whose identifier is the bytes given (implicit VR little endian): the final response."""
    implicit = "1.2.840.10008.1.2"
    async with connect(pacs.address, contexts=[(sop_class, [implicit])]) as assoc:
        ctx = assoc.context_for(sop_class)
        await assoc.send(ctx.context_id, Command.c_find_rq(7, sop_class), identifier)
        while True:
            message = await assoc.receive_response(7, CommandField.C_FIND_RSP, 30)
            if message.command.status not in (0xFF00, 0xFF01):
                return message.command
