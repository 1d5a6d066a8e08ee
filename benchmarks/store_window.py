"""Sending over a slow link: aiodicom with an asynchronous operations window of 8 against a window of 1 and
against DCMTK storescu, through the same latency proxy, in one run.

    python benchmarks/store_window.py [--count 1000] [--latency 5,50] [--rounds 3] [--window 8]

The files are the `small` set of benchmarks/store_receivers.py (~130 KB CT images, explicit VR little
endian; a set of ``--count`` alike when fewer than its 1,000). Between sender and receiver runs the
fault-injecting proxy of the tests (tests/interop/faultproxy.py) in a process of its own, delaying every
chunk by ``--latency`` milliseconds each way (each chunk released at its arrival plus the delay, reading on
meanwhile). The receiver is one aiodicom storescp process granting the window (``--max-ops-performed 8
--no-fsync``) for every row: only the sender changes, and DCMTK storescu proposes no window, so for it the
grant changes nothing (DCMTK storescp would grant none to aiodicom either, which would make the window
rows the same as window 1). Every sender is a command (``aiodicom store`` and ``storescu +sd``) on one
association, timed from start to exit, best of ``--rounds``; all DCMTK processes run with TCP_NODELAY=1.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _peers import DCMTK_ENV, free_port, tool, wait_for_port
from store_receivers import SETS, make_set

ROOT = Path(__file__).resolve().parent.parent
AIODICOM = [sys.executable, "-m", "aiodicom"]


def serve_proxy(target: int, port: int, latency: float) -> None:
    """The child process: the latency proxy on ``port`` to ``target`` until killed."""
    sys.path.insert(0, str(ROOT))
    from tests.interop.faultproxy import FaultProxy

    async def main() -> None:
        async with FaultProxy(target, latency=latency, port=port):
            await asyncio.Event().wait()

    asyncio.run(main())


def small_set(root: Path, count: int) -> Path:
    """``count`` files of the `small` set (the set itself for 1,000, a smaller one made alike otherwise)."""
    if count >= 1000:
        return make_set(root, "small")
    SETS[f"small-{count}"] = (count, *SETS["small"][1:])
    return make_set(root, f"small-{count}")


def senders(port: int, folder: Path, window: int) -> dict[str, list[str]]:
    aiodicom = [*AIODICOM, "store", f"STORE-SCP@127.0.0.1:{port}", str(folder)]
    return {
        f"aiodicom window {window}": [*aiodicom, "--max-ops", str(window)],
        "aiodicom window 1": aiodicom,
        "DCMTK storescu": [tool("storescu"), "-aec", "STORE-SCP", "127.0.0.1", str(port), "+sd", str(folder)],
    }


def timed(command: list[str], out: Path, expected: int) -> float:
    for entry in out.iterdir():  # what the last run stored; the receiver's own (.incoming) stays
        if not entry.name.startswith("."):
            shutil.rmtree(entry, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=DCMTK_ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{command[0]} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    stored = sum(1 for p in out.rglob("*.dcm") if ".incoming" not in p.parts)
    if stored != expected:
        raise RuntimeError(f"{command[0]}: {stored} of {expected} files stored")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000, help="files sent (at most 1,000)")
    parser.add_argument("--latency", default="5,50", help="milliseconds each way, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs per sender")
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--data", default=None, help="where to keep the generated data (default: a temp dir)")
    parser.add_argument("--serve-proxy", nargs=3, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_proxy:
        target, port, latency = args.serve_proxy
        serve_proxy(int(target), int(port), latency)
        return
    root = Path(args.data or tempfile.mkdtemp(prefix="aiodicom-bench-"))
    folder = small_set(root, args.count)
    count = sum(1 for _ in folder.iterdir())
    out = root / "received"
    receiver_port = free_port()
    out.mkdir(parents=True, exist_ok=True)
    receiver = subprocess.Popen(
        [
            *AIODICOM,
            "storescp",
            "--port",
            str(receiver_port),
            "--host",
            "127.0.0.1",
            "--out-dir",
            str(out),
            "--no-fsync",
            "--max-ops-performed",
            str(args.window),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(
        f"{count} files of ~130 KB through the latency proxy, into aiodicom storescp granting {args.window}"
    )
    print(
        f"  {'latency':>8} {'sender':<20} {'files/s':>9} {'seconds':>8} {'vs window 1':>12} {'vs DCMTK':>9}"
    )
    try:
        wait_for_port(receiver_port)
        for latency_ms in (float(v) for v in args.latency.split(",")):
            proxy_port, delay = free_port(), latency_ms / 1000
            proxy = subprocess.Popen(
                [sys.executable, __file__, "--serve-proxy", str(receiver_port), str(proxy_port), str(delay)]
            )
            try:
                wait_for_port(proxy_port)
                best: dict[str, float] = {}
                for _ in range(args.rounds):  # interleaved rounds, best of each
                    for name, command in senders(proxy_port, folder, args.window).items():
                        seconds = timed(command, out, count)
                        best[name] = min(seconds, best.get(name, seconds))
            finally:
                proxy.terminate()
                proxy.wait(10)
            one, dcmtk = best["aiodicom window 1"], best["DCMTK storescu"]
            for name, seconds in best.items():
                print(
                    f"  {latency_ms:6.0f}ms {name:<20} {count / seconds:9.1f} {seconds:8.2f} "
                    f"{one / seconds:11.2f}x {dcmtk / seconds:8.2f}x"
                )
    finally:
        receiver.terminate()
        receiver.wait(30)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
