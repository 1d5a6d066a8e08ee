"""TLS against real peers on loopback: DCMTK's echoscu and storescu to aiodicom servers, aiodicom's clients
(with a client certificate) to DCMTK's storescp, Orthanc 1.10 with DicomTlsEnabled both ways; a plain client
and a certificate of another CA refused; a TLS 1.1 client refused with a protocol_version alert, shown
against an OpenSSL server that accepts the same client (a control that can fail)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest

from aiodicom import EchoScp, EchoScu, GetScu, MoveScu, StoreScp, StoreScu, TlsError
from aiodicom.net.tls import client_context, server_context
from tests.interop.certs import Certs
from tests.interop.pacs import _orthanc_exe
from tests.interop.peers import DCMTK_ENV, free_port, require_tool, run_dcmtk, stop, wait_for_port
from tests.net.test_tls import wait_for, write_instance

pytestmark = pytest.mark.interop


def dcmtk_tls(key: Path, cert: Path, ca: Path, *profile: str) -> list[str]:
    """DCMTK's TLS options: our key and certificate, the CA we trust, no key password."""
    return ["+tls", str(key), str(cert), "-pw", "+cf", str(ca), *profile]


def server_tls(c: Certs, **kwargs: Any) -> ssl.SSLContext:
    return server_context(c.server_cert, c.server_key, c.ca, **kwargs)


def client_tls(c: Certs, **kwargs: Any) -> ssl.SSLContext:
    return client_context(c.ca, c.client_cert, c.client_key, **kwargs)


# ------------------------------------------------------------------------- DCMTK clients, aiodicom servers


@pytest.mark.parametrize("profile", ["+py", "+pz"])
async def test_dcmtk_echoscu_over_tls_to_aiodicom(tls_certs: Certs, profile: str) -> None:
    c = tls_certs
    aio_profile = "bcp195-nd" if profile == "+py" else "bcp195-ex"
    async with EchoScp(0, host="127.0.0.1", tls=server_tls(c, profile=aio_profile)) as scp:
        done = await _run(
            "echoscu", *dcmtk_tls(c.client_key, c.client_cert, c.ca, profile), "127.0.0.1", str(scp.port)
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert scp.tls_handshakes == 1


async def test_dcmtk_storescu_over_tls_to_aiodicom(tls_certs: Certs, tmp_path: Path) -> None:
    c = tls_certs
    src = tmp_path / "in.dcm"
    uid = write_instance(src, 200_000)
    out = tmp_path / "out"
    async with StoreScp(0, host="127.0.0.1", out_dir=out, tls=server_tls(c)) as scp:
        done = await _run(
            "storescu", *dcmtk_tls(c.client_key, c.client_cert, c.ca), "127.0.0.1", str(scp.port), str(src)
        )
        assert done.returncode == 0, done.stdout + done.stderr
    stored = next(out.rglob(f"{uid}.dcm"))
    assert stored.read_bytes()[-100_000:] == src.read_bytes()[-100_000:]


async def test_plain_and_foreign_dcmtk_clients_are_refused(tls_certs: Certs) -> None:
    c = tls_certs
    async with EchoScp(0, host="127.0.0.1", tls=server_tls(c)) as scp:
        plain = await _run("echoscu", "-to", "10", "127.0.0.1", str(scp.port))
        assert plain.returncode != 0
        foreign = await _run(
            "echoscu", *dcmtk_tls(c.other_client_key, c.other_client_cert, c.ca), "127.0.0.1", str(scp.port)
        )
        assert foreign.returncode != 0
        await wait_for(lambda: scp.tls_failures["not_tls"] == 1 and scp.tls_failures["unknown_ca"] == 1)
        good = await _run(
            "echoscu", *dcmtk_tls(c.client_key, c.client_cert, c.ca), "127.0.0.1", str(scp.port)
        )
        assert good.returncode == 0, good.stdout + good.stderr


async def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_dcmtk, *args, timeout=30)


# ------------------------------------------------------------------------- aiodicom clients, DCMTK storescp


@dataclass
class TlsStorescp:
    port: int
    out_dir: Path


@pytest.fixture
def dcmtk_tls_storescp(tls_certs: Certs, tmp_path: Path) -> Iterator[TlsStorescp]:
    """DCMTK storescp +tls (which requires a client certificate by default, -rc)."""
    c = tls_certs
    exe = require_tool("storescp")
    port = free_port()
    out = tmp_path / "dcmtk"
    out.mkdir()
    proc = subprocess.Popen(
        [exe, *dcmtk_tls(c.server_key, c.server_cert, c.ca), "-od", str(out), str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)  # a TCP connect without a handshake: storescp logs it and goes on
        yield TlsStorescp(port, out)
    finally:
        stop(proc)


async def test_aiodicom_store_with_a_client_certificate_to_dcmtk(
    tls_certs: Certs, dcmtk_tls_storescp: TlsStorescp, tmp_path: Path
) -> None:
    c = tls_certs
    src = tmp_path / "in.dcm"
    uid = write_instance(src, 200_000)
    addr = f"STORESCP@127.0.0.1:{dcmtk_tls_storescp.port}"
    assert (await EchoScu(addr, tls=client_tls(c)).echo()).count == 1
    scu = StoreScu(addr, tls=client_tls(c))
    scu.add_file(src)
    result = await scu.send()
    assert result.successful == 1, result.files
    assert any(uid in p.name for p in dcmtk_tls_storescp.out_dir.iterdir())
    # the extended profile (TLS 1.2 only) too
    assert (await EchoScu(addr, tls=client_tls(c, profile="bcp195-ex")).echo()).count == 1


async def test_dcmtk_refuses_aiodicom_without_a_certificate_or_from_another_ca(
    tls_certs: Certs, dcmtk_tls_storescp: TlsStorescp
) -> None:
    c = tls_certs
    addr = f"STORESCP@127.0.0.1:{dcmtk_tls_storescp.port}"
    for tls in (client_context(c.ca), client_context(c.ca, c.other_client_cert, c.other_client_key)):
        with pytest.raises(TlsError) as info:
            await EchoScu(addr, tls=tls, connect_timeout=10, acse_timeout=10).echo()
        assert info.value.kind in ("no_certificate", "unknown_ca", "bad_certificate", "handshake_failure")
    # and a client that does not trust storescp's CA refuses it
    with pytest.raises(TlsError, match="unknown CA"):
        await EchoScu(addr, tls=client_context(c.other_ca, c.client_cert, c.client_key)).echo()


# --------------------------------------------------------------------------------------- Orthanc over TLS


@dataclass
class TlsOrthanc:
    dicom_port: int
    http_port: int
    receiver_port: int  # the port of the aiodicom modality "AIODICOM" it knows, with UseDicomTls

    def rest(self, method: str, path: str, body: bytes | None = None) -> object:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")


@pytest.fixture(scope="module")
def tls_orthanc(tls_certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsOrthanc]:
    """An Orthanc 1.10 of its own, DICOM over TLS only, requiring client certificates from our CA."""
    c = tls_certs
    work = tmp_path_factory.mktemp("tls-orthanc")
    dicom_port, http_port, receiver_port = free_port(), free_port(), free_port()
    config = {
        "Name": "aiodicom-tls",
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "index"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "DicomCheckModalityHost": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "SynchronousCMove": True,
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(c.server_cert),
        "DicomTlsPrivateKey": str(c.server_key),
        "DicomTlsTrustedCertificates": str(c.ca),
        "DicomTlsRemoteCertificateRequired": True,
        "DicomModalities": {
            "AIODICOM": {"AET": "AIODICOM", "Host": "127.0.0.1", "Port": receiver_port, "UseDicomTls": True}
        },
        "DicomScuTimeout": 10,
        "SaveJobs": False,
        "Plugins": [],
    }
    config_path = work / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log = (work / "orthanc.log").open("wb")
    proc = subprocess.Popen(
        [_orthanc_exe(), str(config_path)], stdout=log, stderr=subprocess.STDOUT, env=DCMTK_ENV
    )
    try:
        wait_for_port(http_port, proc, timeout=30, log=work / "orthanc.log")
        wait_for_port(dicom_port, proc, timeout=30, log=work / "orthanc.log")
        yield TlsOrthanc(dicom_port, http_port, receiver_port)
    finally:
        stop(proc)
        log.close()


async def test_aiodicom_to_orthanc_over_tls(
    tls_certs: Certs, tls_orthanc: TlsOrthanc, tmp_path: Path
) -> None:
    c = tls_certs
    addr = f"ORTHANC@127.0.0.1:{tls_orthanc.dicom_port}"
    assert (await EchoScu(addr, tls=client_tls(c)).echo()).count == 1
    src = tmp_path / "in.dcm"
    uid = write_instance(src, 100_000)
    scu = StoreScu(addr, tls=client_tls(c))
    scu.add_file(src)
    assert (await scu.send()).successful == 1
    found = await asyncio.to_thread(
        tls_orthanc.rest,
        "POST",
        "/tools/lookup",
        uid.encode(),
    )
    assert found, f"Orthanc has no {uid}"
    with pytest.raises(TlsError):  # Orthanc requires a client certificate
        await EchoScu(addr, tls=client_context(c.ca), connect_timeout=10, acse_timeout=10).echo()


async def test_orthanc_to_aiodicom_over_tls(
    tls_certs: Certs, tls_orthanc: TlsOrthanc, tmp_path: Path
) -> None:
    c = tls_certs
    src = tmp_path / "in.dcm"
    uid = write_instance(src, 100_000)
    uploaded = await asyncio.to_thread(tls_orthanc.rest, "POST", "/instances", src.read_bytes())
    instance_id = uploaded["ID"]  # type: ignore[index]
    out = tmp_path / "out"
    scp = StoreScp(tls_orthanc.receiver_port, host="127.0.0.1", out_dir=out, tls=server_tls(c))
    async with scp:
        echo = await asyncio.to_thread(tls_orthanc.rest, "POST", "/modalities/AIODICOM/echo", b"{}")
        assert echo == {}
        body = json.dumps({"Resources": [instance_id], "Synchronous": True}).encode()
        await asyncio.to_thread(tls_orthanc.rest, "POST", "/modalities/AIODICOM/store", body)
        assert scp.tls_handshakes == 2
    assert next(out.rglob(f"{uid}.dcm")).is_file()


async def test_move_and_get_with_forward_over_tls_from_orthanc(
    tls_certs: Certs, tls_orthanc: TlsOrthanc, tmp_path: Path
) -> None:
    """MoveScu's built-in receiver and GetScu's forward target take TLS too."""
    c = tls_certs
    src = tmp_path / "in.dcm"
    uid = write_instance(src, 50_000)
    study = str(pydicom.dcmread(src, stop_before_pixels=True).StudyInstanceUID)
    await asyncio.to_thread(tls_orthanc.rest, "POST", "/instances", src.read_bytes())
    addr = f"ORTHANC@127.0.0.1:{tls_orthanc.dicom_port}"
    query = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study}
    moved = tmp_path / "moved"
    receive = {"port": tls_orthanc.receiver_port, "host": "127.0.0.1", "out_dir": moved, "tls": server_tls(c)}
    result = await MoveScu(addr, calling_ae_title="AIODICOM", tls=client_tls(c)).move(
        query, "AIODICOM", receive=receive
    )
    assert result.completed == 1 and next(moved.rglob(f"{uid}.dcm")).is_file(), result
    forwarded = tmp_path / "forwarded"
    async with StoreScp(0, host="127.0.0.1", out_dir=forwarded, tls=server_tls(c)) as target:
        get = GetScu(
            addr,
            tls=client_tls(c),
            storage_backend="forward",
            forward_target={"addr": f"127.0.0.1:{target.port}", "tls": client_tls(c)},
        )
        got = await get.get_study(query)
        assert got.completed == 1 and target.tls_handshakes == 1, got
    assert next(forwarded.rglob(f"{uid}.dcm")).is_file()


# ----------------------------------------------------------------------------------- TLS 1.1 is refused


def _openssl(*args: str) -> list[str]:
    return ["openssl", *args]


OLD = ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]


def _s_client(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _openssl("s_client", "-connect", f"127.0.0.1:{port}", *OLD),
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_a_tls11_client_is_refused_with_a_protocol_version_alert(tls_certs: Certs) -> None:
    c = tls_certs
    # the control: the same client gets TLS 1.1 from an OpenSSL server that allows it
    port = free_port()
    server = subprocess.Popen(
        _openssl(
            "s_server",
            "-accept",
            str(port),
            "-cert",
            str(c.server_cert),
            "-key",
            str(c.server_key),
            "-naccept",
            "1",
            *OLD,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        assert server.stdout is not None
        while "ACCEPT" not in server.stdout.readline():
            assert time.monotonic() < deadline and server.poll() is None, "s_server did not start"
        control = await asyncio.to_thread(_s_client, port)
    finally:
        stop(server)  # type: ignore[arg-type]
    assert "Protocol  : TLSv1.1" in control.stdout or "TLSv1.1" in control.stdout, control.stdout
    assert "alert protocol version" not in control.stdout + control.stderr

    async with EchoScp(0, host="127.0.0.1", tls=server_tls(c)) as scp:
        refused = await asyncio.to_thread(_s_client, scp.port)
        await wait_for(lambda: scp.tls_failures["protocol_version"] == 1)
    assert refused.returncode != 0
    assert "alert protocol version" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
