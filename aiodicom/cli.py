"""The ``aiodicom`` command: one verb per service, the same option names for the same things.

Every verb exits 0 on success and otherwise prints one line saying why on stderr and exits non-zero:
1 for a DICOM failure (rejected, aborted, failure status), 2 for bad usage, 3 when the peer is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from aiodicom import __version__
from aiodicom.errors import DicomError, PeerUnreachable

app = typer.Typer(
    name="aiodicom",
    help="asyncio DICOM networking: echo, receive and send.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_T = TypeVar("_T")

#: The environment variable that holds the password for ``--username`` (when no --password-file).
PASSWORD_ENV = "AIODICOM_PASSWORD"

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log the protocol: contexts, PDUs, statuses.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts).")]
CallingAe = Annotated[str, typer.Option("--calling-ae", "-aet", help="Our AE title.")]
CalledAe = Annotated[
    str | None,
    typer.Option("--called-ae", "-aec", help="The peer's AE title (default: the AE in ADDR, else ANY-SCP)."),
]
S3BucketOpt = Annotated[
    str | None,
    typer.Option("--s3-bucket", help="Use this S3 bucket (credentials from the environment or profile)."),
]
S3EndpointOpt = Annotated[
    str | None, typer.Option("--s3-endpoint", help="S3-compatible endpoint URL (MinIO, Ceph, R2...).")
]
S3PrefixOpt = Annotated[str, typer.Option("--s3-prefix", help="Key prefix in the bucket.")]
S3RegionOpt = Annotated[str | None, typer.Option("--s3-region", help="Region (default: environment).")]


def _s3_config(bucket: str | None, endpoint: str | None, prefix: str, region: str | None) -> Any:
    if bucket is None:
        if endpoint is not None:
            raise _fail("--s3-endpoint needs --s3-bucket", 2)
        return None
    from aiodicom.storage.s3 import S3Config

    try:
        return S3Config(bucket, region=region, endpoint=endpoint, prefix=prefix)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None


Timeout = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the connection and each answer.")
]
DimseTimeout = Annotated[
    float | None,
    typer.Option(
        "--dimse-timeout",
        help="Seconds of silence after which a response (or the next sub-operation) is given up on: the "
        "longest wait for any byte, not for the whole message (default: --timeout).",
    ),
]
IdleTimeout = Annotated[
    float | None,
    typer.Option(
        "--idle-timeout",
        help="Abort an association from which no byte arrives for this many seconds (0: never; default 300).",
    ),
]
MaxAssociations = Annotated[
    int, typer.Option("--max-associations", min=1, help="Associations served at once; more are rejected.")
]
MaxPending = Annotated[
    int | None,
    typer.Option(
        "--max-pending",
        min=1,
        help="Connections not yet associated at once; more are closed (default: 4 x --max-associations).",
    ),
]

# User identity (PS3.7 D.3.3.7), the same options on every verb that connects to a peer.
Username = Annotated[str | None, typer.Option("--username", help="Send this username as user identity.")]
PasswordFile = Annotated[
    str | None,
    typer.Option(
        "--password-file",
        help=f"Read the password for --username from the first line of this file (else ${PASSWORD_ENV}, "
        "if set; a password is never given on the command line, where ps would show it).",
    ),
]
IdentityType = Annotated[
    str | None, typer.Option("--identity-type", help="kerberos, saml or jwt, read from --identity-file.")
]
IdentityFile = Annotated[
    str | None,
    typer.Option("--identity-file", help="The Kerberos ticket, SAML assertion or JWT to send."),
]
IdentityResponse = Annotated[
    bool,
    typer.Option(
        "--identity-response", help="Ask the peer to confirm the identity, and fail when it does not."
    ),
]


def _user_identity(
    username: str | None,
    password_file: str | None,
    identity_type: str | None,
    identity_file: str | None,
    response: bool,
) -> Any:
    """The UserIdentity that the identity options describe (None without them); bad usage exits 2."""
    from aiodicom.identity import IdentityKind, UserIdentity

    try:
        if username is not None and (identity_type or identity_file):
            raise ValueError("give --username or --identity-type/--identity-file, not both")
        if username is None and password_file is not None:
            raise ValueError("--password-file needs --username")
        if username is not None:
            password = _read_password(password_file)
            if password is None:
                return UserIdentity.username(username, positive_response_requested=response)
            return UserIdentity.username_password(username, password, positive_response_requested=response)
        if (identity_type is None) != (identity_file is None):
            raise ValueError("--identity-type and --identity-file go together")
        if identity_type is not None and identity_file is not None:
            kind = IdentityKind.parse(identity_type)
            if kind not in (IdentityKind.KERBEROS, IdentityKind.SAML, IdentityKind.JWT):
                raise ValueError("--identity-type is kerberos, saml or jwt (use --username for a username)")
            with open(identity_file, "rb") as fp:
                data = fp.read(1 << 16)
            return UserIdentity.of(kind, data).requesting_response(response)
        if response:
            raise ValueError("--identity-response needs an identity (--username or --identity-type)")
        return None
    except OSError as exc:
        raise _fail(f"cannot read {exc.filename}: {exc.strerror}", 2) from None
    except (ValueError, TypeError) as exc:
        raise _fail(str(exc), 2) from None


def _read_password(password_file: str | None) -> str | None:
    if password_file is not None:
        with open(password_file, encoding="utf-8") as fp:
            password = fp.readline().rstrip("\r\n")
        if not password:
            raise ValueError(f"{password_file}: the first line is empty (no password)")
        return password
    return os.environ.get(PASSWORD_ENV) or None


def _dimse_timeout(timeout: float, dimse_timeout: float | None) -> float:
    if dimse_timeout is None:
        return timeout
    if dimse_timeout <= 0:
        raise _fail("--dimse-timeout must be more than 0 seconds", 2)
    return dimse_timeout


def _idle_timeout(idle_timeout: float | None) -> dict[str, Any]:
    if idle_timeout is None:
        return {}
    if idle_timeout < 0:
        raise _fail("--idle-timeout cannot be negative", 2)
    return {"idle_timeout": idle_timeout or None}


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"aiodicom: {message}", err=True)
    return typer.Exit(code)


def _run(coro_fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine (on uvloop when installed), mapping errors to one line and an exit status."""
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return runner(coro_fn())  # type: ignore[no-any-return]
    except PeerUnreachable as exc:
        raise _fail(str(exc), 3) from None
    except DicomError as exc:
        raise _fail(str(exc), 1) from None
    except TimeoutError:  # an operation that gives up on its own says so; this is one that did not
        raise _fail("no answer in time (--timeout, --dimse-timeout): the peer went silent", 1) from None
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    except KeyboardInterrupt:
        raise _fail("interrupted", 130) from None


async def _serve_until_stopped(server: Any) -> None:
    """Serve until SIGTERM (systemd's and containers' stop signal) or Ctrl+C, then stop gracefully: no new
    associations, each association finishes the message it is handling, pending studies complete."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' event loop
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
    serving = asyncio.ensure_future(server.serve_forever())
    waiting = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        serving.cancel()
        outcome = (await asyncio.gather(serving, return_exceptions=True))[0]
        await server.stop()
    if isinstance(outcome, Exception):
        raise outcome
    if stopping.is_set():
        typer.echo("stopped (SIGTERM)", err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aiodicom {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """asyncio DICOM networking: echo, receive and send."""


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
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Verify a peer with C-ECHO (N echoes on one association)."""
    from aiodicom.scu import EchoScu

    _setup_logging(verbose)
    identity = _user_identity(username, password_file, identity_type, identity_file, identity_response)
    try:
        scu = EchoScu(
            addr,
            calling_ae_title=calling_ae,
            called_ae_title=called_ae,
            connect_timeout=timeout,
            acse_timeout=timeout,
            dimse_timeout=_dimse_timeout(timeout, dimse_timeout),
            verbose=verbose,
            user_identity=identity,
        )
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    result = _run(lambda: scu.echo(count))
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
def echoscp(
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on (0: any free).")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to bind (:: for IPv6).")] = "0.0.0.0",
    ae_title: Annotated[str, typer.Option("--ae-title", "-aet", help="Our AE title.")] = "ECHO-SCP",
    require_called_ae: Annotated[
        bool, typer.Option("--require-called-ae", help="Reject associations addressed to another AE title.")
    ] = False,
    idle_timeout: IdleTimeout = None,
    max_associations: MaxAssociations = 64,
    max_pending: MaxPending = None,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Answer C-ECHO until interrupted."""
    from aiodicom.scp import EchoScp

    _setup_logging(verbose)
    idle = _idle_timeout(idle_timeout)
    try:
        scp = EchoScp(
            port,
            host,
            ae_title,
            require_called_ae_title=require_called_ae,
            max_associations=max_associations,
            max_pending_connections=max_pending,
            verbose=verbose,
            **idle,
        )
    except ValueError as exc:
        raise _fail(str(exc), 2) from None

    async def serve() -> None:
        await scp.start()
        if as_json:  # one line a script can wait for and read the port from
            event = {"event": "server_started", "host": host, "port": scp.port, "ae_title": scp.ae_title}
            typer.echo(json.dumps(event))
        else:
            typer.echo(f"listening on {host}:{scp.port} as {scp.ae_title}", err=True)
        await _serve_until_stopped(scp)

    _run(serve)


@app.command()
def storescp(
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on (0: any free).")
    ],
    out_dir: Annotated[
        str | None, typer.Option("--out-dir", "-o", help="Where instances are stored (filesystem).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (:: for IPv6).")] = "0.0.0.0",
    ae_title: Annotated[str, typer.Option("--ae-title", "-aet", help="Our AE title.")] = "STORE-SCP",
    extract_tags: Annotated[
        list[str] | None,
        typer.Option("--extract-tags", "-t", help="Keywords to extract (repeat, or comma-separated)."),
    ] = None,
    study_timeout: Annotated[
        float, typer.Option("--study-timeout", help="Seconds of quiet that complete a study.")
    ] = 30.0,
    no_fsync: Annotated[
        bool, typer.Option("--no-fsync", help="Do not sync each file before answering.")
    ] = False,
    require_called_ae: Annotated[
        bool, typer.Option("--require-called-ae", help="Reject associations addressed to another AE title.")
    ] = False,
    max_pdu: Annotated[int, typer.Option("--max-pdu", help="Maximum PDU length we receive.")] = 16384,
    idle_timeout: IdleTimeout = None,
    max_associations: MaxAssociations = 64,
    max_pending: MaxPending = None,
    s3_bucket: S3BucketOpt = None,
    s3_endpoint: S3EndpointOpt = None,
    s3_prefix: S3PrefixOpt = "",
    s3_region: S3RegionOpt = None,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Receive instances (C-STORE) into OUT_DIR/study/series/instance.dcm (or an S3 bucket) until
    interrupted."""
    from aiodicom.scp import StoreScp

    _setup_logging(verbose)
    keywords = [k.strip() for item in extract_tags or () for k in item.split(",") if k.strip()]
    s3 = _s3_config(s3_bucket, s3_endpoint, s3_prefix, s3_region)
    if s3 is None and out_dir is None:
        raise _fail("give --out-dir (or --s3-bucket)", 2)
    idle = _idle_timeout(idle_timeout)
    try:
        scp = StoreScp(
            port,
            host,
            ae_title,
            out_dir,
            storage_backend="s3" if s3 else "filesystem",
            s3_config=s3,
            extract_tags=keywords,
            study_timeout=study_timeout,
            fsync=not no_fsync,
            require_called_ae_title=require_called_ae,
            max_pdu_length=max_pdu,
            max_associations=max_associations,
            max_pending_connections=max_pending,
            verbose=verbose,
            **idle,
        )
    except ValueError as exc:
        raise _fail(str(exc), 2) from None

    def show(kind: str, text: str, payload: dict[str, Any]) -> None:
        typer.echo(json.dumps({"event": kind, **payload}) if as_json else text)

    scp.on_file_stored(
        lambda e: show(
            "file_stored",
            f"stored {e.file}",
            {
                "file": e.file,
                "sop_instance_uid": e.sop_instance_uid,
                "sop_class_uid": e.sop_class_uid,
                "study_instance_uid": e.study_instance_uid,
                "series_instance_uid": e.series_instance_uid,
                "tags": e.tags,
            },
        )
    )
    scp.on_study_completed(
        lambda e: show(
            "study_completed",
            e.message,
            {
                "study_instance_uid": e.study_instance_uid,
                "series": len(e.series),
                "instances": e.instance_count,
                "tags": e.tags,
            },
        )
    )
    scp.on_error(lambda e: typer.echo(f"error: {e.message}", err=True))

    async def serve() -> None:
        await scp.start()
        where = str(scp.out_dir or scp.storage.location(""))
        if as_json:  # one line a script can wait for and read the port from, as echoscp prints it
            event = {"event": "server_started", "host": host, "port": scp.port, "ae_title": scp.ae_title}
            typer.echo(json.dumps({**event, "storing_into": where}))
        else:
            typer.echo(f"listening on {host}:{scp.port} as {scp.ae_title}, storing into {where}", err=True)
        await _serve_until_stopped(scp)

    _run(serve)


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
    transfer_syntax: Annotated[
        str | None,
        typer.Option("--transfer-syntax", help="Force a syntax (UID, keyword or a name like JPEGBaseline)."),
    ] = None,
    calling_ae: CallingAe = "STORE-SCU",
    called_ae: CalledAe = None,
    max_pdu: Annotated[int, typer.Option("--max-pdu", help="Maximum PDU length we receive.")] = 16384,
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
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Send files (or S3 objects) with C-STORE; exits non-zero when any file failed."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
    from rich.table import Table

    from aiodicom.store_scu import StoreScu

    _setup_logging(verbose)
    identity = _user_identity(username, password_file, identity_type, identity_file, identity_response)
    try:
        scu = StoreScu(
            addr,
            calling_ae,
            called_ae,
            max_pdu,
            concurrency,
            throttle_ms,
            transfer_syntax,
            _s3_config(s3_bucket, s3_endpoint, "", s3_region),
            verbose=verbose,
            connect_timeout=timeout,
            acse_timeout=timeout,
            dimse_timeout=_dimse_timeout(timeout, dimse_timeout),
            user_identity=identity,
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
        raise _fail(str(exc), 2) from None
    console = Console(stderr=True)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=as_json or not console.is_terminal,
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

    result = _run(run)
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
                }
            )
        )
    else:
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
        Console().print(table)
    if result.failed:
        raise _fail(f"{result.failed} of {result.total_files} files failed", 1)


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
    from aiodicom.demo import DemoFailed, DemoOptions, run_demo

    _setup_logging(verbose)
    options = DemoOptions(count, concurrency, out_dir, clean, s3_endpoint, s3_bucket, as_json, verbose)
    try:
        _run(lambda: run_demo(options))
    except DemoFailed as exc:
        raise _fail(str(exc), exc.exit_code) from None


from aiodicom import cli_qr as _cli_qr  # noqa: E402, F401  (registers find, get and move)


def main() -> None:
    """Entry point of the ``aiodicom`` console script."""
    app()


if __name__ == "__main__":
    main()
