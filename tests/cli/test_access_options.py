"""The server verbs' access options through the real entry point: --users (made with hash-password),
--allow-calling-ae, --require-called-ae, --allow-host, --max-associations-per-peer, --artim-timeout, against
DCMTK clients; bad values exit 2; store --retries."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from pydicom.data import get_testdata_file

import aiodicom
from aiodicom.cli.access import access_options
from aiodicom.net.client import open_association
from aiodicom.net.passwords import load_users, verify_password
from tests.cli.test_commands import run
from tests.interop.peers import free_port, run_dcmtk, stop, wait_for_port


def test_hash_password_prints_a_users_file_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aiodicom", "hash-password", "alice"],
        input="s3cret\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "users").write_text(proc.stdout)
    users = load_users(tmp_path / "users")
    assert list(users) == ["alice"] and verify_password("s3cret", users["alice"])


def test_bad_access_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = run("echoscp", "--port", "0", "--allow-host", "pacs.example.org")
    assert proc.returncode == 2 and "host names are not accepted" in proc.stderr, proc.stderr
    for args, message in (
        ((None, None, str(tmp_path / "missing"), None, None), "cannot read"),
        ((None, None, None, None, 0.0), "--artim-timeout must be more than 0"),
        ((None, ["A\\B"], None, None, None), "--allow-calling-ae"),
    ):
        with pytest.raises(typer.Exit) as info:
            access_options(*args)  # type: ignore[arg-type]
        assert info.value.exit_code == 2 and message in capsys.readouterr().err, args
    assert access_options(["127.0.0.1, 10.0.0.0/8"], ["CT01"], None, 0, 5.0) == {
        "allowed_hosts": (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")),
        "allowed_calling_ae_titles": ["CT01"],
        "max_associations_per_peer": None,
        "artim_timeout": 5.0,
    }


@pytest.mark.interop
async def test_storescp_users_calling_ae_and_limits_with_dcmtk_storescu(tmp_path: Path) -> None:
    users = tmp_path / "users"
    made = subprocess.run(
        [sys.executable, "-m", "aiodicom", "hash-password", "alice"],
        input="s3cret\n", capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    users.write_text(made.stdout)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "storescp", "--port", str(port), "--host", "127.0.0.1",
         "--out-dir", str(tmp_path / "out"), "--no-fsync", "--users", str(users),
         "--allow-calling-ae", "MODALITY", "--allow-calling-ae", "ROUTER", "--allow-host", "127.0.0.0/8",
         "--max-associations-per-peer", "1", "--artim-timeout", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    ct = get_testdata_file("CT_small.dcm")
    login = ["-usr", "alice", "-pwd", "s3cret", "-rsp"]
    try:
        await asyncio.to_thread(wait_for_port, port, proc)  # type: ignore[arg-type]
        good = await asyncio.to_thread(
            run_dcmtk, "storescu", "-aet", "ROUTER", *login, "127.0.0.1", str(port), ct
        )
        assert good.returncode == 0, good.stdout + good.stderr
        for args, why in (
            (["-aet", "OTHER", *login], "calling ae title not recognized"),
            (["-aet", "MODALITY", "-usr", "alice", "-pwd", "guess"], "no reason"),
            (["-aet", "MODALITY"], "no reason"),  # no identity at all
        ):
            bad = await asyncio.to_thread(run_dcmtk, "storescu", *args, "127.0.0.1", str(port), ct)
            text = (bad.stdout + bad.stderr).lower()
            assert bad.returncode != 0 and "rejected" in text and why in text, (args, text)
        identity = aiodicom.UserIdentity.username_password("alice", "s3cret")
        held = await open_association(
            f"127.0.0.1:{port}", calling_ae_title="MODALITY", user_identity=identity
        )
        try:  # one association per peer address: the next one is told to come back later
            busy = await asyncio.to_thread(
                run_dcmtk, "storescu", "-aet", "ROUTER", *login, "127.0.0.1", str(port), ct
            )
            assert busy.returncode != 0 and "local limit exceeded" in (busy.stdout + busy.stderr).lower()
        finally:
            await held.release()
    finally:
        stop(proc)  # type: ignore[arg-type]
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1


@pytest.mark.interop
async def test_echoscp_called_ae_and_allowed_hosts_with_dcmtk_echoscu() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "echoscp", "--port", str(port), "--host", "127.0.0.1",
         "--require-called-ae", "--allow-host", "10.0.0.0/8", "--allow-host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    other = free_port()
    outside = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "echoscp", "--port", str(other), "--host", "127.0.0.1",
         "--allow-host", "10.0.0.0/8"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await asyncio.to_thread(wait_for_port, port, proc)  # type: ignore[arg-type]
        ok = await asyncio.to_thread(run_dcmtk, "echoscu", "-aec", "ECHO-SCP", "127.0.0.1", str(port))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        wrong = await asyncio.to_thread(run_dcmtk, "echoscu", "-aec", "OTHER", "127.0.0.1", str(port))
        assert (
            wrong.returncode != 0
            and "called ae title not recognized" in (wrong.stdout + wrong.stderr).lower()
        )
        await asyncio.to_thread(wait_for_port, other, outside)  # type: ignore[arg-type]
        refused = await asyncio.to_thread(run_dcmtk, "echoscu", "127.0.0.1", str(other))
        assert refused.returncode != 0  # closed before anything is read
    finally:
        stop(proc)  # type: ignore[arg-type]
        stop(outside)  # type: ignore[arg-type]


def test_store_retries_option() -> None:
    started = time.monotonic()
    proc = run("store", f"127.0.0.1:{free_port()}", "--retries", "0", get_testdata_file("CT_small.dcm"))
    assert proc.returncode != 0 and time.monotonic() - started < 20
    assert run("store", "127.0.0.1:1", "--retries", "-1", "x.dcm").returncode == 2
