"""QueryRetrieveScp and the handler registration of StoreScp: what the policy accepts once a handler is
registered, role selection for C-GET per SOP class, extended negotiation declined, registration rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiodicom import FindScu, QueryBuilder, QueryRetrieveScp, StoreScp
from aiodicom.net.client import connect
from aiodicom.ul.items import RoleSelection, SOPClassExtendedNegotiation, UserInformation
from aiodicom.ul.negotiation import accept, propose_contexts
from aiodicom.ul.pdu import AAssociateRQ

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
PATIENT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
WORKLIST = "1.2.840.10008.5.1.4.31"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"
IMPLICIT = "1.2.840.10008.1.2"


def _request(
    classes: list[str], roles: tuple[RoleSelection, ...] = (), extended: bool = False
) -> AAssociateRQ:
    info = UserInformation.build(
        max_length=16384,
        implementation_class_uid="1.2.3",
        role_selections=roles,
        sop_class_extended=(SOPClassExtendedNegotiation(STUDY_FIND, b"\x01"),) if extended else (),
    )
    return AAssociateRQ("QR-SCP", "SCU", propose_contexts((c, [IMPLICIT]) for c in classes), info)


def _accepted(scp: StoreScp, rq: AAssociateRQ) -> dict[str, tuple[bool, bool]]:
    _, contexts = accept(rq, scp.policy, max_pdu_length=16384)
    return {c.abstract_syntax: (c.scu_role, c.scp_role) for c in contexts.values()}


def test_registering_a_handler_accepts_its_sop_classes_only(tmp_path: Path) -> None:
    scp = QueryRetrieveScp(port=0, out_dir=tmp_path, archive=False)
    rq = _request([STUDY_FIND, STUDY_GET, PATIENT_MOVE, WORKLIST, CT])
    assert set(_accepted(scp, rq)) == {CT}
    scp.on_find(lambda q, c: [])
    assert set(_accepted(scp, rq)) == {CT, STUDY_FIND}
    scp.on_move(lambda q, d, c: [])
    scp.on_worklist(lambda q, c: [])
    assert set(_accepted(scp, rq)) == {CT, STUDY_FIND, PATIENT_MOVE, WORKLIST}


def test_get_grants_the_scp_role_per_sop_class_and_extended_negotiation_is_declined(tmp_path: Path) -> None:
    scp = StoreScp(port=0, out_dir=tmp_path)
    roles = (RoleSelection(CT, False, True), RoleSelection(MR, True, True))
    rq = _request([STUDY_GET, CT, MR], roles, extended=True)
    # no C-GET yet: SCP roles refused, CT (proposed as SCP only) left with no role is rejected
    assert _accepted(scp, rq) == {MR: (True, False)}
    scp.on_get(lambda q, c: [])
    assert _accepted(scp, rq) == {STUDY_GET: (True, False), CT: (False, True), MR: (True, True)}
    ac, _ = accept(rq, scp.policy, max_pdu_length=16384)
    answered = {r.sop_class_uid: (r.scu_role, r.scp_role) for r in ac.user_information.role_selections}
    assert answered == {CT: (False, True), MR: (True, True)}
    assert ac.user_information.sop_class_extended == ()


def test_query_classes_are_taken_uncompressed_whatever_the_transfer_syntax_mode(tmp_path: Path) -> None:
    scp = QueryRetrieveScp(
        port=0, out_dir=tmp_path, transfer_syntax_mode="custom", transfer_syntaxes=[JPEG_LOSSLESS]
    )
    scp.on_find(lambda q, c: [])
    rq = _request([STUDY_FIND, CT])
    _, contexts = accept(rq, scp.policy, max_pdu_length=16384)
    assert [(c.abstract_syntax, c.transfer_syntax) for c in contexts.values()] == [(STUDY_FIND, IMPLICIT)]


def test_registration_rules(tmp_path: Path) -> None:
    scp = QueryRetrieveScp(port=0, out_dir=tmp_path, archive=False, remote_aes={"DEST": "AE@127.0.0.1:104"})
    assert scp.ae_title == "QR-SCP"
    assert (scp.remote_aes["DEST"].host, scp.remote_aes["DEST"].port) == ("127.0.0.1", 104)
    assert scp.remote_aes["DEST"].ae_title == "AE"
    with pytest.raises(TypeError):
        scp.on_find("not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="remote_aes"):
        QueryRetrieveScp(port=0, out_dir=tmp_path, remote_aes={"DEST": "no port"})

    def handler(query: object, context: object) -> list[object]:
        return []

    assert scp.on_get(handler) is handler  # usable as a decorator
    assert scp.query_handler("get") is handler and scp.query_handler("move") is None
    workers = StoreScp(port=0, out_dir=tmp_path, workers=2)
    with pytest.raises(ValueError, match="workers"):
        workers.on_find(handler)


async def test_a_handler_registered_while_serving_serves_the_next_association(tmp_path: Path) -> None:
    scp = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path)
    async with scp:
        with pytest.raises(Exception, match="accepted none"):
            await FindScu(f"127.0.0.1:{scp.port}").find(QueryBuilder.study())
        scp.on_find(lambda q, c: [{"StudyInstanceUID": "1.2.3"}])
        result = await FindScu(f"127.0.0.1:{scp.port}").find(QueryBuilder.study())
        assert [m["StudyInstanceUID"] for m in result.matches] == ["1.2.3"]
        async with connect(f"127.0.0.1:{scp.port}", contexts=[CT]) as assoc:  # storage still served
            assert assoc.context_for(CT)


def test_with_out_dir_it_is_an_archive_unless_told_not_to(tmp_path: Path) -> None:
    scp = QueryRetrieveScp(port=0, out_dir=tmp_path / "a")
    assert scp.archive is not None and scp.archive.out_dir == (tmp_path / "a").resolve()
    assert all(scp.query_handler(s) is not None for s in ("find", "get", "move"))
    assert scp.query_handler("worklist") is None  # no worklist folder given
    items = tmp_path / "wl"
    items.mkdir()
    assert QueryRetrieveScp(port=0, out_dir=tmp_path / "b", worklist=items).query_handler("worklist")
    plain = QueryRetrieveScp(port=0, out_dir=tmp_path / "c", archive=False)
    assert plain.archive is None and all(plain.query_handler(s) is None for s in ("find", "get", "move"))
    worklist_only = QueryRetrieveScp(port=0, out_dir=tmp_path / "d", archive=False, worklist=items)
    assert worklist_only.query_handler("worklist") and worklist_only.query_handler("find") is None
    with pytest.raises(ValueError, match="worklist folder"):
        QueryRetrieveScp(port=0, out_dir=tmp_path / "e", worklist=tmp_path / "missing")
    with pytest.raises(ValueError, match="workers"):
        QueryRetrieveScp(port=0, out_dir=tmp_path / "f", workers=2)
    with pytest.raises(ValueError, match="filesystem"):
        QueryRetrieveScp(port=0, out_dir=tmp_path / "g", storage_backend="s3", s3_config={"bucket": "b"})
