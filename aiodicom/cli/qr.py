"""The query/retrieve verbs of the ``aiodicom`` command: find, get, move."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from aiodicom.cli.common import (
    AllowLossy,
    CalledAe,
    DimseTimeout,
    IdentityFile,
    IdentityResponse,
    IdentityType,
    Json,
    KeepOriginal,
    PasswordFile,
    ReceiveTlsCa,
    ReceiveTlsCert,
    ReceiveTlsKey,
    S3BucketOpt,
    S3EndpointOpt,
    S3PrefixOpt,
    S3RegionOpt,
    Timeout,
    TlsCa,
    TlsCert,
    TlsFlag,
    TlsKey,
    TlsProfileOpt,
    Transcode,
    Username,
    Verbose,
    app,
    client_tls_from,
    dimse_timeout_of,
    fail,
    identity_from_options,
    run_async,
    s3_config_from,
    server_tls_from,
    setup_logging,
)

Keys = Annotated[
    list[str] | None,
    typer.Option(
        "--key", "-k", help="KEY=VALUE to match (repeat); KEY= or KEY asks for the key to be returned."
    ),
]
Level = Annotated[str | None, typer.Option("--level", "-L", help="PATIENT, STUDY, SERIES or IMAGE.")]
Model = Annotated[
    str, typer.Option("--model", "-m", help="study_root, patient_root (find: also modality_worklist).")
]
Addr = Annotated[str, typer.Argument(help="host:port, AE@host:port or \\[v6]:port")]


def _keys(pairs: list[str] | None, level: str | None, default_level: str | None) -> dict[str, Any]:
    """``-k`` options as a query dict (sequence items as ``Sequence.Keyword=VALUE``)."""
    query: dict[str, Any] = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        key = key.strip()
        if not key:
            raise fail(f"bad -k {pair!r}: expected KEY=VALUE", 2)
        if "." in key:  # one level of sequence: ScheduledProcedureStepSequence.Modality=CT
            sequence, _, inner = key.partition(".")
            items = query.setdefault(sequence, [{}])
            items[0][inner] = value
        else:
            query[key] = value
    if level is not None:
        query["QueryRetrieveLevel"] = level.upper()
    elif default_level is not None:
        query.setdefault("QueryRetrieveLevel", default_level)
    return query


def _retrieve(label: str, as_json: bool, start: Callable[[Callable[[Any], None]], Awaitable[Any]]) -> Any:
    """Run a retrieve with a progress bar on stderr (a terminal, not --json) fed by its sub-operations."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json or not console.is_terminal,
    )

    async def run() -> Any:
        with progress:
            task = progress.add_task(label, total=None)

            def advance(event: Any) -> None:
                progress.update(task, total=event.total, completed=event.total - event.remaining)

            return await start(advance)

    return run_async(run)


#: The exit status of a get or move whose query matched nothing (no C-GET or C-MOVE was sent).
NO_MATCH_EXIT = 4


def _summary(title: str, result: Any, as_json: bool, verb: str) -> None:
    from rich.console import Console
    from rich.table import Table

    if as_json:
        payload = {
            "matched": result.matched,
            "cancelled": result.cancelled,
            "total": result.total,
            "completed": result.completed,
            "warning": result.warning,
            "failed": result.failed,
            "status": result.status,
            "duration_seconds": round(result.duration_seconds, 3),
            "files": result.files,
            "failed_sop_instance_uids": result.failed_sop_instance_uids,
            "forward_failed": [
                {"sop_instance_uid": f.sop_instance_uid, "status": f.status, "error": f.error}
                for f in result.forward_failed
            ],
        }
        typer.echo(json.dumps(payload))
    elif not result.matched:
        pass
    else:
        table = Table(title=title)
        for column in ("total", "completed", "warning", "failed", "status", "seconds", "instances/s"):
            table.add_column(column, justify="right")
        rate = result.total / result.duration_seconds if result.duration_seconds else 0.0
        table.add_row(
            str(result.total),
            str(result.completed),
            str(result.warning),
            str(result.failed),
            f"0x{result.status:04X}",
            f"{result.duration_seconds:.2f}",
            f"{rate:.1f}",
        )
        Console().print(table)
    if not result.matched:
        raise fail(f"nothing matches the query: no {verb} was sent", NO_MATCH_EXIT)
    if result.failed:
        raise fail(f"{result.failed} of {result.total} sub-operations failed", 1)


@app.command()
def find(
    addr: Addr,
    keys: Keys = None,
    level: Level = None,
    model: Model = "study_root",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Cancel after N matches.")] = None,
    calling_ae: Annotated[str, typer.Option("--calling-ae", "-aet", help="Our AE title.")] = "FIND-SCU",
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
    """Query with C-FIND, e.g. aiodicom find PACS@host:104 -k PatientID=123 -k StudyDate= --level STUDY"""
    from rich.console import Console
    from rich.table import Table

    from aiodicom.scu.find import FindScu
    from aiodicom.services.query import QueryModel

    setup_logging(verbose)
    tls_context = client_tls_from(tls, tls_ca, tls_cert, tls_key, tls_profile)
    identity = identity_from_options(username, password_file, identity_type, identity_file, identity_response)
    try:
        query_model = QueryModel.parse(model)
        default = None if query_model is QueryModel.MODALITY_WORKLIST else "STUDY"
        query = _keys(keys, level, default)
        scu = FindScu(
            addr,
            calling_ae_title=calling_ae,
            called_ae_title=called_ae,
            connect_timeout=timeout,
            acse_timeout=timeout,
            dimse_timeout=dimse_timeout_of(timeout, dimse_timeout),
            user_identity=identity,
            tls=tls_context,
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None

    result = run_async(lambda: _await(scu.find(query, query_model, limit=limit)))
    if as_json:
        typer.echo(json.dumps(result.matches, ensure_ascii=False))
        return
    columns = list(dict.fromkeys(k for m in result.matches for k in m if k != "SpecificCharacterSet"))
    table = Table(title=f"{len(result.matches)} matches from {scu.called_ae_title}")
    for column in columns:
        table.add_column(column)
    for match in result.matches:
        table.add_row(*(_cell(match.get(column)) for column in columns))
    Console().print(table)


async def _await(operation: Any) -> Any:
    return await operation


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(", ".join(f"{k}={v}" for k, v in item.items() if v) for item in value)
    return "" if value is None else str(value)


@app.command()
def get(
    addr: Addr,
    keys: Keys = None,
    level: Level = None,
    model: Model = "study_root",
    out_dir: Annotated[
        str | None, typer.Option("--out-dir", "-o", help="Where instances are stored.")
    ] = None,
    forward: Annotated[
        str | None,
        typer.Option("--forward", help="Relay every instance to AE@host:port instead of storing it."),
    ] = None,
    strict_forward: Annotated[
        bool, typer.Option("--strict-forward", help="Fail the sub-operation when its forward fails.")
    ] = False,
    calling_ae: Annotated[str, typer.Option("--calling-ae", "-aet", help="Our AE title.")] = "GET-SCU",
    called_ae: CalledAe = None,
    s3_bucket: S3BucketOpt = None,
    s3_endpoint: S3EndpointOpt = None,
    s3_prefix: S3PrefixOpt = "",
    s3_region: S3RegionOpt = None,
    no_fsync: Annotated[bool, typer.Option("--no-fsync", help="Do not sync each file.")] = False,
    transcode: Transcode = None,
    allow_lossy: AllowLossy = False,
    keep_original: KeepOriginal = False,
    never_transcode: Annotated[
        bool,
        typer.Option(
            "--never-transcode",
            help="With --forward: fail an instance the destination takes in none of its syntaxes, rather "
            "than convert it.",
        ),
    ] = False,
    timeout: Timeout = 60.0,
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
    """Retrieve with C-GET, e.g. aiodicom get PACS@host:104 -k StudyInstanceUID=1.2.3 --out-dir ./got"""
    from aiodicom.scu.get import GetScu

    setup_logging(verbose)
    tls_context = client_tls_from(tls, tls_ca, tls_cert, tls_key, tls_profile)
    identity = identity_from_options(username, password_file, identity_type, identity_file, identity_response)
    s3 = s3_config_from(s3_bucket, s3_endpoint, s3_prefix, s3_region)
    backend = "forward" if forward else "s3" if s3 is not None else "filesystem"
    if backend == "filesystem" and out_dir is None:
        raise fail("give --out-dir (or --s3-bucket, or --forward)", 2)
    try:
        query = _keys(keys, level, "STUDY")
        scu = GetScu(
            addr,
            calling_ae_title=calling_ae,
            called_ae_title=called_ae,
            out_dir=out_dir,
            storage_backend=backend,
            s3_config=s3,
            forward_target={"addr": forward} if forward else None,
            strict_forward=strict_forward,
            query_model=model,
            fsync=not no_fsync,
            transcode_on_receipt=transcode,
            allow_lossy=allow_lossy,
            keep_original_on_transcode_failure=keep_original,
            never_transcode=never_transcode,
            connect_timeout=timeout,
            acse_timeout=timeout,
            dimse_timeout=dimse_timeout_of(timeout, dimse_timeout),
            user_identity=identity,
            tls=tls_context,
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    result = _retrieve("C-GET", as_json, lambda advance: scu.get(query, on_sub_operation=advance))
    title = f"C-GET from {scu.called_ae_title}@{scu.address.host}:{scu.address.port}"
    _summary(title, result, as_json, "C-GET")


@app.command()
def move(
    addr: Addr,
    dest: Annotated[str, typer.Option("--dest", help="The move destination's AE title (known to the peer).")],
    keys: Keys = None,
    level: Level = None,
    model: Model = "study_root",
    receive_port: Annotated[
        int | None,
        typer.Option("--receive-port", min=0, max=65535, help="Receive the move here (as --dest)."),
    ] = None,
    receive_host: Annotated[
        str, typer.Option("--receive-host", help="Address the receiver binds.")
    ] = "0.0.0.0",
    out_dir: Annotated[str | None, typer.Option("--out-dir", "-o", help="Where the receiver stores.")] = None,
    transcode: Transcode = None,
    allow_lossy: AllowLossy = False,
    keep_original: KeepOriginal = False,
    calling_ae: Annotated[str, typer.Option("--calling-ae", "-aet", help="Our AE title.")] = "MOVE-SCU",
    called_ae: CalledAe = None,
    timeout: Timeout = 600.0,
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
    receive_tls_cert: ReceiveTlsCert = None,
    receive_tls_key: ReceiveTlsKey = None,
    receive_tls_ca: ReceiveTlsCa = None,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Retrieve with C-MOVE, e.g. aiodicom move PACS@host:104 --dest ME -k StudyInstanceUID=1.2.3
    --receive-port 11113 --out-dir ./moved"""
    from aiodicom.scu.move import MoveScu

    setup_logging(verbose)
    tls_context = client_tls_from(tls, tls_ca, tls_cert, tls_key, tls_profile)
    identity = identity_from_options(username, password_file, identity_type, identity_file, identity_response)
    receive: dict[str, Any] | None = None
    if receive_port is not None:
        if out_dir is None:
            raise fail("--receive-port needs --out-dir", 2)
        receive = {
            "port": receive_port,
            "host": receive_host,
            "out_dir": out_dir,
            "transcode_on_receipt": transcode,
            "allow_lossy": allow_lossy,
            "keep_original_on_transcode_failure": keep_original,
        }
        receive_tls = server_tls_from(
            receive_tls_cert, receive_tls_key, receive_tls_ca, profile=tls_profile, prefix="--receive-tls"
        )
        if receive_tls is not None:
            receive["tls"] = receive_tls
    elif out_dir is not None or transcode is not None or receive_tls_cert is not None:
        raise fail(
            "--out-dir, --transcode and --receive-tls-cert need --receive-port (the built-in receiver)", 2
        )
    try:
        query = _keys(keys, level, "STUDY")
        scu = MoveScu(
            addr,
            calling_ae_title=calling_ae,
            called_ae_title=called_ae,
            query_model=model,
            connect_timeout=timeout,
            acse_timeout=timeout,
            dimse_timeout=dimse_timeout_of(timeout, dimse_timeout),
            user_identity=identity,
            tls=tls_context,
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    result = _retrieve(
        f"C-MOVE to {dest}",
        as_json,
        lambda advance: scu.move(query, dest, on_sub_operation=advance, receive=receive),
    )
    _summary(f"C-MOVE from {scu.called_ae_title} to {dest}", result, as_json, "C-MOVE")
