"""Soak: aiodicom StoreScu sends to aiodicom StoreScp continuously, in two processes, for ``--minutes``.

Every 10 s the sender reports the per-instance latencies of the last window (p50/p99, from each FileSent's
duration) and this script samples both processes' RSS and open file descriptors. At the end: the table, and
whether each figure stayed flat (the last quarter of the samples against the first). The sender sends
batches of new small instances (a new study each), ``--concurrency`` associations per batch; the receiver
removes each file once stored (the disk stays flat too) and counts them: the count must equal the sender's
successes.

``--tls``: TLS on both sides with a CA and server certificate made with openssl at start. It uses ``tls=`` on
StoreScu/StoreScp when they take it (an ``ssl.SSLContext``), built with :mod:`aiodicom.net.tls` when that
exists, else with the standard library's ``ssl``; a version of aiodicom without TLS runs in plain TCP and
says so.

    python benchmarks/soak.py --minutes 5
    python benchmarks/soak.py --minutes 20 --tls
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.scp.part10: the instances

from benchmarks._peers import free_port, wait_for_port

WINDOW = 10.0


# ------------------------------------------------------------------------------------------------ TLS


def make_certificates(directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl, EC P-256)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=soak CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    )


def server_context(directory: Path) -> ssl.SSLContext:
    try:
        from aiodicom.net import tls  # type: ignore[attr-defined]

        return tls.server_context(cert=directory / "server.pem", key=directory / "server.key")  # type: ignore[no-any-return]
    except (ImportError, AttributeError, TypeError):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(directory / "server.pem", directory / "server.key")
        return context


def client_context(directory: Path) -> ssl.SSLContext:
    try:
        from aiodicom.net import tls  # type: ignore[attr-defined]

        return tls.client_context(ca=directory / "ca.pem")  # type: ignore[no-any-return]
    except (ImportError, AttributeError, TypeError):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.load_verify_locations(directory / "ca.pem")
        return context


def takes_tls(cls: type) -> bool:
    return "tls" in inspect.signature(cls).parameters


# ------------------------------------------------------------------------------------------- the roles


async def receive(port: int, out_dir: Path, tls_dir: Path | None) -> None:
    from aiodicom.scp.store import StoreScp

    extra: dict[str, Any] = {}
    if tls_dir is not None and takes_tls(StoreScp):
        extra["tls"] = server_context(tls_dir)
    scp = StoreScp(port=port, host="127.0.0.1", out_dir=out_dir, study_timeout=5.0, **extra)
    stored = 0

    def remove(event: Any) -> None:
        nonlocal stored
        stored += 1
        os.unlink(event.file)

    scp.on_file_stored(remove)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with scp:
        await stop.wait()
    print(json.dumps({"stored": stored, "tls": "tls" in extra}), flush=True)


async def send(port: int, minutes: float, concurrency: int, batch: int, tls_dir: Path | None) -> None:
    from aiodicom.scu.store import StoreScu
    from tests.scp.part10 import new_uid, part10, small_ct

    extra: dict[str, Any] = {}
    if tls_dir is not None and takes_tls(StoreScu):
        extra["tls"] = client_context(tls_dir)
    scu = StoreScu(f"STORE-SCP@127.0.0.1:{port}", concurrency=concurrency, **extra)
    latencies: list[float] = []
    totals = {"sent": 0, "failed": 0}
    window_start = time.monotonic()
    end = window_start + minutes * 60

    def report(now: float) -> None:
        nonlocal window_start
        ordered = sorted(latencies)
        p50 = statistics.median(ordered) if ordered else 0.0
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
        line = {"n": len(ordered), "seconds": now - window_start, "p50": p50, "p99": p99, **totals}
        print(json.dumps(line), flush=True)
        latencies.clear()
        window_start = now

    def sent(event: Any) -> None:
        latencies.append(event.duration_seconds)

    while time.monotonic() < end:
        scu.clean()
        study = new_uid()
        for n in range(batch):
            scu.add_file_from_memory(part10(small_ct(study, f"{study}.{n % 4 + 1}")))
        result = await scu.send(on_file_sent=sent)
        totals["sent"] += result.successful
        totals["failed"] += result.failed
        now = time.monotonic()
        if now - window_start >= WINDOW:
            report(now)
    report(time.monotonic())
    print(json.dumps({"done": True, **totals, "tls": "tls" in extra}), flush=True)


# ------------------------------------------------------------------------------------------ the driver


def flat(first: list[float], last: list[float], slack: float, ratio: float) -> bool:
    return statistics.mean(last) <= statistics.mean(first) * ratio + slack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200, help="instances per send() (one study)")
    parser.add_argument("--role", choices=("driver", "receiver", "sender"), default="driver")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out-dir", type=Path)
    parser.add_argument("--tls-dir", type=Path)
    args = parser.parse_args()
    if args.role == "receiver":
        asyncio.run(receive(args.port, args.out_dir, args.tls_dir))
        return 0
    if args.role == "sender":
        asyncio.run(send(args.port, args.minutes, args.concurrency, args.batch, args.tls_dir))
        return 0

    work = Path(tempfile.mkdtemp(prefix="aiodicom-soak-"))
    tls_args: list[str] = []
    if args.tls:
        make_certificates(work)
        tls_args = ["--tls-dir", str(work)]
    port = free_port()
    me = [sys.executable, __file__]
    receiver = subprocess.Popen(
        [*me, "--role", "receiver", "--port", str(port), "--out-dir", str(work / "out"), *tls_args],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_for_port(port, 30)
    sender = subprocess.Popen(
        [
            *me,
            "--role",
            "sender",
            "--port",
            str(port),
            "--minutes",
            str(args.minutes),
            "--concurrency",
            str(args.concurrency),
            "--batch",
            str(args.batch),
            *tls_args,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    procs = {"receiver": psutil.Process(receiver.pid), "sender": psutil.Process(sender.pid)}
    rows: list[dict[str, float]] = []
    done: dict[str, Any] = {}
    print(f"soak for {args.minutes:g} min, TLS {'requested' if args.tls else 'off'}, port {port}")
    header = (
        f"{'t (s)':>6} {'inst/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'recv MiB':>8} {'recv fd':>7} "
        f"{'send MiB':>8} {'send fd':>7}"
    )
    print(header)
    started = time.monotonic()
    assert sender.stdout is not None
    for line in sender.stdout:
        data = json.loads(line)
        if data.get("done"):
            done = data
            break
        row = {
            "t": time.monotonic() - started,
            "rate": data["n"] / data["seconds"] if data["seconds"] else 0.0,
            "p50": data["p50"] * 1000,
            "p99": data["p99"] * 1000,
            "recv_rss": procs["receiver"].memory_info().rss / 2**20,
            "recv_fd": procs["receiver"].num_fds(),
            "send_rss": procs["sender"].memory_info().rss / 2**20,
            "send_fd": procs["sender"].num_fds(),
        }
        rows.append(row)
        print(
            f"{row['t']:6.0f} {row['rate']:7.0f} {row['p50']:7.2f} {row['p99']:7.2f} {row['recv_rss']:8.1f} "
            f"{row['recv_fd']:7.0f} {row['send_rss']:8.1f} {row['send_fd']:7.0f}",
            flush=True,
        )
    sender.wait(60)
    receiver.send_signal(signal.SIGINT)
    out, _ = receiver.communicate(timeout=60)
    received = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}

    print()
    print(
        f"sent {done.get('sent')} (failed {done.get('failed')}), stored {received.get('stored')}; TLS "
        f"sender {done.get('tls')}, receiver {received.get('tls')}"
    )
    ok = bool(done) and done.get("failed") == 0 and done.get("sent") == received.get("stored")
    if len(rows) >= 8:
        rows = rows[1:]  # the first window includes start-up
        quarter = max(1, len(rows) // 4)
        first, last = rows[:quarter], rows[-quarter:]
        checks = {
            "receiver RSS": flat([r["recv_rss"] for r in first], [r["recv_rss"] for r in last], 4.0, 1.10),
            "sender RSS": flat([r["send_rss"] for r in first], [r["send_rss"] for r in last], 4.0, 1.10),
            "receiver fds": flat([r["recv_fd"] for r in first], [r["recv_fd"] for r in last], 4.0, 1.0),
            "sender fds": flat([r["send_fd"] for r in first], [r["send_fd"] for r in last], 4.0, 1.0),
            "latency p50": flat([r["p50"] for r in first], [r["p50"] for r in last], 1.0, 1.5),
            "latency p99": flat([r["p99"] for r in first], [r["p99"] for r in last], 5.0, 2.0),
        }
        for name, key in (
            ("receiver RSS", "recv_rss"),
            ("sender RSS", "send_rss"),
            ("receiver fds", "recv_fd"),
            ("sender fds", "send_fd"),
            ("latency p50", "p50"),
            ("latency p99", "p99"),
        ):
            a, b = statistics.mean(r[key] for r in first), statistics.mean(r[key] for r in last)
            print(
                f"{name:<13} first quarter {a:9.2f}  last quarter {b:9.2f}  "
                f"{'flat' if checks[name] else 'GREW'}"
            )
        ok = ok and all(checks.values())
    else:
        print("too short to judge flatness (fewer than 8 samples)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
