"""User identity from every SCU, against a peer that checks it (pynetdicom), one that ignores it (DCMTK)
and one that confirms a username with the empty response PS3.7 D.3.3.7.2 prescribes; and the
implementation class UID and version name as options."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

import aiodicom
from aiodicom.errors import AssociationRejected
from aiodicom.net.client import validate_implementation
from aiodicom.net.identity import IdentityKind, IdentityNotConfirmed, UserIdentity
from aiodicom.scu.echo import EchoScu
from aiodicom.scu.find import FindScu
from aiodicom.scu.get import GetScu
from aiodicom.scu.move import MoveScu
from aiodicom.scu.store import StoreScu
from aiodicom.ul.items import UserIdentityAC, UserIdentityRQ, UserInformation
from aiodicom.ul.negotiation import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    ContextPolicy,
    accept,
)
from aiodicom.ul.pdu import AAssociateRQ, AReleaseRP, AReleaseRQ, decode_pdu, encode_pdu
from tests.interop import pynetdicom_peer as creds
from tests.interop.peers import Peer
from tests.interop.pynetdicom_peer import IdentityPeer, start_identity_peer


@pytest.fixture(scope="module")
def identity_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityPeer]:
    with start_identity_peer(tmp_path_factory.mktemp("identity-peer")) as peer:
        yield peer


# ------------------------------------------------------------------------------------- the value


def test_constructors_encode_the_fields_of_ps3_7_table_d_3_14() -> None:
    assert UserIdentity.username("bob").to_item() == UserIdentityRQ(1, b"bob", b"", False)
    assert UserIdentity.username_password("al", "pässword", positive_response_requested=True).to_item() == (
        UserIdentityRQ(2, b"al", "pässword".encode(), True)
    )
    assert UserIdentity.kerberos(b"\x01\x02").to_item() == UserIdentityRQ(3, b"\x01\x02")
    assert UserIdentity.saml("<a/>").to_item() == UserIdentityRQ(4, b"<a/>")
    assert UserIdentity.jwt(" a.b.c\n").to_item() == UserIdentityRQ(5, b"a.b.c")
    assert UserIdentity.of("JWT", b"x.y.z\n") == UserIdentity.jwt("x.y.z")
    assert UserIdentity.of("kerberos", b"\x00ticket\n") == UserIdentity.kerberos(b"\x00ticket\n")
    assert UserIdentity.jwt("a.b.c").requesting_response().positive_response_requested
    item = bytearray()
    UserIdentity.username_password("al", "pw", positive_response_requested=True).to_item().encode(item)
    assert bytes(item) == b"\x58\x00\x00\x0a\x02\x01\x00\x02al\x00\x02pw"


def test_repr_never_shows_a_secret() -> None:
    text = repr(UserIdentity.username_password("alice", "hunter2"))
    assert "alice" in text and "hunter2" not in text and "<hidden>" in text
    assert "a.b.c" not in repr(UserIdentity.jwt("a.b.c"))
    assert "ticket" not in repr(UserIdentity.kerberos(b"ticket"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: UserIdentity.username(""),
        lambda: UserIdentity.username_password("alice", ""),
        lambda: UserIdentity.jwt("not a token"),
        lambda: UserIdentity.kerberos(b""),
        lambda: UserIdentity.saml("x" * 70000),
        lambda: UserIdentity(IdentityKind.JWT, b"a.b.c", b"secondary"),
        lambda: UserIdentity.of("username", b"alice"),
        lambda: IdentityKind.parse("password"),
    ],
)
def test_bad_identities_are_value_errors(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_a_wrong_type_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match="UserIdentity"):
        EchoScu("127.0.0.1:104", user_identity="alice")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- against pynetdicom


@pytest.mark.interop
async def test_username_and_password_accepted_and_rejected(identity_peer: IdentityPeer) -> None:
    mark = identity_peer.mark()
    good = UserIdentity.username_password(creds.USERNAME, creds.PASSWORD)
    assert (await EchoScu(identity_peer.address, user_identity=good).echo()).count == 1
    (record,) = identity_peer.wait_records(mark)
    assert record["outcome"] == "accepted" and record["identity_type"] == 2
    assert (record["primary"], record["secondary"]) == (creds.USERNAME, creds.PASSWORD)

    mark = identity_peer.mark()
    wrong = UserIdentity.username_password(creds.USERNAME, "guess")
    with pytest.raises(AssociationRejected):
        await EchoScu(identity_peer.address, user_identity=wrong).echo()
    (record,) = identity_peer.wait_records(mark)
    assert record["outcome"] == "rejected" and record["secondary"] == "guess"

    assert (
        await EchoScu(identity_peer.address, user_identity=UserIdentity.username("bob")).echo()
    ).count == 1


@pytest.mark.parametrize(
    ("identity", "response"),
    [
        (UserIdentity.jwt(creds.JWT, positive_response_requested=True), b"jwt-ok"),
        (UserIdentity.kerberos(creds.KERBEROS, positive_response_requested=True), b"kerberos-ok"),
        (UserIdentity.saml(creds.SAML, positive_response_requested=True), b"saml-ok"),
    ],
)
@pytest.mark.interop
async def test_token_identities_with_a_positive_response(
    identity_peer: IdentityPeer, identity: UserIdentity, response: bytes
) -> None:
    async with aiodicom.connect(identity_peer.address, user_identity=identity) as assoc:
        ac = await assoc.wait_established()
        assert ac.user_information.user_identity_ac == UserIdentityAC(response)
        assert await assoc.c_echo() == 0
    mark = identity_peer.mark()
    wrong = dataclasses.replace(identity, primary=identity.primary + b"x")
    with pytest.raises(AssociationRejected):
        await EchoScu(identity_peer.address, user_identity=wrong).echo()
    assert identity_peer.wait_records(mark)[0]["outcome"] == "rejected"


@pytest.mark.interop
async def test_no_positive_response_fails_the_association(identity_peer: IdentityPeer) -> None:
    """pynetdicom verifies usernames but never sends the (empty) response a requestor may ask for."""
    identity = UserIdentity.username_password(
        creds.USERNAME, creds.PASSWORD, positive_response_requested=True
    )
    with pytest.raises(IdentityNotConfirmed, match="did not confirm the user identity"):
        await EchoScu(identity_peer.address, user_identity=identity).echo()
    with pytest.raises(IdentityNotConfirmed):
        async with aiodicom.connect(identity_peer.address, user_identity=identity):
            pytest.fail("the block must not run")


@pytest.mark.interop
async def test_every_scu_sends_the_identity(identity_peer: IdentityPeer, tmp_path: Path) -> None:
    """Echo, Find, Get, Move and Store: every association each of them opens carries the identity."""
    identity = UserIdentity.jwt(creds.JWT, positive_response_requested=True)
    query = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.3"}
    get = GetScu(identity_peer.address, out_dir=tmp_path, user_identity=identity)
    move = MoveScu(identity_peer.address, user_identity=identity)
    store = StoreScu(identity_peer.address, user_identity=identity)
    store.add_file(get_testdata_file("CT_small.dcm"))
    steps = {
        "echo": (EchoScu(identity_peer.address, user_identity=identity).echo, "1.2.840.10008.1.1"),
        "find": (
            lambda: FindScu(identity_peer.address, user_identity=identity).find(query),
            "1.2.840.10008.5.1.4.1.2.2.1",
        ),
        "get": (lambda: get.get(query), "1.2.840.10008.5.1.4.1.2.2.1"),  # its survey, at least
        "move": (lambda: move.move(query, "ELSEWHERE"), "1.2.840.10008.5.1.4.1.2.2.1"),  # its survey too
        "store": (store.send, "1.2.840.10008.5.1.4.1.1.2"),
    }
    for name, (operation, context) in steps.items():
        mark = identity_peer.mark()
        await operation()  # type: ignore[operator]
        records = identity_peer.wait_records(mark)
        assert any(context in r["contexts"] for r in records), name
        for record in records:
            assert record["outcome"] == "accepted", name
            assert (record["identity_type"], record["primary"]) == (5, creds.JWT), name
            assert record["positive_response_requested"], name


@pytest.mark.interop
async def test_implementation_class_uid_and_version_name_are_options(identity_peer: IdentityPeer) -> None:
    mark = identity_peer.mark()
    await EchoScu(identity_peer.address).echo()
    await EchoScu(
        identity_peer.address,
        implementation_class_uid="1.2.826.0.1.3680043.9.7",
        implementation_version_name="MY_APP 2.1",
    ).echo()
    async with aiodicom.connect(
        identity_peer.address, implementation_class_uid="1.2.3.4", implementation_version_name="X"
    ) as assoc:
        await assoc.c_echo()
    scu = StoreScu(
        identity_peer.address, implementation_class_uid="2.25.1", implementation_version_name="SENDER"
    )
    scu.add_file(get_testdata_file("CT_small.dcm"))
    await scu.send()
    records = identity_peer.wait_records(mark, 4)
    got = [(r["implementation_class_uid"], r["implementation_version_name"]) for r in records]
    assert got == [
        (IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME),
        ("1.2.826.0.1.3680043.9.7", "MY_APP 2.1"),
        ("1.2.3.4", "X"),
        ("2.25.1", "SENDER"),
    ]


@pytest.mark.parametrize(
    ("uid", "name"),
    [
        ("1.02.3", "OK"),
        ("1.2.a", "OK"),
        ("1..2", "OK"),
        ("1." + "2" * 63, "OK"),
        ("", "OK"),
        ("1.2.3", ""),
        ("1.2.3", "   "),
        ("1.2.3", "SEVENTEEN_CHARS_X"),
        ("1.2.3", "back\\slash"),
        ("1.2.3", "tab\there"),
        ("1.2.3", "naïve"),
    ],
)
def test_bad_implementation_identification_is_refused(uid: str, name: str) -> None:
    with pytest.raises(ValueError, match="implementation"):
        validate_implementation(uid, name)
    with pytest.raises(ValueError, match="implementation"):
        EchoScu("127.0.0.1:104", implementation_class_uid=uid, implementation_version_name=name)
    with pytest.raises(ValueError, match="implementation"):
        StoreScu("127.0.0.1:104", implementation_class_uid=uid, implementation_version_name=name)


def test_good_implementation_identification() -> None:
    assert validate_implementation("1." + "2" * 62, "A" * 16) == ("1." + "2" * 62, "A" * 16)
    assert validate_implementation("0.0", "x y-1.0") == ("0.0", "x y-1.0")


@pytest.mark.interop
async def test_the_old_user_identity_item_still_works_with_a_warning(identity_peer: IdentityPeer) -> None:
    item = UserIdentityRQ(2, creds.USERNAME.encode(), creds.PASSWORD.encode())
    with pytest.warns(DeprecationWarning, match="UserIdentity"):
        async with aiodicom.connect(identity_peer.address, user_identity=item) as assoc:
            assert await assoc.c_echo() == 0


# --------------------------------------------------------------- peers that do not check identity


@pytest.mark.interop
async def test_dcmtk_ignores_identity_so_a_requested_response_fails(dcmtk_storescp: Peer) -> None:
    address = f"STORESCP@{dcmtk_storescp.address}"
    jwt = UserIdentity.jwt(creds.JWT)
    assert (await EchoScu(address, user_identity=jwt).echo()).count == 1
    with pytest.raises(IdentityNotConfirmed, match="positive response was requested"):
        await EchoScu(address, user_identity=jwt.requesting_response()).echo()
    scu = StoreScu(address, user_identity=jwt.requesting_response())
    scu.add_file(get_testdata_file("CT_small.dcm"))
    with pytest.raises(IdentityNotConfirmed):
        await scu.send()
    assert list(dcmtk_storescp.out_dir.iterdir()) == []
    assert (await EchoScu(address).echo()).count == 1  # it still serves: the association was released


async def _confirming_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts every association, answering a user identity with an empty server response, and answers
    A-RELEASE-RQ: the one thing the test needs, scripted with the sans-IO encoders."""
    try:
        while True:
            header = await reader.readexactly(6)
            body = await reader.readexactly(struct.unpack(">I", header[2:])[0])
            pdu = decode_pdu(header + body)
            if isinstance(pdu, AAssociateRQ):
                ac, _ = accept(pdu, ContextPolicy(), max_pdu_length=16384)
                info = UserInformation((*ac.user_information.items, UserIdentityAC(b"")))
                writer.write(encode_pdu(dataclasses.replace(ac, user_information=info)))
            elif isinstance(pdu, AReleaseRQ):
                writer.write(encode_pdu(AReleaseRP()))
                await writer.drain()
                return
    except asyncio.IncompleteReadError:
        return
    finally:
        writer.close()


@pytest.fixture
async def confirming_peer() -> AsyncIterator[int]:
    server = await asyncio.start_server(_confirming_peer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_an_empty_response_confirms_a_username(confirming_peer: int) -> None:
    identity = UserIdentity.username("bob", positive_response_requested=True)
    async with aiodicom.connect(f"127.0.0.1:{confirming_peer}", user_identity=identity) as assoc:
        ac = await assoc.wait_established()
        assert ac.user_information.user_identity_ac == UserIdentityAC(b"")
        assert assoc.is_open
