"""The verbs that connect to a peer and send: echo, store."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from aiodicom.cli.commitment import CommitTimeout, ReceivePort, commit_json, print_commit
from aiodicom.cli.common import (
    CalledAe,
    CallingAe,
    DimseTimeout,
    IdentityFile,
    IdentityResponse,
    IdentityType,
    Json,
    PasswordFile,
    S3BucketOpt,
    S3EndpointOpt,
    S3RegionOpt,
    Timeout,
    TlsCa,
    TlsCert,
    TlsFlag,
    TlsKey,
    TlsProfileOpt,
    Username,
    Verbose,
    app,
    client_tls_from,
    dimse_timeout_of,
    fail,
    identity_from_options,
    run_async,
    s3_config_from,
    setup_logging,
)


@app.command()
def echo(
    addr: Annotated[str, typer.Argument(help="host:port, AE@host:port or \\[v6]:port")],
    count: Annotated[
        int, typer.Option("--count", "-n", min=1, help="C-ECHOs to send on one association.")
    ] = 1,
    calling_ae: CallingAe = "ECHO-SCU",
    called_ae: CalledAe = None,
    timeout: Timeout = 30.0,
    dimse_timeout: DimseTimeout = None,
    username: Username = None,
    password_file: PasswordFile = None,
    identity_type: IdentityType = None,
    identity_file: IdentityFile = None,
    identity_response: IdentityResponse = False,
    tls: TlsFlag = False,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_profile: TlsProfileOpt = "bcp195-nd",
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Verify a peer with C-ECHO (N echoes on one association)."""
    from aiodicom.scu.echo import EchoScu

    setup_logging(verbose)
    tls_context = client_tls_from(tls, tls_ca, tls_cert, tls_key, tls_profile)
    identity = identity_from_options(username, password_file, identity_type, identity_file, identity_response)
    try:
        scu = EchoScu(
            addr,
            calling_ae_title=calling_ae,
            called_ae_title=called_ae,
            connect_timeout=timeout,
            acse_timeout=timeout,
            dimse_timeout=dimse_timeout_of(timeout, dimse_timeout),
            verbose=verbose,
            user_identity=identity,
            tls=tls_context,
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    result = run_async(lambda: scu.echo(count))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "peer": str(scu.address),
                    "called_ae_title": scu.called_ae_title,
                    "count": result.count,
                    "status": result.status,
                    "duration_seconds": round(result.duration_seconds, 6),
                }
            )
        )
    else:
        typer.echo(
            f"C-ECHO to {scu.called_ae_title}@{scu.address.host}:{scu.address.port}: "
            f"{result.count} x Success in {result.duration_seconds * 1000:.1f} ms"
        )


@app.command()
def store(
    addr: Annotated[str, typer.Argument(help="host:port, AE@host:port or \\[v6]:port")],
    paths: Annotated[
        list[str],
        typer.Argument(help="Files or folders (searched recursively); with --s3-bucket, key prefixes."),
    ],
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", min=1, help="Associations in parallel.")
    ] = 1,
    throttle_ms: Annotated[
        int, typer.Option("--throttle-ms", min=0, help="Wait between files, per association.")
    ] = 0,
    max_ops: Annotated[
        int | None,
        typer.Option(
            "--max-ops",
            min=1,
            max=65535,
            help="Propose an asynchronous operations window: up to N C-STOREs unanswered per association "
            "(the peer may grant fewer; default: one at a time).",
        ),
    ] = None,
    transfer_syntax: Annotated[
        str | None,
        typer.Option(
            "--transfer-syntax",
            help="Convert every file to this syntax and propose only it (UID, keyword or a name like "
            "JPEGLSLossless).",
        ),
    ] = None,
    allow_lossy: Annotated[
        bool,
        typer.Option(
            "--allow-lossy",
            help="Allow a lossy --transfer-syntax (each file converted becomes a new instance).",
        ),
    ] = False,
    never_transcode: Annotated[
        bool,
        typer.Option(
            "--never-transcode",
            help="Fail a file the peer takes in none of its own syntaxes, rather than convert it losslessly.",
        ),
    ] = False,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            min=0,
            help="Try an association again this many times when the peer is busy (transient rejection) or "
            "the connection fails, with a growing wait, at most 10 s in all (0: never).",
        ),
    ] = 3,
    commit: Annotated[
        bool,
        typer.Option(
            "--commit",
            help="Then ask the peer to commit what it stored (Storage Commitment); exits non-zero unless "
            "every instance sent is committed.",
        ),
    ] = False,
    receive_port: ReceivePort = None,
    commit_timeout: CommitTimeout = 60.0,
    calling_ae: CallingAe = "STORE-SCU",
    called_ae: CalledAe = None,
    max_pdu: Annotated[int, typer.Option("--max-pdu", help="Maximum PDU length we receive.")] = 262144,
    timeout: Timeout = 30.0,
    dimse_timeout: DimseTimeout = None,
    username: Username = None,
    password_file: PasswordFile = None,
    identity_type: IdentityType = None,
    identity_file: IdentityFile = None,
    identity_response: IdentityResponse = False,
    s3_bucket: S3BucketOpt = None,
    s3_endpoint: S3EndpointOpt = None,
    s3_region: S3RegionOpt = None,
    tls: TlsFlag = False,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_profile: TlsProfileOpt = "bcp195-nd",
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Send files (or S3 objects) with C-STORE; exits non-zero when any file failed."""
    from aiodicom.scu.store import StoreScu

    setup_logging(verbose)
    tls_context = client_tls_from(tls, tls_ca, tls_cert, tls_key, tls_profile)
    identity = identity_from_options(username, password_file, identity_type, identity_file, identity_response)
    try:
        scu = StoreScu(
            addr,
            calling_ae_title=calling_ae,
            called_ae_title=called_ae,
            max_pdu_length=max_pdu,
            concurrency=concurrency,
            throttle_delay_ms=throttle_ms,
            max_ops_invoked=max_ops,
            transfer_syntax=transfer_syntax,
            allow_lossy=allow_lossy,
            never_transcode=never_transcode,
            retries=retries,
            s3_config=s3_config_from(s3_bucket, s3_endpoint, "", s3_region),
            verbose=verbose,
            connect_timeout=timeout,
            acse_timeout=timeout,
            dimse_timeout=dimse_timeout_of(timeout, dimse_timeout),
            user_identity=identity,
            tls=tls_context,
            commit=commit,
            commit_receive=None if receive_port is None else {"port": receive_port},
            commit_timeout=commit_timeout,
        )
        for path in paths:
            if s3_bucket is not None:  # a prefix ending in / (or the whole bucket: ""), else one key
                if path == "" or path.endswith("/"):
                    scu.add_folder(path)
                else:
                    scu.add_file(path)
            elif os.path.isdir(path):
                scu.add_folder(path)
            elif os.path.exists(path):
                scu.add_file(path)
            else:
                raise ValueError(f"{path}: no such file or folder")
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    # rich only for what it shows: the table (not with --json), the progress bar (on a terminal), failures
    console = _Stderr(None if as_json else _console(stderr=True))
    progress = (
        _progress(console.rich) if console.rich is not None and console.rich.is_terminal else _NoProgress()
    )

    async def run() -> Any:
        total_files, finished = scu.queued, 0
        by_bytes = s3_bucket is None  # S3 objects are counted, their sizes are not known up front
        with progress:
            task = progress.add_task(f"0/{total_files} files", total=scu.queued_bytes if by_bytes else None)

            def started(event: Any) -> None:
                nonlocal total_files
                total_files = event.total_files
                if not by_bytes:
                    progress.update(task, total=total_files, description=f"0/{total_files} files")

            def done(event: Any) -> None:
                nonlocal finished
                finished += 1
                size = os.path.getsize(event.file) if by_bytes and os.path.isfile(event.file) else 1
                progress.update(task, advance=size, description=f"{finished}/{total_files} files")

            def failed(event: Any) -> None:
                done(event)
                console.print(f"[red]{event.message}[/red]")

            return await scu.send(on_transfer_started=started, on_file_sent=done, on_file_error=failed)

    result = run_async(run)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "total_files": result.total_files,
                    "successful": result.successful,
                    "failed": result.failed,
                    "warnings": len(result.warnings),
                    "duration_seconds": round(result.duration_seconds, 3),
                    "files": [
                        {
                            "file": f.file,
                            "sop_instance_uid": f.sop_instance_uid,
                            "status": f.status,
                            "error": f.error,
                        }
                        for f in result.files
                    ],
                    **({"commit": commit_json(result.commit, result.commit_error)} if commit else {}),
                }
            )
        )
    else:
        from rich.table import Table

        table = Table(title=f"C-STORE to {scu.called_ae_title}@{scu.address.host}:{scu.address.port}")
        for column in ("files", "successful", "warnings", "failed", "seconds", "files/s"):
            table.add_column(column, justify="right")
        rate = result.total_files / result.duration_seconds if result.duration_seconds else 0.0
        table.add_row(
            str(result.total_files),
            str(result.successful),
            str(len(result.warnings)),
            str(result.failed),
            f"{result.duration_seconds:.2f}",
            f"{rate:.1f}",
        )
        _console().print(table)
        if commit:
            print_commit(result.commit, result.commit_error)
    if result.failed:
        raise fail(f"{result.failed} of {result.total_files} files failed", 1)
    if commit and (result.commit is None or result.commit.failed):
        raise fail("not every instance sent was committed", 1)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


def _progress(console: Any) -> Any:
    from rich.progress import BarColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


class _Stderr:
    """The rich console on stderr, made on first use when not given (with --json: at the first failure)."""

    def __init__(self, console: Any) -> None:
        self.rich = console

    def print(self, text: str) -> None:
        if self.rich is None:
            self.rich = _console(stderr=True)
        self.rich.print(text)


class _NoProgress:
    """What a disabled rich Progress does: nothing (without importing rich)."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def update(self, task: int, **changes: Any) -> None:
        return None
