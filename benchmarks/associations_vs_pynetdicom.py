"""Associations per second (associate, C-ECHO, release): aiodicom against pynetdicom 3, in one run.

    python benchmarks/associations_vs_pynetdicom.py [--count 200]

Both requestors talk to the same DCMTK storescp, one association after another; then each library talks to
its own acceptor (aiodicom EchoScp, pynetdicom AE.start_server). Target: 10x pynetdicom.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from _peers import dcmtk_storescp, free_port, loops, run_on

import aiodicom

VERIFICATION = "1.2.840.10008.1.1"


async def aiodicom_client(port: int, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        async with aiodicom.connect(f"STORESCP@127.0.0.1:{port}") as assoc:
            await assoc.c_echo()
    return count / (time.perf_counter() - started)


async def aiodicom_both(count: int) -> float:
    async with aiodicom.EchoScp(0, host="127.0.0.1", ae_title="STORESCP") as scp:
        return await aiodicom_client(scp.port, count)


def pynetdicom_client(port: int, count: int) -> float:
    from pynetdicom import AE

    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(VERIFICATION)
    started = time.perf_counter()
    for _ in range(count):
        assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
        assert assoc.is_established
        assoc.send_c_echo()
        assoc.release()
    return count / (time.perf_counter() - started)


def pynetdicom_both(count: int) -> float:
    from pynetdicom import AE, evt

    ae = AE(ae_title="STORESCP")
    ae.add_supported_context(VERIFICATION)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_ECHO, lambda e: 0)])
    try:
        return pynetdicom_client(port, count)
    finally:
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    rows: list[tuple[str, float, float]] = []
    with dcmtk_storescp() as port:
        theirs = pynetdicom_client(port, args.count)
        for loop_name in loops():
            ours = run_on(loop_name, aiodicom_client(port, args.count))
            rows.append((f"requestors vs DCMTK storescp ({loop_name})", ours, theirs))  # type: ignore[arg-type]
    theirs_both = pynetdicom_both(args.count)
    for loop_name in loops():
        ours_both = run_on(loop_name, aiodicom_both(args.count))
        rows.append((f"each library on both ends ({loop_name})", ours_both, theirs_both))  # type: ignore[arg-type]
    print(f"associations per second (associate, C-ECHO, release), {args.count} in a row:")
    print(f"  {'':<44} {'aiodicom':>10} {'pynetdicom':>11} {'ratio':>8}")
    for name, ours, theirs in rows:
        print(f"  {name:<44} {ours:10.0f} {theirs:11.1f} {ours / theirs:7.1f}x")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
