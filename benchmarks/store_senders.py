"""Sending C-STOREs: aiodicom StoreScu against DCMTK storescu and pynetdicom's storescu, in one run.

    python benchmarks/store_senders.py [--sets small,typical,large] [--rounds 2]

All senders send the same generated data sets (see store_receivers.py) to one DCMTK storescp that
forks per association and receives without storing (`--fork --ignore`), so that the sender is what is
measured; all DCMTK processes run with TCP_NODELAY=1. aiodicom runs as the `aiodicom store` command
(interpreter start included) and as a library (StoreScu.send() timed alone), at concurrency 1 and 4;
DCMTK storescu and pynetdicom's storescu send on one association. Commands have their start-up taken
out: the time of the same command sending one file of the set (least of 3) is subtracted, and the rest
counted for the other files. The library figure times the folder's scan and the send (no interpreter
start). Peak RSS is the sender's VmHWM.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _peers import DCMTK_ENV, free_port, tool, wait_for_port
from store_receivers import make_set


def measure(command: list[str]) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of a command."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["/usr/bin/time", "-f", "%M", *command],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{command[0]} failed: {err[-500:]}")
    return seconds, int(err.strip().splitlines()[-1]) / 1024


def in_process(port: int, folder: Path, concurrency: int) -> tuple[float, float]:
    """aiodicom StoreScu used as a library (no interpreter start; the folder's scan is timed), on uvloop
    when installed."""
    code = (
        "import sys, time\n"
        "from aiodicom.scu.store import StoreScu\n"
        "from _peers import run_on, loops\n"
        f"scu = StoreScu('STORE-SCP@127.0.0.1:{port}', concurrency={concurrency})\n"
        "started = time.perf_counter()\n"
        f"scu.add_folder({str(folder)!r})\n"
        "result = run_on(loops()[-1], scu.send())\n"
        "assert result.failed == 0, result\n"
        "seconds = time.perf_counter() - started\n"
        # VmHWM, not ru_maxrss: getrusage keeps the parent's peak across fork and exec
        "peak = [line for line in open('/proc/self/status') if line.startswith('VmHWM')][0]\n"
        "print(seconds, int(peak.split()[1]) / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="small,typical,large")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    root = Path(args.data or tempfile.mkdtemp(prefix="aiodicom-bench-"))
    port = free_port()
    receiver = subprocess.Popen(
        [tool("storescp"), "--fork", "--ignore", "--aetitle", "STORE-SCP", str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        print(
            "sending to DCMTK storescp --fork --ignore, best of",
            args.rounds,
            "(commands: start-up taken out; data on",
            root,
            ")",
        )
        print(
            f"  {'set':<9} {'sender':<32} {'files/s':>9} {'MB/s':>8} {'peak RSS':>9}"
            f" {'vs DCMTK':>9} {'vs pynetdicom':>14}"
        )
        for set_name in args.sets.split(","):
            folder = make_set(root, set_name)
            files = list(folder.iterdir())
            megabytes = sum(p.stat().st_size for p in files) / 1e6
            senders = {
                "aiodicom store, concurrency 1": [
                    sys.executable,
                    "-m",
                    "aiodicom",
                    "store",
                    "--called-ae",
                    "STORE-SCP",
                    f"127.0.0.1:{port}",
                    str(folder),
                ],
                "aiodicom store, concurrency 4": [
                    sys.executable,
                    "-m",
                    "aiodicom",
                    "store",
                    "-j",
                    "4",
                    "--called-ae",
                    "STORE-SCP",
                    f"127.0.0.1:{port}",
                    str(folder),
                ],
                "DCMTK storescu": [
                    tool("storescu"),
                    "+sd",
                    "-aec",
                    "STORE-SCP",
                    "127.0.0.1",
                    str(port),
                    str(folder),
                ],
                "pynetdicom storescu": [
                    sys.executable,
                    "-m",
                    "pynetdicom",
                    "storescu",
                    "-r",
                    "-aec",
                    "STORE-SCP",
                    "127.0.0.1",
                    str(port),
                    str(folder),
                ],
            }
            # a folder with one of the files: what each command costs before it sends anything
            one = root / f"{set_name}-one"
            one.mkdir(exist_ok=True)
            (one / files[0].name).write_bytes(files[0].read_bytes())
            startup: dict[str, float] = {}
            for name, command in senders.items():
                single = [str(one) if part == str(folder) else part for part in command]
                startup[name] = min(measure(single)[0] for _ in range(3))
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.rounds):
                for name, command in senders.items():
                    seconds, rss = measure(command)
                    # start-up taken out: the one-file run's time stands for the start and the first file
                    seconds = max(seconds - startup[name], 1e-6) * len(files) / max(len(files) - 1, 1)
                    old = best.get(name)
                    best[name] = (min(seconds, old[0]), max(rss, old[1])) if old else (seconds, rss)
                for concurrency in (1, 4):
                    name = f"aiodicom StoreScu (library), c={concurrency}"
                    seconds, rss = in_process(port, folder, concurrency)
                    old = best.get(name)
                    best[name] = (min(seconds, old[0]), max(rss, old[1])) if old else (seconds, rss)
            reference, slow = best["DCMTK storescu"][0], best["pynetdicom storescu"][0]
            for name, (seconds, rss) in best.items():
                print(
                    f"  {set_name:<9} {name:<32} {len(files) / seconds:9.1f} {megabytes / seconds:8.1f} "
                    f"{rss:7.0f}MB {reference / seconds:8.2f}x {slow / seconds:13.1f}x"
                )
    finally:
        receiver.terminate()
        receiver.wait(10)


if __name__ == "__main__":
    main()
