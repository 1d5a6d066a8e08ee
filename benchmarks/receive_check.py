"""What proving each received data set whole costs: aiodicom's receiver before and after, DCMTK beside them.

    python benchmarks/receive_check.py --before REV [--sets small,typical] [--rounds 5] [--storage shm,disk]

REV is a git revision of this repository without the whole-data-set check (e.g. the one before it landed);
it is checked out into a temporary worktree and run from there, the current tree is the "after". For each
set and storage, DCMTK `storescu +sd` sends the set on one association to: aiodicom `storescp --no-fsync`
(before, after), DCMTK `storescp` and `storescp +B` (bit-preserving, its fastest mode), all with
TCP_NODELAY=1, interleaved, `--rounds` times. Printed per receiver: the median wall time (files/s), its
ratio to DCMTK storescp and to `+B` in the same run, and the receiver's own CPU time per instance (user +
system, start-up taken out: read when it starts listening and when the sender is done), whose
after/before ratio is the check's cost. Storage: `shm` is tmpfs (/dev/shm), `disk` a folder beside the
data, after a `sync` (no receiver syncs its files).
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

from _peers import DCMTK_ENV, free_port, stored_files, tool, wait_for_port, worktree
from store_receivers import make_set

REPO = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def receivers(before: Path, out: Path, port: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    def aiodicom(tree: Path) -> tuple[list[str], dict[str, str]]:
        command = [sys.executable, "-m", "aiodicom", "storescp", "--port", str(port), "--host", "127.0.0.1"]
        command += ["--out-dir", str(out), "--no-fsync"]
        return command, {**DCMTK_ENV, "PYTHONPATH": str(tree)}

    dcmtk = [tool("storescp"), "--aetitle", "STORE-SCP", "--output-directory", str(out)]
    return {
        "aiodicom before": aiodicom(before),
        "aiodicom after": aiodicom(REPO),
        "DCMTK storescp": ([*dcmtk, str(port)], DCMTK_ENV),
        "DCMTK storescp +B": ([*dcmtk, "+B", str(port)], DCMTK_ENV),
    }


def run(command: list[str], env: dict[str, str], folder: Path, out: Path, port: int) -> tuple[float, float]:
    """Wall seconds of the transfer and the receiver's CPU seconds spent on it."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.sync()
    receiver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        time.sleep(0.2)  # let it settle after start-up (imports)
        send = [tool("storescu"), "-aec", "STORE-SCP", "127.0.0.1", str(port), "+sd", str(folder)]
        cpu_start = cpu_seconds(receiver.pid)
        started = time.perf_counter()
        subprocess.run(
            send,
            env=DCMTK_ENV,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(receiver.pid) - cpu_start
    finally:
        receiver.terminate()
        receiver.wait(30)
    stored = stored_files(out)
    expected = sum(1 for _ in folder.iterdir())
    if stored != expected:
        raise RuntimeError(f"{command[0]} stored {stored} of {expected} files")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="git revision without the check")
    parser.add_argument("--sets", default="small,typical")
    parser.add_argument("--storage", default="shm,disk")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", default=None, help="where to keep the generated data (default: a temp dir)")
    args = parser.parse_args()
    root = Path(args.data or tempfile.mkdtemp(prefix="aiodicom-bench-"))
    with worktree(REPO, args.before) as before:
        places = {"shm": Path("/dev/shm") / f"aiodicom-received-{os.getpid()}", "disk": root / "received"}
        print(f"before = {args.before}, after = the working tree; sender DCMTK storescu +sd, no fsync")
        print(
            f"  {'set':<8} {'storage':<8} {'receiver':<18} {'files/s':>8} {'vs storescp':>12} {'vs +B':>7}"
            f" {'CPU/inst':>9}"
        )
        for set_name in args.sets.split(","):
            folder = make_set(root, set_name)
            count = sum(1 for _ in folder.iterdir())
            for storage in args.storage.split(","):
                out = places[storage]
                walls: dict[str, list[float]] = {}
                cpus: dict[str, list[float]] = {}
                for _ in range(args.rounds):  # interleaved: every receiver sees the same machine
                    for name, (command, env) in receivers(before, out, port := free_port()).items():
                        seconds, cpu = run(command, env, folder, out, port)
                        walls.setdefault(name, []).append(seconds)
                        cpus.setdefault(name, []).append(cpu)
                shutil.rmtree(out, ignore_errors=True)
                wall = {name: statistics.median(v) for name, v in walls.items()}
                cpu = {name: statistics.median(v) / count * 1e3 for name, v in cpus.items()}
                for name in wall:
                    print(
                        f"  {set_name:<8} {storage:<8} {name:<18} {count / wall[name]:8.0f}"
                        f" {wall['DCMTK storescp'] / wall[name]:11.2f}x"
                        f" {wall['DCMTK storescp +B'] / wall[name]:6.2f}x {cpu[name]:7.3f}ms"
                    )
                print(
                    f"  {set_name:<8} {storage:<8} the check: receiver CPU per instance after/before ="
                    f" {cpu['aiodicom after'] / cpu['aiodicom before']:.3f}"
                    f" (medians of {args.rounds})"
                )


if __name__ == "__main__":
    main()
