"""The ``commit`` verb: ask a peer to commit instances it stored (Storage Commitment Push Model); also what
``store --commit`` prints."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from aiodicom.cli.common import (
    CalledAe,
    DimseTimeout,
    Json,
    TlsCa,
    TlsCert,
    TlsFlag,
    TlsKey,
    TlsProfileOpt,
    Verbose,
    app,
    client_tls_from,
    dimse_timeout_of,
    fail,
    run_async,
    setup_logging,
)

ReceivePort = Annotated[
    int | None,
    typer.Option(
        "--receive-port",
        min=1,
        max=65535,
        help="Also receive the report on a new association, on this port (the peer must know our AE title "
        "with this host and port); without it, only on the association of the request.",
    ),
]
CommitTimeout = Annotated[
    float,
    typer.Option("--commit-timeout", min=0.1, help="Seconds to wait for the storage commitment report."),
]


def commit_json(result: Any, error: str | None) -> dict[str, Any]:
    """A storage commitment result (or why there is none) as JSON."""
    if result is None:
        return {"error": error}
    return {
        "transaction_uid": result.transaction_uid,
        "committed": [r.sop_instance_uid for r in result.committed],
        "failed": [
            {"sop_instance_uid": f.sop_instance_uid, "sop_class_uid": f.sop_class_uid, "reason": f.reason}
            for f in result.failed
        ],
        "same_association": result.same_association,
    }


def print_commit(result: Any, error: str | None) -> None:
    """A storage commitment result for people: the counts, then each failure with its reason."""
    if result is None:
        typer.echo(f"storage commitment failed: {error}", err=True)
        return
    typer.echo(result.message)
    for failure in result.failed:
        typer.echo(f"not committed: {failure.message}", err=True)


@app.command()
def commit(
    addr: Annotated[str, typer.Argument(help="host:port, AE@host:port or \\[v6]:port")],
    files: Annotated[
        list[str], typer.Argument(help="The instances to commit: files or folders (recursive).")
    ],
    calling_ae: Annotated[
        str, typer.Option("--calling-ae", "-aet", help="Our AE title (the peer reports to it).")
    ] = "COMMIT-SCU",
    called_ae: CalledAe = None,
    receive_port: ReceivePort = None,
    commit_timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the report.")
    ] = 60.0,
    connect_timeout: Annotated[
        float, typer.Option("--connect-timeout", min=0.1, help="Connection and association timeout.")
    ] = 30.0,
    dimse_timeout: DimseTimeout = None,
    tls: TlsFlag = False,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_profile: TlsProfileOpt = "bcp195-nd",
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Ask a peer to commit instances it stored (Storage Commitment); exits 0 only when every one is
    committed, and lists the others with their reasons."""
    from aiodicom.dataset.files import looks_like_dicom
    from aiodicom.scu.commitment import StorageCommitmentScu

    setup_logging(verbose)
    tls_context = client_tls_from(tls, tls_ca, tls_cert, tls_key, tls_profile)
    paths: list[str] = []
    for item in files:
        if os.path.isdir(item):
            for root, _, names in os.walk(item):
                paths.extend(
                    os.path.join(root, n) for n in sorted(names) if looks_like_dicom(os.path.join(root, n))
                )
        elif os.path.exists(item):
            paths.append(item)
        else:
            raise fail(f"{item}: no such file or folder", 2)
    try:
        scu = StorageCommitmentScu(
            addr,
            calling_ae_title=calling_ae,
            called_ae_title=called_ae,
            receive=None if receive_port is None else {"port": receive_port},
            timeout=commit_timeout,
            connect_timeout=connect_timeout,
            acse_timeout=connect_timeout,
            dimse_timeout=dimse_timeout_of(connect_timeout, dimse_timeout),
            verbose=verbose,
            tls=tls_context,
        )
        from aiodicom.services.commitment import reference_of

        references = [reference_of(path) for path in paths]
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if not references:
        raise fail("no DICOM file to commit", 2)

    async def run() -> tuple[Any, str | None]:
        try:
            return await scu.commit(references), None
        except TimeoutError as exc:  # the report did not come: said as such, not as a silent peer
            return None, str(exc)

    result, error = run_async(run)
    if as_json:
        typer.echo(json.dumps(commit_json(result, error)))
    else:
        print_commit(result, error)
    if result is None:
        raise fail(error or "no report", 1)
    if result.failed:
        raise fail(f"{len(result.failed)} of {len(references)} instances not committed", 1)
