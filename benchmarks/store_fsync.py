"""Receiving with fsync: aiodicom StoreScp (fsync=True, the default) against Orthanc, which syncs its storage.

    python benchmarks/store_fsync.py [--sets small,typical] [--rounds 3]

The sender is DCMTK storescu +sd (TCP_NODELAY=1) on one association; data sets as in store_receivers.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _peers import free_port
from store_receivers import make_set, run


def orthanc_command(work: Path, port: int) -> list[str]:
    config = {
        "Name": "bench",
        "DicomAet": "STORE-SCP",
        "DicomPort": port,
        "HttpPort": free_port(),
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "index"),
        "DicomCheckCalledAet": False,
        "StorageCompression": False,
        "SyncStorageArea": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowStore": True,
        "Plugins": [],
    }
    path = work / "orthanc.json"
    path.write_text(json.dumps(config))
    return ["Orthanc", str(path)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="small,typical")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    root = Path(args.data or tempfile.mkdtemp(prefix="aiodicom-bench-"))
    out = root / "received"
    print("receiving with fsync: DCMTK storescu +sd as the sender, best of", args.rounds)
    print(f"  {'set':<9} {'receiver':<28} {'files/s':>9} {'MB/s':>8} {'vs Orthanc':>11}")
    for set_name in args.sets.split(","):
        folder = make_set(root, set_name)
        files = sorted(folder.iterdir())
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            port = free_port()
            commands = {
                "aiodicom StoreScp (fsync)": [
                    sys.executable,
                    "-m",
                    "aiodicom",
                    "storescp",
                    "--port",
                    str(port),
                    "--host",
                    "127.0.0.1",
                    "--out-dir",
                    str(out),
                ],
                "Orthanc": orthanc_command(Path(tempfile.mkdtemp(dir=root)), port),
            }
            for name, command in commands.items():
                target = out if "aiodicom" in name else Path(command[1]).parent / "storage"
                seconds, _ = run(name, command, folder, target, port)
                best[name] = min(seconds, best.get(name, seconds))
        reference = best["Orthanc"]
        for name, seconds in best.items():
            print(
                f"  {set_name:<9} {name:<28} {len(files) / seconds:9.1f} {megabytes / seconds:8.1f} "
                f"{reference / seconds:10.2f}x"
            )


if __name__ == "__main__":
    main()
