"""Who may connect and fair limits, against a live server on loopback: allowed hosts and ``on_connection`` at
accept time, user identity of every type (checked by a hook, answered with the server response when one is
requested, or rejected with A-ASSOCIATE-RJ (1, 2, 1)) from independent requestors (pynetdicom, DCMTK
storescu), the ``on_association_request`` hook, the limit per peer address (64 idle associations from
127.0.0.1 do not lock out 127.0.0.2), a full server's (2, 3, 2), and StoreScu retrying it to zero loss."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom.data import get_testdata_file

import aiodicom
from aiodicom.errors import AssociationRejected
from aiodicom.net.access import (
    AssociationRequest,
    IdentityRequest,
    Rejection,
    host_allowed,
    parse_allowed_hosts,
    peer_key,
)
from aiodicom.net.identity import UserIdentity
from aiodicom.net.passwords import hash_password, load_users, users_hook, verify_password
from aiodicom.net.server import DicomServer
from aiodicom.scp.echo import EchoScp
from aiodicom.scp.store import StoreScp
from aiodicom.scu.store import StoreScu
from aiodicom.services.send import RETRY_BUDGET, retry_delays
from aiodicom.ul.items import UserIdentityAC, UserIdentityRQ, UserInformation
from aiodicom.ul.negotiation import ContextPolicy, accept
from aiodicom.ul.pdu import AAssociateAC, AAssociateRJ, encode_pdu
from tests.interop.peers import run_dcmtk
from tests.interop.rawpeer import IMPLICIT_LE, VERIFICATION, RawPeer, associate_rq

ECHO_CONTEXT = [(1, VERIFICATION, [IMPLICIT_LE])]
JWT = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


def rj_of(pdu: object) -> tuple[int, int, int]:
    assert isinstance(pdu, AAssociateRJ), f"expected an A-ASSOCIATE-RJ, received {pdu!r}"
    return pdu.result, pdu.source, pdu.reason


def request_with_identity(item: UserIdentityRQ | None, calling: str = "RAWPEER") -> bytes:
    rq = associate_rq(ECHO_CONTEXT, calling_ae_title=calling)
    if item is not None:
        rq = type(rq)(
            rq.called_ae_title,
            rq.calling_ae_title,
            rq.presentation_contexts,
            UserInformation((*rq.user_information.items, item)),
        )
    return encode_pdu(rq)


async def raw_request(port: int, data: bytes, source: str = "127.0.0.1") -> object:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 10
    )
    peer = RawPeer(reader, writer)
    try:
        return await peer.request(data)
    finally:
        await peer.close()


async def closed_unanswered(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection without sending a byte (a reset counts as closed)."""
    try:
        return await asyncio.wait_for(reader.read(100), 10) == b""
    except ConnectionResetError:
        return True


# ---------------------------------------------------------------------------------------- the pure part


def test_allowed_hosts_are_addresses_and_networks_never_names() -> None:
    nets = parse_allowed_hosts(["10.0.0.0/8", "192.168.1.5", "::1", ipaddress.ip_network("fd00::/8")])
    assert nets is not None
    assert host_allowed("10.200.3.4", nets) and host_allowed("192.168.1.5", nets)
    assert not host_allowed("192.168.1.6", nets) and not host_allowed("11.0.0.1", nets)
    assert (
        host_allowed("::1", nets) and host_allowed("fd12::5", nets) and not host_allowed("fe80::1%lo", nets)
    )
    assert host_allowed("::ffff:10.1.2.3", nets)  # an IPv4 peer of a dual-stack listener
    mapped = parse_allowed_hosts(["::ffff:172.16.0.0/108"])
    assert host_allowed("172.16.5.5", mapped) and host_allowed("::ffff:172.16.5.5", mapped)
    assert host_allowed("anything", None) and not host_allowed("not-an-address", nets)
    with pytest.raises(ValueError, match="host names are not accepted"):
        parse_allowed_hosts(["pacs.example.org"])
    assert peer_key("::ffff:127.0.0.1") == "127.0.0.1" and peer_key("fe80::1%eth0") == "fe80::1"
    with pytest.raises(ValueError):
        Rejection(3)
    with pytest.raises(ValueError, match="max_associations_per_peer"):
        DicomServer(lambda assoc: asyncio.sleep(0), port=0, max_associations_per_peer=0)
    with pytest.raises(TypeError, match="on_user_identity"):
        EchoScp(0, on_user_identity="yes")  # type: ignore[arg-type]


def test_the_server_response_goes_in_the_ac_only_when_given() -> None:
    rq = associate_rq(ECHO_CONTEXT)
    policy = ContextPolicy()
    plain, _ = accept(rq, policy, max_pdu_length=16384)
    assert plain.user_information.user_identity_ac is None
    empty, _ = accept(rq, policy, max_pdu_length=16384, user_identity_response=b"")
    token, _ = accept(rq, policy, max_pdu_length=16384, user_identity_response=b"ticket")
    assert empty.user_information.user_identity_ac == UserIdentityAC(b"")
    assert token.user_information.user_identity_ac == UserIdentityAC(b"ticket")


def test_retry_waits_grow_with_jitter_and_stay_within_the_budget() -> None:
    for _ in range(50):
        delays = retry_delays(3, 1.0)
        assert len(delays) == 3
        assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert sum(retry_delays(10, 1.0)) <= RETRY_BUDGET + 1e-9
    assert retry_delays(0, 1.0) == []


def test_users_file_hashes_verify_and_bad_lines_are_named(tmp_path: Path) -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$scrypt$ln=14,r=8,p=1$") and hashed != hash_password("s3cret")  # salted
    assert verify_password("s3cret", hashed) and not verify_password("s3cret!", hashed)
    users = tmp_path / "users"
    users.write_text(f"# operators\n\nalice:{hashed}\nsite:b:{hash_password('x')}\n")
    assert set(load_users(users)) == {"alice", "site:b"}
    for text, message in (
        ("alice\n", "line 1: expected username:hash"),
        ("alice:plain\n", "line 1: not a password hash"),
        (f"a:{hashed}\na:{hashed}\n", "line 2: user 'a' is listed twice"),
        ("# nobody\n", "no users"),
    ):
        users.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_users(users)


# ------------------------------------------------------------------------------ user identity, every type


def pynetdicom_associate(
    port: int, kind: int, primary: bytes, secondary: bytes = b"", *, response: bool = True
) -> dict[str, Any]:
    """An association from pynetdicom (an independent requestor) sending a user identity: whether it was
    accepted, the server response it got, or the A-ASSOCIATE-RJ fields."""
    from pynetdicom import AE, evt
    from pynetdicom.pdu_primitives import UserIdentityNegotiation

    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = 15
    item = UserIdentityNegotiation()
    item.user_identity_type = kind
    item.primary_field = primary
    if secondary:
        item.secondary_field = secondary
    item.positive_response_requested = response
    seen: dict[str, Any] = {}

    def received(event: Any) -> None:
        pdu = event.pdu
        if type(pdu).__name__ == "A_ASSOCIATE_RJ":
            seen["rj"] = (pdu.result, pdu.source, pdu.reason_diagnostic)

    assoc = ae.associate("127.0.0.1", port, ext_neg=[item], evt_handlers=[(evt.EVT_PDU_RECV, received)])
    seen["established"] = assoc.is_established
    if assoc.is_established:
        answer = assoc.acceptor.user_identity
        seen["server_response"] = None if answer is None else answer.server_response
        seen["echo_status"] = assoc.send_c_echo().Status
        assoc.release()
    return seen


async def test_every_identity_type_from_pynetdicom_is_checked_and_answered() -> None:
    """Types 1-5 reach the hook with their fields; a requested response is empty for the username types
    and the hook's token for Kerberos, SAML and JWT; a rejected identity gets A-ASSOCIATE-RJ (1, 2, 1)."""
    seen: list[IdentityRequest] = []

    async def check(identity: IdentityRequest) -> bool | bytes:
        seen.append(identity)
        await asyncio.sleep(0)  # a coroutine hook
        if identity.username is not None:
            return identity.username == "alice" and identity.password in (None, "s3cret")
        return b"server-" + identity.primary[:6] if identity.primary.startswith(b"good") else False

    async with EchoScp(0, host="127.0.0.1", on_user_identity=check) as scp:
        cases = [
            (1, b"alice", b"", b""),
            (2, b"alice", b"s3cret", b""),
            (3, b"good-kerberos-ticket", b"", b"server-good-k"),
            (4, b"good<saml:Assertion/>", b"", b"server-good<s"),
            (5, b"good." + JWT, b"", b"server-good.e"),
        ]
        for kind, primary, secondary, expected in cases:
            got = await asyncio.to_thread(pynetdicom_associate, scp.port, kind, primary, secondary)
            assert got["established"] and got["echo_status"] == 0, (kind, got)
            assert got["server_response"] == expected, (kind, got)
        last = seen[-len(cases) :]
        assert [(i.identity_type, i.primary, i.secondary, i.response_requested) for i in last] == [
            (k, p, s, True) for k, p, s, _ in cases
        ]
        assert last[1].peer[0] == "127.0.0.1" and last[1].calling_ae_title == "PYNETDICOM"
        assert "s3cret" not in repr(last[1]) and "password=<hidden>" in repr(last[1])
        for kind, primary, secondary in (
            (1, b"mallory", b""),
            (2, b"alice", b"guess"),
            (3, b"bad-ticket", b""),
            (4, b"<bad/>", b""),
            (5, JWT, b""),
        ):
            got = await asyncio.to_thread(pynetdicom_associate, scp.port, kind, primary, secondary)
            assert not got["established"] and got["rj"] == (1, 2, 1), (kind, got)
        # not requested: accepted without a response item
        got = await asyncio.to_thread(pynetdicom_associate, scp.port, 2, b"alice", b"s3cret", response=False)
        assert got["established"] and got["server_response"] is None
    assert scp.access.rejected[(1, 2, 1)] == 5


async def test_unknown_types_missing_identities_and_failing_hooks() -> None:
    unknown = request_with_identity(UserIdentityRQ(9, b"who", b"", True))
    without = request_with_identity(None)
    # no hook, nothing required: identities are not checked, and so never confirmed
    async with EchoScp(0, host="127.0.0.1") as scp:
        ac = await raw_request(scp.port, unknown)
        assert isinstance(ac, AAssociateAC) and ac.user_information.user_identity_ac is None
    # a hook registered: an unknown type is rejected without calling it
    calls: list[IdentityRequest] = []
    async with EchoScp(0, host="127.0.0.1", on_user_identity=lambda i: calls.append(i) or True) as scp:
        assert rj_of(await raw_request(scp.port, unknown)) == (1, 2, 1)
        assert isinstance(await raw_request(scp.port, without), AAssociateAC)  # not required
        assert calls == []
    # required: an association without one is rejected the same way
    async with EchoScp(0, host="127.0.0.1", require_user_identity=True) as scp:
        assert rj_of(await raw_request(scp.port, without)) == (1, 2, 1)
        named = request_with_identity(UserIdentityRQ(1, b"bob", b"", False))
        assert isinstance(await raw_request(scp.port, named), AAssociateAC)

    def broken(identity: IdentityRequest) -> bool:
        raise RuntimeError("the directory is down")

    async with EchoScp(0, host="127.0.0.1", on_user_identity=broken) as scp:
        named = request_with_identity(UserIdentityRQ(1, b"bob", b"", True))
        assert rj_of(await raw_request(scp.port, named)) == (1, 2, 1)
        returns_none = EchoScp(0, host="127.0.0.1", on_user_identity=lambda i: None)
        async with returns_none:  # a hook that says nothing denies
            assert rj_of(await raw_request(returns_none.port, named)) == (1, 2, 1)


async def test_users_file_with_aiodicom_and_dcmtk_storescu(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret')}\n")
    ct = get_testdata_file("CT_small.dcm")
    async with StoreScp(
        0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        fsync=False,
        on_user_identity=users_hook(load_users(users)),
        require_user_identity=True,
    ) as scp:
        port = str(scp.port)
        good = await asyncio.to_thread(
            run_dcmtk, "storescu", "-usr", "alice", "-pwd", "s3cret", "-rsp", "127.0.0.1", port, ct
        )
        assert good.returncode == 0, good.stdout + good.stderr
        for wrong in (
            ["-usr", "alice", "-pwd", "guess"],
            ["-usr", "alice"],
            ["-usr", "bob", "-pwd", "s3cret"],
        ):
            bad = await asyncio.to_thread(run_dcmtk, "storescu", *wrong, "127.0.0.1", port, ct)
            assert bad.returncode != 0 and "rejected" in (bad.stdout + bad.stderr).lower(), wrong
        scu = StoreScu(
            f"127.0.0.1:{port}",
            user_identity=UserIdentity.username_password("alice", "s3cret", positive_response_requested=True),
        )
        scu.add_file(ct)
        assert (await scu.send()).successful == 1
        with pytest.raises(AssociationRejected) as info:
            await aiodicom.EchoScu(f"127.0.0.1:{port}", user_identity=UserIdentity.jwt("a.b.c")).echo()
        assert (info.value.result, info.value.source, info.value.reason) == (1, 2, 1)
    assert scp.access.rejected[(1, 2, 1)] == 4
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1


# --------------------------------------------------------------------------------- who may connect


async def test_allowed_hosts_close_others_at_once_without_a_pending_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "aiodicom")
    async with EchoScp(0, host="127.0.0.1", allowed_hosts=["127.0.0.2"], max_pending_connections=1) as scp:
        for _ in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", scp.port)
            started = time.monotonic()
            assert await closed_unanswered(reader)
            assert time.monotonic() - started < 5
            writer.close()
        # the one pending slot was never taken: an allowed host still associates
        ac = await raw_request(scp.port, encode_pdu(associate_rq(ECHO_CONTEXT)), source="127.0.0.2")
        assert isinstance(ac, AAssociateAC)
    assert scp.access.refused_connections == 10
    refused = [r for r in caplog.records if "refused a connection from 127.0.0.1" in r.getMessage()]
    assert len(refused) == 1  # once per address per minute


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_on_connection_hook_sync_and_async(asynchronous: bool) -> None:
    peers: list[tuple[str, int]] = []

    def decide(peer: tuple[str, int]) -> bool:
        peers.append(peer)
        return peer[0] != "127.0.0.3"

    async def decide_later(peer: tuple[str, int]) -> bool:
        await asyncio.sleep(0.05)
        return decide(peer)

    hook: Callable[[tuple[str, int]], Any] = decide_later if asynchronous else decide
    async with EchoScp(0, host="127.0.0.1", on_connection=hook, max_pending_connections=2) as scp:
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", scp.port, local_addr=("127.0.0.3", 0))
            writer.write(encode_pdu(associate_rq(ECHO_CONTEXT)))  # never read: refused first
            assert await closed_unanswered(reader)
            writer.close()
        async with aiodicom.connect(f"127.0.0.1:{scp.port}") as assoc:
            assert await assoc.c_echo() == 0
    assert [host for host, _ in peers] == ["127.0.0.3"] * 5 + ["127.0.0.1"]
    assert scp.access.refused_connections == 5


async def test_a_hook_that_never_answers_refuses_within_the_artim_timeout() -> None:
    async def hang(argument: object) -> bool:
        await asyncio.Event().wait()
        return True

    async with EchoScp(0, host="127.0.0.1", artim_timeout=0.5, on_connection=hang) as scp:
        reader, writer = await asyncio.open_connection("127.0.0.1", scp.port)
        started = time.monotonic()
        assert await closed_unanswered(reader)
        assert 0.4 <= time.monotonic() - started < 5
        writer.close()
    assert scp.access.refused_connections == 1
    async with EchoScp(0, host="127.0.0.1", artim_timeout=0.5, on_user_identity=hang) as scp:
        named = request_with_identity(UserIdentityRQ(1, b"bob", b"", True))
        assert rj_of(await raw_request(scp.port, named)) == (1, 2, 1)
    async with EchoScp(0, host="127.0.0.1", artim_timeout=0.5, on_association_request=hang) as scp:
        assert rj_of(await raw_request(scp.port, request_with_identity(None))) == (2, 1, 1)


async def test_on_association_request_sees_peer_titles_identity_and_may_reject() -> None:
    seen: list[AssociationRequest] = []

    async def decide(request: AssociationRequest) -> Rejection | None:
        seen.append(request)
        if request.calling_ae_title == "INTRUDER":
            return Rejection(reason=3)
        if request.identity is None:
            return Rejection(2, 1, 1)
        return None

    async with EchoScp(
        0, host="127.0.0.1", on_association_request=decide, on_user_identity=lambda i: True
    ) as scp:
        assert rj_of(await raw_request(scp.port, request_with_identity(None, "INTRUDER"))) == (1, 1, 3)
        assert rj_of(await raw_request(scp.port, request_with_identity(None))) == (2, 1, 1)
        identity = UserIdentity.username("bob", positive_response_requested=True)
        async with aiodicom.connect(f"127.0.0.1:{scp.port}", user_identity=identity) as assoc:
            assert await assoc.c_echo() == 0
    last = seen[-1]
    assert last.peer[0] == "127.0.0.1" and last.calling_ae_title == "AIODICOM"
    assert last.called_ae_title == "ANY-SCP" and last.identity_verified
    assert last.identity is not None and last.identity.username == "bob"

    async with EchoScp(0, host="127.0.0.1", on_association_request=lambda r: False) as scp:
        assert rj_of(await raw_request(scp.port, request_with_identity(None))) == (1, 1, 1)


# ------------------------------------------------------------------------------------------- limits


async def test_64_idle_associations_from_one_address_do_not_lock_out_another() -> None:
    """Found: 64 idle associations from one client locked everyone out (for the 300 s idle timeout)."""
    async with EchoScp(0, host="127.0.0.1") as scp:  # the defaults: 64 in all, 16 per peer address
        idle: list[RawPeer] = []
        answers: list[object] = []
        try:
            for _ in range(64):
                reader, writer = await asyncio.open_connection("127.0.0.1", scp.port)
                peer = RawPeer(reader, writer)
                idle.append(peer)
                answers.append(await peer.request(encode_pdu(associate_rq(ECHO_CONTEXT))))
            accepted = sum(isinstance(a, AAssociateAC) for a in answers)
            assert accepted == 16
            assert all(rj_of(a) == (2, 3, 2) for a in answers if not isinstance(a, AAssociateAC))
            # another peer address still gets in, and is served
            got = await asyncio.to_thread(pynetdicom_echo_from, "127.0.0.2", scp.port)
            assert got == (True, 0)
        finally:
            await asyncio.gather(*(peer.close() for peer in idle))
    assert scp.access.rejected[(2, 3, 2)] == 48


def pynetdicom_echo_from(source: str, port: int) -> tuple[bool, int | None]:
    from pynetdicom import AE

    ae = AE(ae_title="OTHER-SITE")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", port, bind_address=(source, 0))
    if not assoc.is_established:
        return False, None
    status = assoc.send_c_echo().Status
    assoc.release()
    return True, int(status)


async def test_a_full_server_answers_2_3_2_transient() -> None:
    async with EchoScp(0, host="127.0.0.1", max_associations=2, max_associations_per_peer=None) as scp:
        peers = [await RawPeer.connect(scp.port) for _ in range(3)]
        try:
            assert isinstance(await peers[0].request(ECHO_CONTEXT), AAssociateAC)
            assert isinstance(await peers[1].request(ECHO_CONTEXT), AAssociateAC)
            assert rj_of(await peers[2].request(ECHO_CONTEXT)) == (2, 3, 2)
        finally:
            await asyncio.gather(*(p.close() for p in peers))


@pytest.mark.parametrize(
    ("senders", "limits"),
    [(16, {"max_associations": 4}), (24, {})],
    ids=["4 associations", "the default limits"],
)
async def test_storescu_retries_a_full_server_to_zero_loss(
    tmp_path: Path, senders: int, limits: dict[str, int]
) -> None:
    """Found: a batch against a full server lost 1,380 of 2,000 files with a client that does not retry.
    Here senders of 4 files each, at once, against a server that takes 4 associations, and against the
    default limits (16 per peer address: every sender is 127.0.0.1)."""
    import pydicom

    batches: list[list[Path]] = []
    for i in range(senders):
        batch = []
        for j in range(4):
            ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
            ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.99.{i}.{j}"
            path = tmp_path / "src" / f"{i}-{j}.dcm"
            path.parent.mkdir(exist_ok=True)
            ds.save_as(path)
            batch.append(path)
        batches.append(batch)

    async def slow(tags: dict[str, str]) -> dict[str, str]:
        await asyncio.sleep(0.03)  # each association holds its slot for a while
        return tags

    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False, **limits) as scp:
        scp.on_before_store(slow)
        clients = []
        for batch in batches:
            scu = StoreScu(f"127.0.0.1:{scp.port}", retry_backoff=0.5)  # the default retries, shorter waits
            for path in batch:
                scu.add_file(path)
            clients.append(scu)
        results = await asyncio.gather(*(scu.send() for scu in clients), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    assert sum(r.successful for r in results if not isinstance(r, BaseException)) == 4 * senders
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 4 * senders
    assert scp.access.rejected[(2, 3, 2)] > 0  # the server was full, and said so


async def test_a_permanent_rejection_is_never_retried() -> None:
    async with EchoScp(0, host="127.0.0.1", allowed_calling_ae_titles=["TRUSTED"]) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(get_testdata_file("CT_small.dcm"))
        started = time.monotonic()
        with pytest.raises(AssociationRejected, match="calling-AE-title-not-recognized"):
            await scu.send()
        assert time.monotonic() - started < 2.0  # no wait (of at least 0.5 s) before a second attempt
    assert scp.access.rejected[(1, 1, 3)] == 1
