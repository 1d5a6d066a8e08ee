"""TLS between aiodicom peers on loopback: the profiles and the contexts they build, associations and
stores over TLS (both directions' flow control), every handshake failure named on both sides and counted,
the handshake timeout, and the cap on handshakes at a time. Interoperability with DCMTK, Orthanc and
OpenSSL is in tests/interop/test_tls_dcmtk.py."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from aiodicom import EchoScp, EchoScu, StoreScp, StoreScu, TlsError
from aiodicom.errors import AssociationAborted, PeerUnreachable
from aiodicom.net.client import connect
from aiodicom.net.options import AssociationOptions
from aiodicom.net.tls import (
    PROFILES,
    TlsFailure,
    client_context,
    server_context,
    tls_failure_kind,
    tls_profile,
)
from tests.interop.certs import Certs

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def write_instance(path: Path, pixel_bytes: int = 4096) -> str:
    """A Secondary Capture instance with ``pixel_bytes`` of pixel data; returns its SOP Instance UID."""
    ds = Dataset()
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "TLS"
    ds.PatientName = "TLS^TEST"
    ds.Modality = "OT"
    side = max(1, int(pixel_bytes**0.5))
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(i % 251 for i in range(side * side))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


def server_tls(certs: Certs, **kwargs: object) -> ssl.SSLContext:
    return server_context(certs.server_cert, certs.server_key, certs.ca, **kwargs)  # type: ignore[arg-type]


def client_tls(certs: Certs, **kwargs: object) -> ssl.SSLContext:
    return client_context(certs.ca, certs.client_cert, certs.client_key, **kwargs)  # type: ignore[arg-type]


def echo_scp(tls: ssl.SSLContext, **kwargs: object) -> EchoScp:
    return EchoScp(0, host="127.0.0.1", tls=tls, **kwargs)  # type: ignore[arg-type]


async def wait_for(predicate: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------------------ profiles, contexts


def _tls12_ciphers(ctx: ssl.SSLContext) -> list[str]:
    return [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]


def test_profiles_are_dcmtks_and_plain_bcp195_is_refused_with_the_reason(tls_certs: Certs) -> None:
    assert tls_profile("+py") is PROFILES["bcp195-nd"] is tls_profile("BCP195_ND")
    assert tls_profile("--profile-bcp195-ex") is PROFILES["bcp195-ex"] is tls_profile("+pz")
    for name in ("bcp195", "+px"):
        with pytest.raises(ValueError, match=r"TLS 1\.0 and 1\.1"):
            tls_profile(name)
    with pytest.raises(ValueError, match="unknown TLS profile"):
        tls_profile("aes")

    nd = server_tls(tls_certs)
    assert (nd.minimum_version, nd.maximum_version) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    # the server's order: strongest first, as DCMTK sorts it
    assert _tls12_ciphers(nd) == list(PROFILES["bcp195-nd"].server_ciphers)
    assert nd.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    ex = client_tls(tls_certs, profile="bcp195-ex")
    assert (ex.minimum_version, ex.maximum_version) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    assert _tls12_ciphers(ex) == list(PROFILES["bcp195-ex"].ciphers)
    assert {"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256"} <= set(_tls12_ciphers(ex))
    assert not {"ECDHE-ECDSA-AES256-GCM-SHA384"} & set(_tls12_ciphers(nd))


def test_context_builders_verify_as_dcmtk_does(tls_certs: Certs) -> None:
    c = tls_certs
    assert server_context(c.server_cert, c.server_key, c.ca).verify_mode == ssl.CERT_REQUIRED  # -rc
    optional = server_context(c.server_cert, c.server_key, c.ca, require_client_cert=False)
    assert optional.verify_mode == ssl.CERT_OPTIONAL  # -vc
    assert server_context(c.server_cert, c.server_key).verify_mode == ssl.CERT_NONE
    with pytest.raises(ValueError, match="needs ca"):
        server_context(c.server_cert, c.server_key, require_client_cert=True)
    client = client_context(c.ca)
    assert client.verify_mode == ssl.CERT_REQUIRED and not client.check_hostname
    assert client_context(c.ca, check_hostname=True).check_hostname
    assert client_context().verify_mode == ssl.CERT_REQUIRED  # the system's trust store
    with pytest.raises(ValueError, match="key needs cert"):
        client_context(c.ca, key=c.client_key)
    with pytest.raises(TypeError, match="SSLContext"):
        AssociationOptions(tls="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tls_handshake_timeout"):
        AssociationOptions(tls_handshake_timeout=0)
    with pytest.raises(ValueError, match="max_tls_handshakes"):
        EchoScp(0, tls=server_tls(c), max_tls_handshakes=0)


# --------------------------------------------------------------------------------------- working TLS


async def test_echo_and_store_over_mutual_tls(tls_certs: Certs, tmp_path: Path) -> None:
    src = tmp_path / "big.dcm"
    uid = write_instance(src, 3_000_000)  # several MB: many TLS records, flow control both ways
    out = tmp_path / "out"
    async with StoreScp(0, host="127.0.0.1", out_dir=out, tls=server_tls(tls_certs)) as scp:
        result = await EchoScu(f"127.0.0.1:{scp.port}", tls=client_tls(tls_certs)).echo(3)
        assert result.count == 3
        sent = StoreScu(f"127.0.0.1:{scp.port}", tls=client_tls(tls_certs), max_pdu_length=0)
        sent.add_file(src)
        outcome = await sent.send()
        assert outcome.successful == 1 and outcome.failed == 0
        async with connect(f"127.0.0.1:{scp.port}", tls=client_tls(tls_certs)) as assoc:
            assert assoc.protocol is not None and assoc.protocol.transport is not None
            ssl_object = assoc.protocol.transport.get_extra_info("ssl_object")
            assert ssl_object is not None and ssl_object.version() == "TLSv1.3"
            assert await assoc.c_echo() == 0
        assert scp.tls_handshakes == 3 and not scp.tls_failures
    stored = next(out.rglob(f"{uid}.dcm"))
    assert pydicom.dcmread(stored).PixelData == pydicom.dcmread(src).PixelData


async def test_extended_profile_negotiates_tls12_with_a_gcm_suite(tls_certs: Certs) -> None:
    scp = echo_scp(server_tls(tls_certs, profile="bcp195-ex"))
    ex = client_tls(tls_certs, profile="bcp195-ex")
    async with scp, connect(f"127.0.0.1:{scp.port}", tls=ex) as assoc:  # scp has started by then
        assert assoc.protocol is not None and assoc.protocol.transport is not None
        ssl_object = assoc.protocol.transport.get_extra_info("ssl_object")
        assert ssl_object.version() == "TLSv1.2"
        assert ssl_object.cipher()[0] in PROFILES["bcp195-ex"].ciphers
        assert await assoc.c_echo() == 0


async def test_a_slow_receiver_pauses_a_tls_sender(tls_certs: Certs, tmp_path: Path) -> None:
    """Backpressure through the TLS layer: while the receiver's hook holds the instance, reading pauses,
    and the sender's writes stop (its transport's buffer fills) instead of the receiver buffering it all."""
    src = tmp_path / "big.dcm"
    write_instance(src, 16_000_000)
    release = asyncio.Event()
    held = asyncio.Event()
    scp = StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", tls=server_tls(tls_certs))

    @scp.on_before_store
    async def hold(tags: dict[str, str]) -> dict[str, str]:
        held.set()
        await release.wait()
        return tags

    async with (
        scp,
        connect(
            f"127.0.0.1:{scp.port}",
            contexts=[(SECONDARY_CAPTURE, [ExplicitVRLittleEndian])],
            tls=client_tls(tls_certs),
        ) as assoc,
    ):
        sending = asyncio.ensure_future(assoc.c_store(src))
        await asyncio.wait_for(held.wait(), 20)
        await asyncio.sleep(1.0)
        assert assoc.protocol is not None
        received = next(iter(scp.associations)).protocol.bytes_received  # type: ignore[union-attr]
        assert not sending.done()
        assert received < 8_000_000  # the receiver read a bounded part of the 16 MB instance
        release.set()
        status = await asyncio.wait_for(sending, 60)
        assert status == 0


# ------------------------------------------------------------------------------------ failures, named


async def _failure(
    scp: EchoScp, client: ssl.SSLContext | None, kind: str, caplog: pytest.LogCaptureFixture
) -> BaseException:
    """Connect with ``client`` (None: plain TCP): the association fails, the server counts one ``kind``
    failure, logs it once, and frees the pending slot."""
    caplog.set_level(logging.WARNING)
    with pytest.raises((PeerUnreachable, AssociationAborted)) as info:
        await EchoScu(f"127.0.0.1:{scp.port}", tls=client, connect_timeout=10, acse_timeout=10).echo()
    await wait_for(lambda: scp.tls_failures[kind] == 1)
    assert sum(scp.tls_failures.values()) == 1
    lines = [r.getMessage() for r in caplog.records if "TLS handshake with" in r.getMessage()]
    assert len(lines) == 1, lines
    await wait_for(lambda: scp._pending == 0)
    return info.value


async def test_no_client_certificate_is_refused_and_named(
    tls_certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    async with echo_scp(server_tls(tls_certs)) as scp:
        error = await _failure(scp, client_context(tls_certs.ca), "no_certificate", caplog)
    assert isinstance(error, TlsError) and error.kind == "no_certificate"
    assert "requires a client certificate" in str(error)
    assert any("sent no certificate" in r.getMessage() for r in caplog.records)


async def test_a_failed_handshake_is_a_server_event(tls_certs: Certs, tmp_path: Path) -> None:
    """StoreScp reports each failed handshake as a ``tls_failure`` event (and in its event stream), with the
    peer, the kind it counted and the cause."""
    seen: list[TlsFailure] = []
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path, tls=server_tls(tls_certs)) as scp:
        scp.on_tls_failure(seen.append)
        with pytest.raises((PeerUnreachable, AssociationAborted)):
            await EchoScu(
                f"127.0.0.1:{scp.port}", tls=client_context(tls_certs.ca), connect_timeout=10
            ).echo()
        await wait_for(lambda: len(seen) == 1)
    (failure,) = seen
    assert failure.kind == "no_certificate" and scp.tls_failures == {"no_certificate": 1}
    assert failure.peer_host == "127.0.0.1" and failure.peer_port > 0
    assert "certificate" in failure.reason and failure.message.startswith("TLS handshake with 127.0.0.1:")


async def test_client_certificate_of_another_ca_is_refused_as_unknown_ca(
    tls_certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    c = tls_certs
    async with echo_scp(server_tls(c)) as scp:
        error = await _failure(
            scp, client_context(c.ca, c.other_client_cert, c.other_client_key), "unknown_ca", caplog
        )
    assert isinstance(error, TlsError) and error.kind == "unknown_ca", error
    assert any("unknown CA" in r.getMessage() for r in caplog.records)


async def test_expired_client_certificate_is_refused_as_expired(
    tls_certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    c = tls_certs
    async with echo_scp(server_tls(c)) as scp:
        error = await _failure(
            scp, client_context(c.ca, c.expired_client_cert, c.expired_client_key), "expired", caplog
        )
    assert isinstance(error, TlsError) and error.kind == "expired"
    assert any("certificate expired" in r.getMessage() for r in caplog.records)


async def test_revoked_client_certificate_is_refused_with_the_crl(
    tls_certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    c = tls_certs
    async with echo_scp(server_tls(c, crl=c.crl)) as scp:
        assert (await EchoScu(f"127.0.0.1:{scp.port}", tls=client_tls(c)).echo()).count == 1
        caplog.clear()
        await _failure(
            scp, client_context(c.ca, c.revoked_client_cert, c.revoked_client_key), "revoked", caplog
        )


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_11_client_is_refused_as_protocol_version(
    tls_certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1_1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    async with echo_scp(server_tls(tls_certs)) as scp:
        error = await _failure(scp, old, "protocol_version", caplog)
    assert isinstance(error, TlsError) and error.kind == "protocol_version"


async def test_plain_client_to_a_tls_server_and_tls_client_to_a_plain_one(
    tls_certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    async with echo_scp(server_tls(tls_certs)) as scp:
        error = await _failure(scp, None, "not_tls", caplog)
    assert isinstance(error, AssociationAborted)  # it sent its A-ASSOCIATE-RQ; the connection closed
    async with EchoScp(0, host="127.0.0.1") as plain:
        with pytest.raises(TlsError) as info:
            await EchoScu(f"127.0.0.1:{plain.port}", tls=client_tls(tls_certs), connect_timeout=10).echo()
    assert info.value.kind in ("not_tls", "closed"), info.value


async def test_untrusted_server_is_refused_by_the_client(tls_certs: Certs) -> None:
    c = tls_certs
    other = server_context(c.other_server_cert, c.other_server_key, c.ca)
    async with echo_scp(other) as scp:
        with pytest.raises(TlsError, match="unknown CA") as info:
            await EchoScu(f"127.0.0.1:{scp.port}", tls=client_tls(c)).echo()
        assert info.value.kind == "unknown_ca"
    # the certificate names 127.0.0.1 and localhost; its hostname is checked only when asked
    async with EchoScp(0, host="127.0.0.2", tls=server_tls(c)) as scp:
        assert (await EchoScu(f"127.0.0.2:{scp.port}", tls=client_tls(c)).echo()).count == 1
        with pytest.raises(TlsError, match="mismatch"):
            await EchoScu(f"127.0.0.2:{scp.port}", tls=client_tls(c, check_hostname=True)).echo()
    async with echo_scp(server_tls(c)) as scp:
        assert (await EchoScu(f"127.0.0.1:{scp.port}", tls=client_tls(c, check_hostname=True)).echo()).count


def test_failure_kinds_of_asyncio_errors() -> None:
    assert tls_failure_kind(ConnectionAbortedError("SSL handshake is taking longer than 1 seconds"))[0] == (
        "timeout"
    )
    assert tls_failure_kind(ConnectionResetError())[0] == "closed"


# ------------------------------------------------------------------------------ timeout and the cap


def _silent(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(False)
    return sock


async def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reads EOF or a reset)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(seconds):
            while await loop.sock_recv(sock, 4096):
                pass
    except ConnectionResetError:
        pass
    return loop.time() - started


async def test_a_silent_tls_connection_is_closed_at_the_handshake_timeout(tls_certs: Certs) -> None:
    async with echo_scp(server_tls(tls_certs), tls_handshake_timeout=0.5, artim_timeout=30) as scp:
        sock = _silent(scp.port)
        try:
            waited = await _closed_within(sock, 10)
        finally:
            sock.close()
        assert 0.3 < waited < 8
        await wait_for(lambda: scp.tls_failures["timeout"] == 1 and scp._pending == 0)


async def test_handshakes_at_a_time_are_capped_and_the_others_wait_their_turn(tls_certs: Certs) -> None:
    async with echo_scp(server_tls(tls_certs), max_tls_handshakes=1, tls_handshake_timeout=2.0) as scp:
        sock = _silent(scp.port)  # holds the one handshake slot until its timeout
        try:
            await wait_for(lambda: scp._tls is not None and scp._tls.handshaking == 1)
            echo = asyncio.ensure_future(EchoScu(f"127.0.0.1:{scp.port}", tls=client_tls(tls_certs)).echo())
            await wait_for(lambda: scp._pending == 2)
            await asyncio.sleep(0.3)
            assert scp._tls is not None and scp._tls.handshaking == 1 and scp.tls_handshakes == 0
            assert not echo.done()
            result = await asyncio.wait_for(echo, 20)  # its turn came when the silent one timed out
            assert result.count == 1
            assert scp.tls_failures["timeout"] == 1 and scp.tls_handshakes == 1
        finally:
            sock.close()
