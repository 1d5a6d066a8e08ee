"""``aiodicom store --max-ops N`` and ``aiodicom storescp --max-ops-performed N`` through the real entry
point: the window is proposed, granted and used."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.interop.faultproxy import FaultProxy
from tests.interop.peers import free_port, stop, wait_for_port
from tests.services.test_send_window import answered_window, requests_before_first_response, write_files


async def test_store_max_ops_against_storescp_max_ops_performed(tmp_path: Path) -> None:
    files = write_files(tmp_path / "send", 12)
    port = free_port()
    out = tmp_path / "in"
    receiver = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "storescp", "--port", str(port), "--host", "127.0.0.1",
         "--out-dir", str(out), "--no-fsync", "--max-ops-performed", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        await asyncio.to_thread(wait_for_port, port, receiver)  # type: ignore[arg-type]
        async with FaultProxy(port, latency=0.005, record=True) as proxy:
            sender = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "aiodicom", "store", f"127.0.0.1:{proxy.port}", str(tmp_path / "send"),
                "--max-ops", "16",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await asyncio.wait_for(sender.communicate(), 60)
    finally:
        stop(receiver)  # type: ignore[arg-type]
    assert sender.returncode == 0, err
    assert answered_window(proxy) == b"\x00\x04\x00\x01"  # 16 proposed, 4 granted
    assert 1 < requests_before_first_response(proxy, set(files)) <= 4
    assert sorted(p.stem for p in out.rglob("*.dcm")) == sorted(files)


def test_max_ops_out_of_range_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aiodicom", "store", "127.0.0.1:104", "x.dcm", "--max-ops", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Invalid value for '--max-ops'" in proc.stderr
