"""Long fuzzing run against ``aiodicom storescp`` in a subprocess.

The cases are those of ``tests/net/fuzzcases.py`` (random bytes, mutated A-ASSOCIATE-RQs, mutated P-DATA and
command sets after a real association, extreme lengths), drawn from a seeded ``random.Random`` and played
``--concurrency`` at a time. Every ``--check-every`` cases a real C-ECHO and C-STORE must succeed (the
instance on disk, whole). Reported at the end: crashes (the server process exited; it is restarted), hangs (a
connection that neither answered nor closed within ``--hang-after`` seconds after our half-close), malformed
answers, failed checks, the server's peak RSS, its log's errors and tracebacks grouped by kind, the server's
connections still open after the last case, how long its graceful stop (SIGTERM) took, and what was left in
``.incoming`` after it.

    python benchmarks/fuzz.py --cases 200000
    python benchmarks/fuzz.py --cases 20000 --minutes 5 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package: the cases

import aiodicom
from benchmarks._peers import free_port, wait_for_port
from tests.interop.rawpeer import CT_IMAGE_STORAGE, EXPLICIT_LE, IMPLICIT_LE, VERIFICATION, ct_image
from tests.net.fuzzcases import KINDS, Outcome, make_case, run_case
from tests.scp.part10 import part10


class Server:
    """``aiodicom storescp`` on a free loopback port, its stderr in a file, its RSS sampled every 0.5 s."""

    def __init__(self, out_dir: Path, log_path: Path) -> None:
        self.out_dir, self.log_path = out_dir, log_path
        self.port = free_port()
        self.peak_rss = 0
        self.crashes: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiodicom",
                "storescp",
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--out-dir",
                str(self.out_dir),
                "--no-fsync",
                "--idle-timeout",
                "10",
                "--max-pending",
                "1000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        wait_for_port(self.port, 30)
        if not self._sampler.is_alive():
            self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            proc = self.proc
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, psutil.Process(proc.pid).memory_info().rss)

    def alive_or_restart(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            self.crashes.append(f"exit status {code} at {time.strftime('%H:%M:%S')}")
            self.start()

    def connections(self) -> collections.Counter[str]:
        """The server's TCP connections by state, the listening socket aside."""
        assert self.proc is not None
        try:
            found = psutil.Process(self.proc.pid).net_connections(kind="tcp")
        except psutil.Error:
            return collections.Counter()
        return collections.Counter(c.status for c in found if c.status != psutil.CONN_LISTEN)

    def stop(self) -> float | None:
        """SIGTERM (the graceful stop); returns how long it took (None: killed after 60 s)."""
        self._stop.set()
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.crashes.append("did not stop within 60 s of SIGTERM")
            with contextlib.suppress(OSError):  # where it is stuck, when py-spy is installed
                dump = subprocess.run(
                    ["py-spy", "dump", "--pid", str(self.proc.pid)], capture_output=True, text=True
                )
                self.log_path.with_name("stuck.txt").write_text(dump.stdout + dump.stderr)
            self.proc.kill()
            self.proc.wait()
            return None
        return time.monotonic() - started


def real_check(port: int, out_dir: Path) -> str | None:
    """A real C-ECHO and C-STORE; None if both succeed and the instance is on disk whole, else why not."""

    async def run() -> None:
        image = ct_image(256)
        contexts = [(VERIFICATION, [IMPLICIT_LE]), (CT_IMAGE_STORAGE, [EXPLICIT_LE])]
        async with aiodicom.connect(
            f"STORE-SCP@127.0.0.1:{port}", contexts=contexts, acse_timeout=10
        ) as assoc:
            if (status := await assoc.c_echo(timeout=10)) != 0:
                raise AssertionError(f"C-ECHO status 0x{status:04X}")
            if (status := await assoc.c_store(part10(image), timeout=10)) != 0:
                raise AssertionError(f"C-STORE status 0x{status:04X}")
        if not (out_dir / image.relative_path).read_bytes().endswith(image.data):
            raise AssertionError("stored instance differs from the data set sent")

    try:
        asyncio.run(asyncio.wait_for(run(), 30))
    except Exception as exc:  # reported, the run goes on
        return f"{type(exc).__name__}: {exc}"
    return None


_NUMBERS = re.compile(r"0x[0-9A-Fa-f]+|\d+(\.\d+)*|'[^']*'|\"[^\"]*\"")


def log_kinds(log_path: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """The server log's ERROR lines and tracebacks, by kind (numbers and quoted values blanked), and how
    many WARNING lines."""
    errors: collections.Counter[str] = collections.Counter()
    tracebacks: collections.Counter[str] = collections.Counter()
    warnings = 0
    in_traceback = False
    last = ""
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("Traceback"):
            in_traceback, last = True, ""
            continue
        if in_traceback:
            if line.startswith((" ", "\t")) or not line.strip():
                continue
            if line.startswith(("During handling", "The above exception")):
                continue
            last = line
            in_traceback = False
            tracebacks[_NUMBERS.sub("N", last)[:160]] += 1
            continue
        parts = line.split(None, 4)
        if len(parts) >= 4 and parts[2] == "ERROR":
            errors[_NUMBERS.sub("N", " ".join(parts[3:]))[:160]] += 1
        elif len(parts) >= 4 and parts[2] == "WARNING":
            warnings += 1
    return errors, tracebacks, warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument(
        "--minutes", type=float, default=25.0, help="stop after this long, whatever the count"
    )
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--check-every", type=int, default=2000)
    parser.add_argument("--hang-after", type=float, default=15.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aiodicom-fuzz-"))
    out_dir, log_path = work / "out", work / "server.log"
    server = Server(out_dir, log_path)
    server.start()
    rnd = random.Random(args.seed)
    deadline = time.monotonic() + args.minutes * 60
    started = time.monotonic()
    played = 0
    by_kind: collections.Counter[str] = collections.Counter()
    hangs: list[Outcome] = []
    malformed: list[Outcome] = []
    stalled: list[Outcome] = []
    setup_failures: list[Outcome] = []
    failed_checks: list[str] = []
    slowest = 0.0
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        while played < args.cases and time.monotonic() < deadline:
            batch = [make_case(rnd) for _ in range(min(args.check_every, args.cases - played))]
            for outcome in pool.map(lambda c: run_case(server.port, c, hang_after=args.hang_after), batch):
                by_kind[outcome.case.kind] += 1
                slowest = max(slowest, outcome.seconds)
                if outcome.hung:
                    hangs.append(outcome)
                elif outcome.malformed:
                    malformed.append(outcome)
                elif outcome.setup_failed:
                    setup_failures.append(outcome)
                if outcome.stalled:
                    stalled.append(outcome)
            played += len(batch)
            server.alive_or_restart()
            problem = real_check(server.port, out_dir)
            if problem:
                failed_checks.append(f"after {played} cases: {problem}")
            elapsed = time.monotonic() - started
            print(
                f"{played:>8} cases  {played / elapsed:6.0f}/s  hangs {len(hangs)}  crashes "
                f"{len(server.crashes)}  failed checks {len(failed_checks)}",
                flush=True,
            )
    time.sleep(2.0)  # every case has ended: what the server still holds open, it leaked
    still_open = server.connections()
    stop_took = server.stop()
    elapsed = time.monotonic() - started
    for name, outcomes in (("hung", hangs), ("stalled", stalled), ("malformed", malformed)):
        if outcomes:
            (work / f"{name}.hex").write_text(
                "".join(
                    f"{o.case.kind} {int(o.case.associate_first)} {o.case.payload.hex()}\n" for o in outcomes
                )
            )
    left = [p for p in (out_dir / ".incoming").rglob("*") if p.is_file() and "lock" not in p.name]
    errors, tracebacks, warnings = log_kinds(log_path)

    print()
    print(f"cases played        {played} in {elapsed:.0f} s ({played / elapsed:.0f}/s), seed {args.seed}")
    print(f"  by kind           {', '.join(f'{k} {by_kind[k]}' for k in KINDS)}")
    print(f"crashes             {len(server.crashes)} {server.crashes[:5]}")
    print(f"hangs               {len(hangs)}")
    for outcome in hangs[:5]:
        print(f"    {outcome.case.kind} {outcome.case.payload[:48].hex()}")
    print(f"stalled             {len(stalled)} (whole PDUs ending in a C-ECHO-RQ, not answered)")
    for outcome in stalled[:5]:
        print(f"    {outcome.case.kind} {outcome.case.payload[:48].hex()}")
    print(f"malformed answers   {len(malformed)} {[o.malformed for o in malformed[:3]]}")
    print(f"setup refused       {len(setup_failures)} {[o.setup_failed for o in setup_failures[:3]]}")
    print(f"failed real checks  {len(failed_checks)} {failed_checks[:3]}")
    print(f"slowest case        {slowest:.2f} s")
    print(f"server peak RSS     {server.peak_rss / 2**20:.1f} MiB")
    print(f"log ERROR lines     {sum(errors.values())} in {len(errors)} kinds")
    for kind, count in errors.most_common(10):
        print(f"    {count:>6}  {kind}")
    print(f"log tracebacks      {sum(tracebacks.values())} in {len(tracebacks)} kinds")
    for kind, count in tracebacks.most_common(10):
        print(f"    {count:>6}  {kind}")
    print(f"log WARNING lines   {warnings}")
    print(f"open at the end     {dict(still_open) or 'none'} (server connections, 2 s after the last case)")
    print(f"graceful stop       {'killed after 60 s' if stop_took is None else f'{stop_took:.1f} s'}")
    print(f"left in .incoming   {len(left)} after the stop")
    print(f"work directory      {work}")
    bad = (
        server.crashes
        or hangs
        or malformed
        or setup_failures
        or failed_checks
        or errors
        or tracebacks
        or left
    )
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
