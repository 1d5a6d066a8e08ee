"""The same work timed on two versions of aiodicom: a git revision ("before") and the working tree ("after").

    python benchmarks/before_after.py --before REV [--rounds 5] [--out /dev/shm]

Three measurements, each in a fresh interpreter of its own, the versions interleaved round by round (so both
see the same machine), medians printed with the after/before ratio:

- store: StoreScu sends 1,000 instances of 64 KB (explicit VR LE, made from pydicom's CT_small) on one
  association to a StoreScp in the same process, writing to ``--out`` (tmpfs by default) without fsync;
  instances per second of the send alone (start-up taken out);
- echo: 2,000 C-ECHOs on one association against an EchoScp in the same process, microseconds per C-ECHO;
- import: ``python -c "import aiodicom"`` as a whole process, milliseconds.

REV is checked out into a temporary worktree and removed afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STORE = textwrap.dedent(
    """
    import asyncio, io, shutil, sys, tempfile, time
    import pydicom
    from pydicom.data import get_testdata_file
    import aiodicom

    def instances(n):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.PixelData = bytes(64 * 1024)
        ds.Rows, ds.Columns = 128, 256
        out = []
        for _ in range(n):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            out.append(buf.getvalue())
        return out

    async def main(out_dir):
        data = instances(1000)
        async with aiodicom.StoreScp(port=0, host="127.0.0.1", out_dir=out_dir, fsync=False) as scp:
            scu = aiodicom.StoreScu(f"127.0.0.1:{scp.port}")
            for blob in data:
                scu.add_file_from_memory(blob)
            started = time.perf_counter()
            result = await scu.send()
            seconds = time.perf_counter() - started
        assert result.successful == len(data), result
        print(len(data) / seconds)

    out = tempfile.mkdtemp(dir=sys.argv[1])
    try:
        asyncio.run(main(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    """
)

ECHO = textwrap.dedent(
    """
    import asyncio, time
    import aiodicom

    async def main():
        async with aiodicom.EchoScp(port=0, host="127.0.0.1") as scp:
            async with aiodicom.connect(f"127.0.0.1:{scp.port}") as assoc:
                for _ in range(100):
                    await assoc.c_echo()
                started = time.perf_counter()
                for _ in range(2000):
                    await assoc.c_echo()
                print((time.perf_counter() - started) / 2000 * 1e6)

    asyncio.run(main())
    """
)


def run(tree: Path, code: str, *args: str) -> float:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=tree, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def import_ms(tree: Path) -> float:
    code = "import time, subprocess, sys; t = time.perf_counter(); " + (
        "subprocess.run([sys.executable, '-c', 'import aiodicom'], check=True); "
        "print((time.perf_counter() - t) * 1e3)"
    )
    return run(tree, code)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="/dev/shm", help="where the StoreScp writes (tmpfs by default)")
    args = parser.parse_args()
    before = Path(tempfile.mkdtemp(prefix="aiodicom-before-")) / "tree"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(before), args.before], check=True
    )
    trees = {"before": before, "after": REPO}
    figures: dict[str, dict[str, list[float]]] = {
        name: {"store": [], "echo": [], "import": []} for name in trees
    }
    try:
        for _ in range(args.rounds):
            for name, tree in trees.items():
                figures[name]["store"].append(run(tree, STORE, args.out))
                figures[name]["echo"].append(run(tree, ECHO))
                figures[name]["import"].append(import_ms(tree))
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=False)
    print(f"before = {args.before}, after = the working tree; medians of {args.rounds}, interleaved")
    rows = [
        ("store", "instances/s (64 KB, one association, fsync off)", True),
        ("echo", "us per C-ECHO on one association", False),
        ("import", "ms for python -c 'import aiodicom'", False),
    ]
    for key, what, higher_is_better in rows:
        b = statistics.median(figures["before"][key])
        a = statistics.median(figures["after"][key])
        change = a / b if higher_is_better else b / a
        print(f"  {key:<7} {what:<48} before {b:9.1f}  after {a:9.1f}  after is {change:.3f}x as fast")


if __name__ == "__main__":
    main()
