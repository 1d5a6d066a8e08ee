"""C-STORE over TLS: aiodicom against DCMTK as the sender and as the receiver, and what TLS costs each.

    python benchmarks/tls_vs_dcmtk.py [--sets small,large] [--rounds 2]

Sending: aiodicom's StoreScu (in this process, on uvloop when installed: start-up is not measured) and DCMTK
``storescu +tls`` (one process, ``+sd``) to the same DCMTK ``storescp +tls``. Receiving: aiodicom ``storescp
--tls-cert ... --no-fsync`` and DCMTK ``storescp +tls``, both fed by DCMTK ``storescu +tls``. Each also over
plain TCP, for the cost of TLS. Both sides authenticate (client certificates required, DCMTK's default), the
profile is BCP 195 non-downgrading (TLS 1.3 between these peers); receivers write to /dev/shm; one
association; every DCMTK process has TCP_NODELAY=1; best of ``--rounds``. Data sets as in
store_receivers.py: small 1,000 x ~130 KB, large 4 x ~100 MB CT images.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _peers import DCMTK_ENV, free_port, tool, wait_for_port
from store_receivers import make_set

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiodicom import StoreScu
from aiodicom.net.tls import client_context
from tests.interop.certs import Certs, make_certs

SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


def dcmtk_tls(key: Path, cert: Path, ca: Path) -> list[str]:
    return ["+tls", str(key), str(cert), "-pw", "+cf", str(ca)]


def _count(out: Path) -> int:
    return sum(1 for p in out.rglob("*") if p.is_file() and p.stat().st_size and ".incoming" not in p.parts)


class Receiver:
    """A receiver process on a free port, storing into a fresh directory on /dev/shm."""

    def __init__(self, kind: str, tls: bool, certs: Certs) -> None:
        self.port = free_port()
        self.out = Path(tempfile.mkdtemp(prefix="tls-bench-", dir=SHM))
        c = certs
        if kind == "dcmtk":
            command = [tool("storescp"), "--aetitle", "STORE-SCP", "-od", str(self.out)]
            if tls:
                command += dcmtk_tls(c.server_key, c.server_cert, c.ca)
            command.append(str(self.port))
        else:
            command = [
                sys.executable,
                "-m",
                "aiodicom",
                "storescp",
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--out-dir",
                str(self.out),
                "--no-fsync",
            ]
            if tls:
                command += [
                    "--tls-cert",
                    str(c.server_cert),
                    "--tls-key",
                    str(c.server_key),
                    "--tls-ca",
                    str(c.ca),
                ]
        self.proc = subprocess.Popen(
            command, env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def close(self, expected: int) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        stored = _count(self.out)
        shutil.rmtree(self.out, ignore_errors=True)
        if stored != expected:
            raise RuntimeError(f"stored {stored} of {expected} files")


def dcmtk_send(port: int, folder: Path, tls: bool, certs: Certs) -> float:
    c = certs
    command = [tool("storescu"), "-aec", "STORE-SCP"]
    if tls:
        command += dcmtk_tls(c.client_key, c.client_cert, c.ca)
    command += ["127.0.0.1", str(port), "+sd", str(folder)]
    started = time.perf_counter()
    subprocess.run(command, env=DCMTK_ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def aiodicom_send(port: int, folder: Path, tls: bool, certs: Certs) -> float:
    c = certs
    context = client_context(c.ca, c.client_cert, c.client_key) if tls else None

    async def send() -> float:
        scu = StoreScu(f"STORE-SCP@127.0.0.1:{port}", tls=context)
        scu.add_folder(folder)
        started = time.perf_counter()
        result = await scu.send()
        seconds = time.perf_counter() - started
        if result.failed:
            raise RuntimeError(f"aiodicom StoreScu: {result.failed} files failed")
        return seconds

    try:
        import uvloop

        return uvloop.run(send())
    except ImportError:
        return asyncio.run(send())


Sender = Callable[[int, Path, bool, Certs], float]
MEASURES: list[tuple[str, str, Sender]] = [
    ("send: aiodicom StoreScu -> DCMTK storescp", "dcmtk", aiodicom_send),
    ("send: DCMTK storescu -> DCMTK storescp", "dcmtk", dcmtk_send),
    ("receive: DCMTK storescu -> aiodicom storescp", "aiodicom", dcmtk_send),
    ("receive: DCMTK storescu -> DCMTK storescp", "dcmtk", dcmtk_send),
]


def timed(receiver: str, sender: Sender, folder: Path, count: int, tls: bool, certs: Certs) -> float:
    """Seconds to send ``folder`` with ``sender`` to a new ``receiver`` (every file stored, checked)."""
    peer = Receiver(receiver, tls, certs)
    try:
        return sender(peer.port, folder, tls, certs)
    finally:
        peer.close(count)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="small,large")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", default=None, help="where to keep the generated data (default: a temp dir)")
    args = parser.parse_args()
    root = Path(args.data or tempfile.mkdtemp(prefix="aiodicom-bench-"))
    certs = make_certs(root / "certs")
    print(f"C-STORE over TLS (bcp195-nd, mutual authentication), receivers on {SHM}; data in {root}")
    print(f"  {'set':<6} {'':<44} {'TLS MB/s':>9} {'TCP MB/s':>9} {'TLS cost':>9}")
    for set_name in args.sets.split(","):
        folder = make_set(root, set_name)
        files = sorted(folder.iterdir())
        count, megabytes = len(files), sum(p.stat().st_size for p in files) / 1e6
        figures: dict[str, dict[bool, float]] = {}
        for label, receiver, sender in MEASURES:
            for tls in (True, False):
                figures.setdefault(label, {})[tls] = min(
                    timed(receiver, sender, folder, count, tls, certs) for _ in range(args.rounds)
                )
        for label, by in figures.items():
            tls_rate, tcp_rate = megabytes / by[True], megabytes / by[False]
            print(f"  {set_name:<6} {label:<44} {tls_rate:9.1f} {tcp_rate:9.1f} {by[True] / by[False]:8.2f}x")
        send = (
            figures["send: DCMTK storescu -> DCMTK storescp"][True]
            / figures["send: aiodicom StoreScu -> DCMTK storescp"][True]
        )
        receive = (
            figures["receive: DCMTK storescu -> DCMTK storescp"][True]
            / figures["receive: DCMTK storescu -> aiodicom storescp"][True]
        )
        print(
            f"  {set_name:<6} over TLS, aiodicom vs DCMTK: sending {send:.2f}x, receiving {receive:.2f}x "
            f"({count} files, {megabytes:.0f} MB)"
        )


if __name__ == "__main__":
    main()
