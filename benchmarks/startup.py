"""Start-up and memory of the ``aiodicom`` command: short commands' time, a receiver's and a sender's RSS.

    PYTHONPATH=$PWD python benchmarks/startup.py [--runs 10] [--large-count 4] [--large-mb 100]

Prints, for ``aiodicom --version``, ``aiodicom echo ADDR`` (one C-ECHO) and ``aiodicom store ADDR one.dcm``
(one ~0.5 MB CT image), the median wall time of ``--runs`` runs of the installed console script, each a fresh
process, next to the bare interpreter (``python -c pass``) and ``python -c "import pydicom"`` for scale; then
the RSS of an idle ``aiodicom storescp`` once it listens, and the peak RSS (VmHWM) of ``aiodicom store``
sending ``--large-count`` generated instances of ``--large-mb`` MB each. The peer is DCMTK ``storescp``
(TCP_NODELAY=1), which answers C-ECHO and, with ``--ignore``, receives without storing. Data is generated on
/dev/shm (tmpfs) when it exists. Python's bytecode is cached first, in a temporary folder
(PYTHONPYCACHEPREFIX), as an installed package has it: an interpreter run with PYTHONDONTWRITEBYTECODE
compiles every module of aiodicom on every start, which is not what a user's installation does.
The load average is printed before and after: on a shared machine the figures move with it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _peers import DCMTK_ENV, free_port, tool, wait_for_port
from store_receivers import make_instance


def console_script() -> str:
    """The ``aiodicom`` script installed beside this interpreter (not a version manager's shim)."""
    beside = Path(sys.executable).parent / "aiodicom"
    if beside.exists():
        return str(beside)
    found = shutil.which("aiodicom")
    if found is None:
        sys.exit("the aiodicom command is not installed (pip install -e .)")
    return found


def wall(command: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of ``runs`` runs (after one run not counted, which writes the bytecode)."""
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)
        elapsed = time.perf_counter() - started
        if proc.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-500:]}")
        if i:
            times.append(elapsed)
    return statistics.median(times)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def idle_receiver_rss(script: str, env: dict[str, str], out: Path) -> tuple[float, float]:
    """RSS and peak RSS (MB) of ``aiodicom storescp`` one second after it listens (the second start: the
    first writes the bytecode)."""
    for _ in range(2):
        port = free_port()
        proc = subprocess.Popen(
            [script, "storescp", "--port", str(port), "--host", "127.0.0.1", "--out-dir", str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            time.sleep(1.0)
            rss, hwm = status_kb(proc.pid, "VmRSS") / 1024, status_kb(proc.pid, "VmHWM") / 1024
        finally:
            proc.terminate()
            proc.wait(30)
    return rss, hwm


def sender_peak(script: str, env: dict[str, str], port: int, folder: Path) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of ``aiodicom store`` sending ``folder``."""
    started = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", script, "store", f"127.0.0.1:{port}", str(folder), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"aiodicom store failed: {proc.stderr[-500:]}")
    return seconds, int(proc.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each short command (median)")
    parser.add_argument("--large-count", type=int, default=4, help="instances in the large set")
    parser.add_argument("--large-mb", type=int, default=100, help="size of each large instance (MB)")
    args = parser.parse_args()

    script = console_script()
    dcmtk_storescp = tool("storescp")
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base, prefix="aiodicom-startup-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        one = root / "one.dcm"
        make_instance(one, 512, 512, 1, "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")
        large = root / "large"
        large.mkdir()
        frames = max(1, args.large_mb * 1024 * 1024 // (512 * 512 * 2))
        for i in range(args.large_count):
            make_instance(
                large / f"{i}.dcm",
                512,
                512,
                frames,
                "1.2.826.0.1.3680043.8.498.3",
                "1.2.826.0.1.3680043.8.498.4",
            )
        large_mb = sum(p.stat().st_size for p in large.iterdir()) / 1e6

        print(f"load average before: {_load()} (2 cores)")
        print(f"console script: {script} (Python {sys.version.split()[0]}); {args.runs} runs each, median")
        port = free_port()
        received = root / "received"
        received.mkdir()
        peer = subprocess.Popen(
            [dcmtk_storescp, "--ignore", "--output-directory", str(received), str(port)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            addr = f"127.0.0.1:{port}"
            rows = [
                ("python -c pass (the interpreter alone)", [sys.executable, "-c", "pass"], None),
                ('python -c "import pydicom" (for scale)', [sys.executable, "-c", "import pydicom"], None),
                ("aiodicom --version", [script, "--version"], 0.15),
                ("python -m aiodicom --version", [sys.executable, "-m", "aiodicom", "--version"], None),
                ("aiodicom echo ADDR (DCMTK storescp)", [script, "echo", addr], 0.25),
                (
                    f"aiodicom store ADDR one.dcm ({one.stat().st_size / 1e6:.2f} MB)",
                    [script, "store", addr, str(one)],
                    0.35,
                ),
            ]
            on_path = shutil.which("aiodicom")
            if on_path and Path(on_path).resolve() != Path(script).resolve():  # e.g. pyenv's shim
                rows.insert(3, (f"aiodicom --version through {on_path}", [on_path, "--version"], None))
            print(f"\n  {'command':<48} {'median s':>9} {'target':>8}")
            for label, command, target in rows:
                seconds = wall(command, env, args.runs)
                goal = f"{target:.2f}" if target else ""
                verdict = "" if target is None else ("  met" if seconds <= target else "  NOT met")
                print(f"  {label:<48} {seconds:9.3f} {goal:>8}{verdict}")

            rss, hwm = idle_receiver_rss(script, env, root / "in")
            print(
                f"\n  aiodicom storescp, idle after start: RSS {rss:.1f} MB (peak {hwm:.1f} MB), target 35 MB"
                f"{'  met' if rss <= 35 else '  NOT met'}"
            )
            seconds, peak = sender_peak(script, env, port, large)
            print(
                f"  aiodicom store, {args.large_count} x {large_mb / args.large_count:.0f} MB to DCMTK"
                f" storescp --ignore: peak RSS {peak:.1f} MB, target 45 MB"
                f"{'  met' if peak <= 45 else '  NOT met'}"
                f" ({large_mb / seconds:.0f} MB/s, start-up included)"
            )
        finally:
            peer.terminate()
            peer.wait(10)
        print(f"\nload average after: {_load()}")


if __name__ == "__main__":
    main()
