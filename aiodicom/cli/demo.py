"""The verb that shows aiodicom working on a fresh machine: demo."""

from __future__ import annotations

from typing import Annotated

import typer

from aiodicom.cli.common import (
    Json,
    S3EndpointOpt,
    Verbose,
    app,
    fail,
    run_async,
    setup_logging,
)


@app.command()
def demo(
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Instances in the study sent.")] = 300,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", min=1, help="Associations in parallel.")
    ] = 4,
    out_dir: Annotated[
        str, typer.Option("--out-dir", "-o", help="Where the StoreScp stores (filesystem).")
    ] = "./aiodicom-demo",
    clean: Annotated[bool, typer.Option("--clean", help="Remove the received instances afterwards.")] = False,
    s3_endpoint: S3EndpointOpt = None,
    s3_bucket: Annotated[
        str, typer.Option("--s3-bucket", help="Bucket for --s3-endpoint (created if missing).")
    ] = "aiodicom-demo",
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Receive a synthetic study over loopback (StoreScp <- StoreScu), verify every instance, show the
    study tree and the throughput: the quickest check that all works."""
    from aiodicom.cli.demo_run import DemoFailed, DemoOptions, run_demo

    setup_logging(verbose)
    options = DemoOptions(count, concurrency, out_dir, clean, s3_endpoint, s3_bucket, as_json, verbose)
    try:
        run_async(lambda: run_demo(options))
    except DemoFailed as exc:
        raise fail(str(exc), exc.exit_code) from None
