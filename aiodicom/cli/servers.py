"""The verbs that listen: echoscp, storescp (until SIGTERM or Ctrl+C, then a graceful stop)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aiodicom.cli.access import (
    AllowCallingAe,
    AllowHost,
    ArtimTimeout,
    MaxAssociationsPerPeer,
    MaxPendingPerPeer,
    Users,
    access_options,
)
from aiodicom.cli.common import (
    AllowLossy,
    DrainTimeout,
    IdleTimeout,
    Json,
    KeepOriginal,
    MaxAssociations,
    MaxPending,
    S3BucketOpt,
    S3EndpointOpt,
    S3PrefixOpt,
    S3RegionOpt,
    TlsCa,
    TlsCert,
    TlsCrl,
    TlsKey,
    TlsOptionalClientCert,
    TlsProfileOpt,
    Transcode,
    Verbose,
    app,
    fail,
    idle_timeout_option,
    run_async,
    s3_config_from,
    serve_until_stopped,
    server_tls_from,
    setup_logging,
)

if TYPE_CHECKING:
    from aiodicom.scp.store import StoreScp


RemoteAeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--remote-ae",
        help="A known AE, as AE@host:port (repeat): C-MOVE destinations, and where reports go.",
    ),
]


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
    max_pending_per_peer: MaxPendingPerPeer = None,
    max_associations_per_peer: MaxAssociationsPerPeer = None,
    artim_timeout: ArtimTimeout = None,
    allow_host: AllowHost = None,
    allow_calling_ae: AllowCallingAe = None,
    users: Users = None,
    drain_timeout: DrainTimeout = 30.0,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
    tls_optional_client_cert: TlsOptionalClientCert = False,
    tls_profile: TlsProfileOpt = "bcp195-nd",
    tls_crl: TlsCrl = None,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Answer C-ECHO until interrupted."""
    from aiodicom.scp.echo import EchoScp

    setup_logging(verbose)
    tls_context = server_tls_from(tls_cert, tls_key, tls_ca, tls_optional_client_cert, tls_profile, tls_crl)
    idle = idle_timeout_option(idle_timeout)
    access = access_options(
        allow_host, allow_calling_ae, users, max_associations_per_peer, artim_timeout, max_pending_per_peer
    )
    try:
        scp = EchoScp(
            port,
            host=host,
            ae_title=ae_title,
            require_called_ae_title=require_called_ae,
            max_associations=max_associations,
            max_pending_connections=max_pending,
            drain_timeout=drain_timeout,
            verbose=verbose,
            tls=tls_context,
            **idle,
            **access,
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None

    async def serve() -> None:
        await scp.start()
        if as_json:  # one line a script can wait for and read the port from
            event = {"event": "server_started", "host": host, "port": scp.port, "ae_title": scp.ae_title}
            typer.echo(json.dumps(event))
        else:
            typer.echo(f"listening on {host}:{scp.port} as {scp.ae_title}", err=True)
        await serve_until_stopped(scp)

    run_async(serve)


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
    max_pdu: Annotated[int, typer.Option("--max-pdu", help="Maximum PDU length we receive.")] = 262144,
    idle_timeout: IdleTimeout = None,
    max_associations: MaxAssociations = 64,
    max_pending: MaxPending = None,
    max_pending_per_peer: MaxPendingPerPeer = None,
    max_associations_per_peer: MaxAssociationsPerPeer = None,
    artim_timeout: ArtimTimeout = None,
    allow_host: AllowHost = None,
    allow_calling_ae: AllowCallingAe = None,
    users: Users = None,
    drain_timeout: DrainTimeout = 30.0,
    s3_bucket: S3BucketOpt = None,
    s3_endpoint: S3EndpointOpt = None,
    s3_prefix: S3PrefixOpt = "",
    s3_region: S3RegionOpt = None,
    transcode: Transcode = None,
    allow_lossy: AllowLossy = False,
    keep_original: KeepOriginal = False,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: TlsCa = None,
    tls_optional_client_cert: TlsOptionalClientCert = False,
    tls_profile: TlsProfileOpt = "bcp195-nd",
    tls_crl: TlsCrl = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, help="Processes that receive, sharing the port and --out-dir (1: this one)."
        ),
    ] = 1,
    max_ops_performed: Annotated[
        int,
        typer.Option(
            "--max-ops-performed",
            min=0,
            max=65535,
            help="Asynchronous operations window granted to a sender that proposes one: C-STOREs it may send "
            "before the first is answered (0: as many as it proposes; 1: one at a time).",
        ),
    ] = 1,
    mpps_dir: Annotated[
        str | None,
        typer.Option("--mpps-dir", help="Serve MPPS (N-CREATE/N-SET), one JSON file per instance here."),
    ] = None,
    storage_commitment: Annotated[
        bool,
        typer.Option(
            "--storage-commitment",
            help="Serve Storage Commitment: report what was stored and synced (to the requestor's "
            "--remote-ae when its association is closed).",
        ),
    ] = False,
    remote_ae: RemoteAeOpt = None,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Receive instances (C-STORE) into OUT_DIR/study/series/instance.dcm (or an S3 bucket) until
    interrupted."""
    serve_storage(dict(locals()))


def serve_storage(params: dict[str, Any], make: Callable[..., StoreScp] | None = None) -> None:
    """The body of ``storescp`` and of the verbs that are a StoreScp too (``qrscp``): ``params`` are the
    storescp options by name; ``make(port, **options)`` makes the server (default: StoreScp)."""
    from aiodicom.scp.store import StoreScp

    defaults = {
        "s3_bucket": None,
        "s3_endpoint": None,
        "s3_prefix": "",
        "s3_region": None,
        "workers": 1,
        "mpps_dir": None,
        "max_ops_performed": 1,
        "storage_commitment": False,
        "remote_ae": None,
    }
    p = SimpleNamespace(**{**defaults, **params})
    table = remote_ae_option(p.remote_ae)

    setup_logging(p.verbose)
    tls_context = server_tls_from(
        p.tls_cert, p.tls_key, p.tls_ca, p.tls_optional_client_cert, p.tls_profile, p.tls_crl
    )
    keywords = [k.strip() for item in p.extract_tags or () for k in item.split(",") if k.strip()]
    s3 = s3_config_from(p.s3_bucket, p.s3_endpoint, p.s3_prefix, p.s3_region)
    if s3 is None and p.out_dir is None:
        raise fail("give --out-dir (or --s3-bucket)", 2)
    idle = idle_timeout_option(p.idle_timeout)
    access = access_options(
        p.allow_host,
        p.allow_calling_ae,
        p.users,
        p.max_associations_per_peer,
        p.artim_timeout,
        p.max_pending_per_peer,
    )
    try:
        scp = (make or StoreScp)(
            p.port,
            host=p.host,
            ae_title=p.ae_title,
            out_dir=p.out_dir,
            storage_backend="s3" if s3 else "filesystem",
            s3_config=s3,
            extract_tags=keywords,
            study_timeout=p.study_timeout,
            fsync=not p.no_fsync,
            require_called_ae_title=p.require_called_ae,
            max_pdu_length=p.max_pdu,
            max_associations=p.max_associations,
            max_pending_connections=p.max_pending,
            drain_timeout=p.drain_timeout,
            transcode_on_receipt=p.transcode,
            allow_lossy=p.allow_lossy,
            keep_original_on_transcode_failure=p.keep_original,
            verbose=p.verbose,
            tls=tls_context,
            workers=p.workers,
            max_ops_performed=p.max_ops_performed,
            mpps_dir=p.mpps_dir,
            storage_commitment=p.storage_commitment,
            remote_aes=table,
            **idle,
            **access,
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None

    out = sys.stdout

    def show(kind: str, text: str, payload: dict[str, Any]) -> None:
        # one line per stored instance: a plain write (typer.echo looks at the terminal each time)
        out.write((json.dumps({"event": kind, **payload}) if p.as_json else text) + "\n")
        out.flush()

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
                "transfer_syntax_uid": e.transfer_syntax_uid,
                "received_transfer_syntax": e.received_transfer_syntax,
                "original_sop_instance_uid": e.original_sop_instance_uid,
                "transcode_error": e.transcode_error,
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
    if p.mpps_dir is not None:
        scp.on_mpps_create(lambda e: show("mpps", f"MPPS {e.sop_instance_uid} {e.status}", _mpps(e)))
        scp.on_mpps_set(lambda e: show("mpps", f"MPPS {e.sop_instance_uid} {e.status}", _mpps(e)))
    if p.as_json:  # without --json the log line says it
        scp.on_tls_failure(
            lambda e: show(
                "tls_failure",
                e.message,
                {"peer_host": e.peer_host, "peer_port": e.peer_port, "kind": e.kind, "reason": e.reason},
            )
        )

    async def serve() -> None:
        await scp.start()
        where = str(scp.out_dir or scp.storage.location(""))
        if p.as_json:  # one line a script can wait for and read the port from, as echoscp prints it
            event = {"event": "server_started", "host": p.host, "port": scp.port, "ae_title": scp.ae_title}
            typer.echo(json.dumps({**event, "storing_into": where}))
        else:
            typer.echo(f"listening on {p.host}:{scp.port} as {scp.ae_title}, storing into {where}", err=True)
        await serve_until_stopped(scp)

    run_async(serve)


def remote_ae_option(values: list[str] | None) -> dict[str, str]:
    """``--remote-ae AE@host:port`` (repeated) as a ``remote_aes`` table."""
    from aiodicom.net.address import parse_address

    table: dict[str, str] = {}
    for value in values or ():
        try:
            address = parse_address(value)
        except ValueError as exc:
            raise fail(f"--remote-ae {value}: {exc}", 2) from None
        if not address.ae_title:
            raise fail(f"--remote-ae {value}: give the AE title, as AE@host:port", 2)
        table[address.ae_title] = f"{address.host}:{address.port}"
    return table


def _mpps(event: Any) -> dict[str, Any]:
    return {
        "sop_instance_uid": event.sop_instance_uid,
        "status": event.status,
        "previous_status": event.previous_status,
        "calling_ae_title": event.request.calling_ae_title,
    }


WorklistOpt = Annotated[
    str | None,
    typer.Option("--worklist", help="Serve Modality Worklist from the DICOM or JSON items in this folder."),
]
PendingIntervalOpt = Annotated[
    float | None,
    typer.Option(
        "--pending-interval",
        min=0.0,
        help="Seconds between two pending C-GET/C-MOVE responses (default 0.1; 0: one per instance).",
    ),
]


def qrscp(**params: Any) -> None:
    """A PACS in one command: receive instances (C-STORE) into OUT_DIR, index them, and answer C-FIND,
    C-GET and C-MOVE from that index (and Modality Worklist from --worklist), until interrupted."""
    from aiodicom.scp.qr import QueryRetrieveScp

    worklist = params.pop("worklist")
    pending_interval = params.pop("pending_interval")
    if params["out_dir"] is None:
        raise fail("give --out-dir: the archive's folder", 2)

    def make(port: int, **options: Any) -> QueryRetrieveScp:
        return QueryRetrieveScp(port, worklist=worklist, pending_interval=pending_interval, **options)

    serve_storage(params, make)


def _qrscp_signature() -> None:
    """qrscp takes storescp's options (its AE title defaults to QR-SCP) and --remote-ae, --worklist,
    --pending-interval."""
    import inspect

    signature = inspect.signature(storescp, eval_str=True)  # the options as objects, not text
    parameters = []
    for parameter in signature.parameters.values():
        if parameter.name == "ae_title":
            parameter = parameter.replace(default="QR-SCP")
        if parameter.name in ("s3_bucket", "s3_endpoint", "s3_prefix", "s3_region", "workers"):
            continue  # the archive is a folder, served by one process
        parameters.append(parameter)
    extra = {"worklist": WorklistOpt, "pending_interval": PendingIntervalOpt}
    at = next(i for i, p in enumerate(parameters) if p.name == "verbose")
    for name, annotation in extra.items():
        parameter = inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
        )
        parameters.insert(at, parameter)
        at += 1
    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters]
    qrscp.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    qrscp.__annotations__ = {p.name: p.annotation for p in parameters}


_qrscp_signature()
app.command("qrscp")(qrscp)
