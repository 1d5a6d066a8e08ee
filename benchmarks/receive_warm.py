"""Receiving C-STOREs with every receiver already running: the same set sent again and again, in turns.

    python benchmarks/receive_warm.py [--before REV] [--sets small,typical] [--rounds 7] [--storage shm,disk]

`receive_check.py` starts each receiver for each run; here each receiver (aiodicom `storescp --no-fsync`
of the working tree, and of REV when given; DCMTK `storescp` and `storescp +B`) is started once, then
DCMTK `storescu +sd` sends the set to each in turn, `--rounds` times, the stored files removed between runs
(the folders stay: a receiver that made them once does not make them again, as in a long-running server).
All DCMTK processes have TCP_NODELAY=1. Printed per receiver: the median wall time of a run (files/s), its
ratio to DCMTK storescp and to `+B` in the same run, and the receiver's CPU time per instance (user +
system, read from /proc before and after each run). Storage: `shm` is tmpfs (/dev/shm), `disk` a folder
beside the data (no receiver syncs its files).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _peers import DCMTK_ENV, free_port, stored_files, tool, wait_for_port, worktree
from receive_check import REPO, cpu_seconds, receivers
from store_receivers import make_set


def clear(out: Path) -> None:
    """Remove the stored files, keep the folders (and the receivers' temporary folders)."""
    for path in out.rglob("*"):
        if path.is_file() and ".incoming" not in path.parts:
            path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default=None, help="a git revision to run beside the working tree")
    parser.add_argument("--sets", default="small,typical")
    parser.add_argument("--storage", default="shm,disk")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--data", default=None, help="where to keep the generated data (default: a temp dir)")
    args = parser.parse_args()
    root = Path(args.data or tempfile.mkdtemp(prefix="aiodicom-bench-"))
    with contextlib.ExitStack() as stack:
        before = stack.enter_context(worktree(REPO, args.before)) if args.before else None
        print(f"every receiver running; DCMTK storescu +sd sends each set in turns; before = {args.before}")
        print(
            f"  {'set':<8} {'storage':<8} {'receiver':<18} {'files/s':>8} {'vs storescp':>12} {'vs +B':>7}"
            f" {'CPU/inst':>9}"
        )
        for set_name in args.sets.split(","):
            folder = make_set(root, set_name)
            count = sum(1 for _ in folder.iterdir())
            for storage in args.storage.split(","):
                base = Path("/dev/shm") if storage == "shm" else root
                running: dict[str, tuple[subprocess.Popen[bytes], int, Path]] = {}
                try:
                    names = ["aiodicom before"] if before is not None else []
                    names += ["aiodicom after", "DCMTK storescp", "DCMTK storescp +B"]
                    for name in names:
                        port = free_port()
                        out = Path(tempfile.mkdtemp(prefix="aiodicom-warm-", dir=base))
                        command, env = receivers(before or REPO, out, port)[name]
                        proc = subprocess.Popen(
                            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                        )
                        running[name] = (proc, port, out)
                        wait_for_port(port)
                    time.sleep(0.5)
                    walls: dict[str, list[float]] = {name: [] for name in running}
                    cpus: dict[str, list[float]] = {name: [] for name in running}
                    order = list(running)
                    for turn in range(args.rounds + 1):  # the first round warms up: not counted
                        # each round starts with the next receiver: in one check the first of a round ran
                        # 20 % slower than the same code later in the round
                        for name in order[turn % len(order) :] + order[: turn % len(order)]:
                            proc, port, out = running[name]
                            send = [tool("storescu"), "-aec", "STORE-SCP", "127.0.0.1", str(port), "+sd"]
                            cpu = cpu_seconds(proc.pid)
                            started = time.perf_counter()
                            subprocess.run(
                                [*send, str(folder)],
                                env=DCMTK_ENV,
                                check=True,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                            )
                            walls[name].append(time.perf_counter() - started)
                            cpus[name].append(cpu_seconds(proc.pid) - cpu)
                            if stored_files(out) != count:
                                raise RuntimeError(f"{name} stored {stored_files(out)} of {count} files")
                            clear(out)
                finally:
                    for proc, _, out in running.values():
                        proc.terminate()
                        proc.wait(30)
                        shutil.rmtree(out, ignore_errors=True)
                wall = {name: statistics.median(v[1:]) for name, v in walls.items()}
                cpu = {name: statistics.median(v[1:]) / count * 1e3 for name, v in cpus.items()}
                for name in wall:
                    print(
                        f"  {set_name:<8} {storage:<8} {name:<18} {count / wall[name]:8.0f}"
                        f" {wall['DCMTK storescp'] / wall[name]:11.2f}x"
                        f" {wall['DCMTK storescp +B'] / wall[name]:6.2f}x {cpu[name]:7.3f}ms"
                    )


if __name__ == "__main__":
    main()
