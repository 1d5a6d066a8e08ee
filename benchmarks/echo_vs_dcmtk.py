"""1,000 C-ECHOs on one association: aiodicom against DCMTK's echoscu, both against one DCMTK storescp.

    python benchmarks/echo_vs_dcmtk.py [--count 1000] [--rounds 3]

DCMTK's figure is echoscu's wall time (process start included, a few ms). aiodicom is measured in-process
(association included) on asyncio and uvloop, and as the `aiodicom echo` command (interpreter start included).
Target: aiodicom's time at most DCMTK's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _peers import DCMTK_ENV, dcmtk_storescp, loops, run_on, tool

import aiodicom


def best(samples: list[float]) -> float:
    return min(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with dcmtk_storescp() as port:
        dcmtk: list[float] = []
        for _ in range(args.rounds):
            program = tool("echoscu")  # looked up before the clock starts
            started = time.perf_counter()
            subprocess.run(
                [program, "-aec", "STORESCP", "--repeat", str(args.count), "127.0.0.1", str(port)],
                env=DCMTK_ENV,
                check=True,
            )
            dcmtk.append(time.perf_counter() - started)
        ours: dict[str, float] = {}
        for loop_name in loops():
            samples = []
            for _ in range(args.rounds):
                result = run_on(loop_name, aiodicom.EchoScu(f"STORESCP@127.0.0.1:{port}").echo(args.count))
                samples.append(result.duration_seconds)  # type: ignore[attr-defined]
            ours[f"aiodicom ({loop_name}, in-process)"] = best(samples)
        cli = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "aiodicom",
                    "echo",
                    f"STORESCP@127.0.0.1:{port}",
                    "--count",
                    str(args.count),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            cli.append(time.perf_counter() - started)
        ours["aiodicom echo (command, interpreter start included)"] = best(cli)
    reference = best(dcmtk)
    print(f"{args.count} C-ECHOs on one association against DCMTK storescp, best of {args.rounds}:")
    print(f"  {'DCMTK echoscu --repeat':<52} {reference * 1000:8.1f} ms   1.00x")
    for name, seconds in ours.items():
        print(f"  {name:<52} {seconds * 1000:8.1f} ms   {seconds / reference:.2f}x DCMTK's time")


if __name__ == "__main__":
    main()
