"""Send folders of DICOM files to a peer over many associations at once, with progress and a summary.

    python examples/batch_send.py PACS@10.0.0.5:104 ./exports ./more --concurrency 16

Every file under the folders that is DICOM by content is sent (whatever its extension); the files share one
queue that ``--concurrency`` associations pull from. Exit status: 0 when every file was sent, 1 when some
failed (or the peer rejected us), 2 for bad usage, 3 when the peer cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from aiodicom import DicomError, FileError, FileSent, PeerUnreachable, SendResult, StoreScu


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Send folders of DICOM files with C-STORE, concurrently.")
    parser.add_argument("address", help="the peer: AE@host:port (the AE is the called AE title)")
    parser.add_argument("folders", nargs="+", type=Path, help="folders to send (searched recursively)")
    parser.add_argument("-j", "--concurrency", type=int, default=8, help="associations in parallel (8)")
    parser.add_argument("--calling-ae", default="BATCH-SCU", help="our AE title (BATCH-SCU)")
    parser.add_argument("--retries", type=int, default=2, help="attempts to re-open a failed association (2)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per connection and answer (30)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON, and no progress")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the associations and every file")
    return parser.parse_args(argv)


class Progress:
    """One line on stderr, rewritten in place at most ten times a second (and always at the end)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.sent = self.failed = 0
        self.started = self.shown = time.perf_counter()

    def file_sent(self, event: FileSent) -> None:
        self.sent += 1
        self.show()

    def file_error(self, event: FileError) -> None:
        self.failed += 1
        if self.enabled:
            print(f"\r\033[K{event.message}", file=sys.stderr)
        self.show()

    def show(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.shown < 0.1 and not force):
            return
        self.shown, done = now, self.sent + self.failed
        rate = done / (now - self.started) if now > self.started else 0.0
        percent = 100 * done / self.total if self.total else 100.0
        line = f"{done}/{self.total} files ({percent:.0f}%), {self.failed} failed, {rate:,.0f} files/s"
        print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)


def summary(result: SendResult) -> dict[str, object]:
    seconds = result.duration_seconds
    return {
        "total_files": result.total_files,
        "successful": result.successful,
        "warnings": len(result.warnings),
        "failed": result.failed,
        "duration_seconds": round(seconds, 3),
        "files_per_second": round(result.total_files / seconds, 1) if seconds else None,
        "failures": [{"file": f.file, "error": f.error} for f in result.files if f.error is not None],
    }


async def run(args: argparse.Namespace) -> int:
    """Queue the folders, send, print the summary; returns the exit status."""
    try:
        scu = StoreScu(
            args.address,
            calling_ae_title=args.calling_ae,
            concurrency=args.concurrency,
            retries=args.retries,
            connect_timeout=args.timeout,
            acse_timeout=args.timeout,
            dimse_timeout=args.timeout,
            verbose=args.verbose,
        )
        for folder in args.folders:
            scu.add_folder(folder)
    except ValueError as exc:  # a bad address, AE title or folder
        print(f"batch_send: {exc}", file=sys.stderr)
        return 2
    if not scu.queued:
        print("batch_send: no DICOM files in " + ", ".join(map(str, args.folders)), file=sys.stderr)
        return 2
    progress = Progress(scu.queued, enabled=not args.json and sys.stderr.isatty())
    try:
        result = await scu.send(on_file_sent=progress.file_sent, on_file_error=progress.file_error)
    except PeerUnreachable as exc:
        print(f"batch_send: {exc}", file=sys.stderr)
        return 3
    except DicomError as exc:  # every association was rejected
        print(f"batch_send: {exc}", file=sys.stderr)
        return 1
    progress.show(force=True)
    if progress.enabled:
        print(file=sys.stderr)
    report = summary(result)
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{result.successful} of {result.total_files} files sent ({report['warnings']} with warnings), "
            f"{result.failed} failed, in {result.duration_seconds:.2f} s "
            f"({report['files_per_second']} files/s)"
        )
    if result.failed:
        print(f"batch_send: {result.failed} of {result.total_files} files failed", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The library logs through "aiodicom.*"; its warnings (a refused association) repeat the summary.
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.concurrency < 1:
        print("batch_send: --concurrency must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("\nbatch_send: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
