"""Negotiation and DIMSE as the standard says, against a scripted raw peer over loopback.

Each malformed request gets the refusal PS3.7/PS3.8 name (an A-ASSOCIATE-RJ, an A-ABORT, a context result,
a failure status), never an unhandled exception or a traceback in the log, and the server then serves the
next association.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from aiodicom.dimse import Command, CommandField
from aiodicom.scp.store import StoreScp
from aiodicom.ul import encode_pdu
from aiodicom.ul.items import (
    ImplementationClassUID,
    MaximumLength,
    PresentationContextRQ,
    RoleSelection,
    UserInformation,
)
from aiodicom.ul.pdu import AAbort, AAssociateAC, AAssociateRJ, AAssociateRQ
from tests.interop.rawpeer import (
    A_ASSOCIATE_RQ,
    A_RELEASE_RQ,
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    IMPLEMENTATION_UID,
    IMPLICIT,
    IMPLICIT_LE,
    P_DATA_TF,
    VERIFICATION,
    RawPeer,
    accept_all,
    associate_rq,
    command_bytes,
    ct_image,
    image_pixel,
    instance,
    native_pixels,
    pdu_header,
    ui,
    us,
)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
BOGUS_SYNTAX = "1.2.3.4.5.6"


@pytest.fixture
async def scp(tmp_path: Path) -> AsyncIterator[StoreScp]:
    async with StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as server:
        yield server


@pytest.fixture
def log_records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="aiodicom")
    return caplog


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.levelname} {r.name}: {r.getMessage()}" for r in bad]


STANDARD = [(1, VERIFICATION, [IMPLICIT_LE]), (3, CT_IMAGE_STORAGE, [EXPLICIT_LE])]


@asynccontextmanager
async def associated(
    port: int, contexts: list[tuple[int, str, list[str]]] | AAssociateRQ = STANDARD
) -> AsyncIterator[RawPeer]:
    async with await RawPeer.connect(port) as peer:
        await peer.associate(contexts)
        yield peer


async def serves_a_new_association(port: int) -> None:
    async with associated(port) as peer:
        assert (await peer.c_echo(1)).status == 0
        await peer.release()


def result_of(ac: AAssociateAC, context_id: int) -> tuple[int, str | None]:
    (answer,) = [pc for pc in ac.presentation_contexts if pc.context_id == context_id]
    return answer.result, answer.transfer_syntax


def files_in(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.stat().st_size)


# --------------------------------------------------------------------------------------- negotiation


async def test_all_mode_rejects_a_transfer_syntax_dicom_does_not_define(scp: StoreScp) -> None:
    async with await RawPeer.connect(scp.port) as peer:
        ac = await peer.associate([(1, CT_IMAGE_STORAGE, [BOGUS_SYNTAX]), (3, VERIFICATION, [IMPLICIT_LE])])
        assert result_of(ac, 1)[0] == 4, f"{BOGUS_SYNTAX} accepted: {ac.presentation_contexts}"
        assert result_of(ac, 3) == (0, IMPLICIT_LE)
        assert (await peer.c_echo(3)).status == 0
        await peer.release()


async def test_a_listed_private_transfer_syntax_is_accepted(tmp_path: Path) -> None:
    async with (
        StoreScp(
            port=0, host="127.0.0.1", out_dir=tmp_path, fsync=False, transfer_syntaxes=[BOGUS_SYNTAX]
        ) as scp,
        await RawPeer.connect(scp.port) as peer,
    ):
        ac = await peer.associate([(1, CT_IMAGE_STORAGE, [BOGUS_SYNTAX])])
        assert result_of(ac, 1) == (0, BOGUS_SYNTAX)
        await peer.release()


async def test_a_request_without_presentation_contexts_is_rejected(
    scp: StoreScp, log_records: pytest.LogCaptureFixture
) -> None:
    async with await RawPeer.connect(scp.port) as peer:
        answer = await peer.request(associate_rq([]))
        assert isinstance(answer, AAssociateRJ), f"expected A-ASSOCIATE-RJ (1, 1, 1), received {answer!r}"
        assert (answer.result, answer.source, answer.reason) == (1, 1, 1)
    await serves_a_new_association(scp.port)
    no_traceback(log_records)


def raw_request(contexts: list[PresentationContextRQ]) -> bytes:
    """Encoded as given: the encoder does not check IDs, so duplicates and even IDs go on the wire."""
    user = UserInformation.build(max_length=16384, implementation_class_uid=IMPLEMENTATION_UID)
    return encode_pdu(AAssociateRQ("ANY-SCP", "RAWPEER", tuple(contexts), user))


@pytest.mark.parametrize(
    "contexts",
    [
        [
            PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),
            PresentationContextRQ(1, CT_IMAGE_STORAGE, (EXPLICIT_LE,)),
        ],
        [PresentationContextRQ(2, VERIFICATION, (IMPLICIT_LE,))],
        [
            PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),
            PresentationContextRQ(4, CT_IMAGE_STORAGE, (EXPLICIT_LE,)),
        ],
    ],
    ids=["duplicate-ids", "even-id", "even-second-id"],
)
async def test_duplicate_or_even_context_ids_are_aborted(
    scp: StoreScp, contexts: list[PresentationContextRQ], log_records: pytest.LogCaptureFixture
) -> None:
    async with await RawPeer.connect(scp.port) as peer:
        answer = await peer.request(raw_request(contexts))
        assert isinstance(answer, AAbort), f"expected A-ABORT (2, 6), received {answer!r}"
        assert (answer.source, answer.reason) == (2, 6)
    await serves_a_new_association(scp.port)
    no_traceback(log_records)


def roles_of(ac: AAssociateAC) -> dict[str, tuple[bool, bool]]:
    return {r.sop_class_uid: (r.scu_role, r.scp_role) for r in ac.user_information.role_selections}


async def test_role_selection_grants_scu_and_turns_down_scp(scp: StoreScp) -> None:
    rq = associate_rq(
        [(1, CT_IMAGE_STORAGE, [EXPLICIT_LE]), (3, VERIFICATION, [IMPLICIT_LE])],
        role_selections=[RoleSelection(CT_IMAGE_STORAGE, True, True)],
    )
    async with await RawPeer.connect(scp.port) as peer:
        ac = await peer.associate(rq)
        assert result_of(ac, 1) == (0, EXPLICIT_LE)
        assert roles_of(ac).get(CT_IMAGE_STORAGE) == (True, False)
        rsp = await peer.c_store(1, ct_image())
        assert rsp.status == 0
        await peer.release()


async def test_a_requestor_left_without_a_role_has_its_contexts_rejected(scp: StoreScp) -> None:
    """SCU=0, SCP=1 for CT: it would only receive, which a StoreScp never sends; no role is left."""
    rq = associate_rq(
        [
            (1, CT_IMAGE_STORAGE, [EXPLICIT_LE]),
            (3, CT_IMAGE_STORAGE, [IMPLICIT_LE]),
            (5, VERIFICATION, [IMPLICIT_LE]),
        ],
        role_selections=[RoleSelection(CT_IMAGE_STORAGE, False, True)],
    )
    async with await RawPeer.connect(scp.port) as peer:
        ac = await peer.associate(rq)
        assert result_of(ac, 1)[0] == 1 and result_of(ac, 3)[0] == 1, ac.presentation_contexts
        assert roles_of(ac).get(CT_IMAGE_STORAGE) == (False, False)
        assert result_of(ac, 5) == (0, IMPLICIT_LE)
        await peer.release()


def with_max_pdu(length: int) -> AAssociateRQ:
    return associate_rq(STANDARD, max_pdu_length=length)


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 6])
async def test_a_peer_maximum_pdu_length_below_7_is_aborted(
    scp: StoreScp, length: int, log_records: pytest.LogCaptureFixture
) -> None:
    """A P-DATA-TF needs 6 bytes for its PDV header: no value would fit (PS3.8 D.1)."""
    async with await RawPeer.connect(scp.port) as peer:
        answer = await peer.request(with_max_pdu(length))
        assert isinstance(answer, AAbort), f"expected A-ABORT (2, 6), received {answer!r}"
        assert (answer.source, answer.reason) == (2, 6)
    await serves_a_new_association(scp.port)
    no_traceback(log_records)


@pytest.mark.parametrize("length", [0, 7, 8, 16384])
async def test_a_peer_maximum_pdu_length_of_0_or_7_and_more_works(
    scp: StoreScp, length: int, log_records: pytest.LogCaptureFixture
) -> None:
    async with await RawPeer.connect(scp.port) as peer:
        await peer.associate(with_max_pdu(length))
        assert (await peer.c_echo(1)).status == 0  # the response in PDVs of 1 byte for 7
        await peer.release()
    no_traceback(log_records)


def large_user_information(size: int = 65528) -> UserInformation:
    """A legal user-information item of exactly ``size`` bytes: role selections for distinct SOP classes
    (a requestor may propose them for classes it has no context for), each of which the AC may echo."""
    fixed: list[MaximumLength | ImplementationClassUID | RoleSelection] = [
        MaximumLength(16384),
        ImplementationClassUID(IMPLEMENTATION_UID),
        RoleSelection(CT_IMAGE_STORAGE, True, False),
    ]
    left = size - (8 + 4 + len(IMPLEMENTATION_UID) + 8 + len(CT_IMAGE_STORAGE))
    count = -(-left // 72)  # a role sub-item is 8 bytes and its UID, of at most 64 characters
    sizes = [left // count + (i < left % count) for i in range(count)]
    root = "1.2.826.0.1.3680043.9.7777.3."
    roles = [
        RoleSelection(root + "9" + str(n).zfill(item_size - 8 - len(root) - 1), True, False)
        for n, item_size in enumerate(sizes)
    ]
    info = UserInformation((*fixed, *roles))
    encoded = bytearray()
    info.encode(encoded)
    assert struct.unpack(">H", encoded[2:4])[0] == size and len({r.sop_class_uid for r in roles}) == count
    return info


async def test_an_ac_echoing_a_65528_byte_user_information_item_fits(
    scp: StoreScp, log_records: pytest.LogCaptureFixture
) -> None:
    rq = AAssociateRQ(
        "ANY-SCP",
        "RAWPEER",
        tuple(PresentationContextRQ(cid, abstract, tuple(ts)) for cid, abstract, ts in STANDARD),
        large_user_information(),
    )
    async with await RawPeer.connect(scp.port) as peer:
        answer = await peer.request(rq)
        assert isinstance(answer, AAssociateAC), f"expected A-ASSOCIATE-AC, received {answer!r}"
        assert result_of(answer, 3) == (0, EXPLICIT_LE)
        assert (await peer.c_echo(1)).status == 0
        assert (await peer.c_store(3, ct_image())).status == 0
        await peer.release()
    no_traceback(log_records)


def flood_request(count: int = 20000) -> bytes:
    """An A-ASSOCIATE-RQ with ``count`` presentation contexts (odd IDs 1-255 repeat), under 1 MiB."""
    contexts = tuple(
        PresentationContextRQ(1 + 2 * (i % 128), VERIFICATION, (IMPLICIT_LE,)) for i in range(count)
    )
    user = UserInformation.build(max_length=16384, implementation_class_uid=IMPLEMENTATION_UID)
    raw = encode_pdu(AAssociateRQ("ANY-SCP", "RAWPEER", contexts, user))
    assert len(raw) < 1 << 20
    return raw


def refused(answer: object) -> bool:
    if isinstance(answer, AAbort):
        return (answer.source, answer.reason) == (2, 6)
    return isinstance(answer, AAssociateRJ)


async def test_tens_of_thousands_of_contexts_are_refused_quickly(scp: StoreScp) -> None:
    raw = flood_request()
    async with await RawPeer.connect(scp.port) as peer:
        started = time.monotonic()
        answer = await peer.request(raw)
        took = time.monotonic() - started
    assert refused(answer), f"expected A-ABORT (2, 6) or A-ASSOCIATE-RJ, received {type(answer).__name__}"
    assert took < 1.0, f"refused after {took:.2f} s"


async def test_context_floods_do_not_delay_another_association(scp: StoreScp) -> None:
    raw = flood_request()
    async with associated(scp.port) as echoer:
        started = time.monotonic()
        await echoer.c_echo(1)
        baseline = time.monotonic() - started
        floods = [await RawPeer.connect(scp.port) for _ in range(10)]
        try:
            for flood in floods:
                flood.writer.write(raw)
            started = time.monotonic()
            await echoer.c_echo(1, timeout=30)
            delay = time.monotonic() - started - baseline
            answers = await asyncio.gather(*(f.read_pdu(30) for f in floods), return_exceptions=True)
        finally:
            for flood in floods:
                await flood.close()
        await echoer.release()
    print(f"C-ECHO during 10 floods: {delay + baseline:.3f} s (baseline {baseline:.3f} s)")
    assert delay < 0.5, f"the C-ECHO was delayed by {delay:.2f} s"
    assert all(refused(a) for a in answers), [type(a).__name__ for a in answers]


@pytest.mark.parametrize(
    "raw",
    [
        pdu_header(P_DATA_TF, 0xFFFFFFFF),
        pdu_header(P_DATA_TF, 1 << 20),
        pdu_header(A_RELEASE_RQ, 4) + bytes(4),
        pdu_header(0x02, 1 << 20),  # an A-ASSOCIATE-AC header
        encode_pdu(accept_all(associate_rq(STANDARD))),
    ],
    ids=[
        "p-data-tf-header-4-gib",
        "p-data-tf-header-1-mib",
        "a-release-rq",
        "a-associate-ac-header",
        "a-associate-ac",
    ],
)
async def test_any_other_pdu_before_association_aborts_at_once(
    scp: StoreScp, raw: bytes, log_records: pytest.LogCaptureFixture
) -> None:
    async with await RawPeer.connect(scp.port) as peer:
        started = time.monotonic()
        await peer.send(raw)
        try:
            answer = await peer.read_pdu(timeout=2.0)
        except TimeoutError:
            raise AssertionError("no A-ABORT within 2 s: the server waits for the bytes promised") from None
        assert isinstance(answer, AAbort), f"expected A-ABORT, received {answer!r}"
        assert await peer.closes_within(2.0), "A-ABORT sent, but the connection stayed open"
        assert time.monotonic() - started < 1.0
    await serves_a_new_association(scp.port)
    no_traceback(log_records)


def test_request_headers_are_what_they_say() -> None:
    """The raw peer's hand-built headers (a check on the test helper itself)."""
    assert pdu_header(A_ASSOCIATE_RQ, 1 << 20) == b"\x01\x00\x00\x10\x00\x00"
    assert encode_pdu(AAbort(2, 6))[6:] == b"\x00\x00\x02\x06"


# --------------------------------------------------------------------------------------------- DIMSE


async def test_c_store_on_the_verification_context_is_sop_class_not_supported(
    scp: StoreScp, tmp_path: Path, log_records: pytest.LogCaptureFixture
) -> None:
    inst = ct_image(enc=IMPLICIT)  # in the Verification context's transfer syntax
    async with associated(scp.port) as peer:
        rsp = await peer.c_store(1, inst)
        assert rsp.status == 0x0122, f"0x{rsp.status or 0:04X} {rsp.error_comment!r}"
        assert (await peer.c_echo(1)).status == 0
        await peer.release()
    assert files_in(tmp_path / "out") == []
    no_traceback(log_records)


async def test_c_echo_on_a_storage_context_is_sop_class_not_supported(scp: StoreScp) -> None:
    async with associated(scp.port) as peer:
        await peer.send_command(3, Command.c_echo_rq(7))
        rsp = (await peer.receive_message()).command
        assert rsp.command_field == CommandField.C_ECHO_RSP and rsp.message_id_being_responded_to == 7
        assert rsp.status == 0x0122, f"0x{rsp.status or 0:04X}"
        assert (await peer.c_echo(1)).status == 0
        await peer.release()


@pytest.mark.parametrize("differs", ["instance", "class"])
async def test_a_data_set_that_differs_from_its_command_keeps_0xa900(
    scp: StoreScp, tmp_path: Path, differs: str
) -> None:
    inst = ct_image()
    other = (
        instance(sop_class=MR_IMAGE_STORAGE, sop_instance=inst.sop_instance)
        if differs == "class"
        else ct_image()
    )
    async with associated(scp.port) as peer:
        rsp = await peer.c_store(3, inst, data=other.data)
        assert rsp.status == 0xA900, f"0x{rsp.status or 0:04X} {rsp.error_comment!r}"
        await peer.release()
    assert files_in(tmp_path / "out") == []


ECHO_WITHOUT_MESSAGE_ID = command_bytes(
    [(0x0002, ui(VERIFICATION)), (0x0100, us(0x0030)), (0x0800, us(0x0101))]
)
ECHO_WITHOUT_COMMAND_FIELD = command_bytes(
    [(0x0002, ui(VERIFICATION)), (0x0110, us(1)), (0x0800, us(0x0101))]
)


@pytest.mark.parametrize(
    "command",
    [ECHO_WITHOUT_MESSAGE_ID, ECHO_WITHOUT_COMMAND_FIELD],
    ids=["without-message-id", "without-command-field"],
)
async def test_a_command_that_cannot_be_answered_is_aborted_by_the_user(
    scp: StoreScp, command: bytes, log_records: pytest.LogCaptureFixture
) -> None:
    async with associated(scp.port) as peer:
        await peer.send_command(1, command)
        answer = await peer.read_pdu()
        assert isinstance(answer, AAbort), f"expected A-ABORT (source 0), received {answer!r}"
        assert answer.source == 0, answer
        assert await peer.closes_within(2.0), "A-ABORT sent, but the connection stayed open"
    await serves_a_new_association(scp.port)
    no_traceback(log_records)


def store_command(sop_instance: bytes | None) -> bytes:
    elements = [(0x0002, ui(CT_IMAGE_STORAGE)), (0x0100, us(0x0001)), (0x0110, us(9)), (0x0700, us(0))]
    elements.append((0x0800, us(0x0001)))
    if sop_instance is not None:
        elements.append((0x1000, ui(sop_instance)))
    return command_bytes(elements)


@pytest.mark.parametrize(
    "uid", [None, b"abc", "1.2.\u00e9".encode()], ids=["missing", "not-a-uid", "not-ascii"]
)
async def test_a_bad_affected_sop_instance_uid_is_a_failure_and_the_association_goes_on(
    scp: StoreScp, tmp_path: Path, uid: bytes | None, log_records: pytest.LogCaptureFixture
) -> None:
    # the data set names the same instance as the command (a valid one when the command has none)
    inst = ct_image() if uid is None else instance(image_pixel() + native_pixels(512), sop_instance=uid)
    async with associated(scp.port) as peer:
        rsp = await peer.c_store(3, inst, command=store_command(uid))
        status = rsp.status if rsp.status is not None else -1
        assert 0xC000 <= status <= 0xCFFF, f"0x{status:04X} {rsp.error_comment!r}"
        assert rsp.message_id_being_responded_to == 9
        assert (await peer.c_echo(1)).status == 0
        await peer.release()
    assert files_in(tmp_path / "out") == []
    no_traceback(log_records)
