"""The ``mpps`` verb: report a Modality Performed Procedure Step (N-CREATE, N-SET)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from aiodicom.cli.common import (
    CalledAe,
    CallingAe,
    DimseTimeout,
    Json,
    Timeout,
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


@app.command()
def mpps(
    action: Annotated[str, typer.Argument(help="create (N-CREATE, IN PROGRESS) or set (N-SET).")],
    addr: Annotated[str, typer.Argument(help="host:port, AE@host:port or \\[v6]:port")],
    uid: Annotated[
        str | None, typer.Argument(help="set: the SOP Instance UID create printed.", show_default=False)
    ] = None,
    keys: Annotated[
        list[str] | None,
        typer.Option("--key", "-k", help="An attribute as KEYWORD=VALUE (repeat), e.g. -k Modality=CT."),
    ] = None,
    patient_id: Annotated[str | None, typer.Option("--patient-id", help="create: Patient ID.")] = None,
    patient_name: Annotated[
        str | None, typer.Option("--patient-name", help="create: Patient's Name.")
    ] = None,
    modality: Annotated[str | None, typer.Option("--modality", help="create: Modality (required).")] = None,
    study_uid: Annotated[
        str | None, typer.Option("--study-uid", help="create: the scheduled step's Study Instance UID.")
    ] = None,
    sop_instance_uid: Annotated[
        str | None, typer.Option("--sop-instance-uid", help="create: our UID (default: the SCP's).")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="set: IN PROGRESS, COMPLETED or DISCONTINUED.")
    ] = None,
    calling_ae: CallingAe = "MPPS-SCU",
    called_ae: CalledAe = None,
    timeout: Timeout = 30.0,
    dimse_timeout: DimseTimeout = None,
    tls: TlsFlag = False,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_profile: TlsProfileOpt = "bcp195-nd",
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Report a procedure step: `mpps create ADDR --modality CT --patient-id P1` prints the new MPPS's
    SOP Instance UID; `mpps set ADDR UID --status COMPLETED` ends it."""
    from aiodicom.scu.mpps import MppsScu
    from aiodicom.services.mpps import keyword_values

    setup_logging(verbose)
    action = action.lower()
    if action not in ("create", "set"):
        raise fail(f"the action is create or set, not {action!r}", 2)
    if action == "set" and not uid:
        raise fail("mpps set needs the SOP Instance UID (ADDR UID)", 2)
    if action == "create" and uid:
        raise fail("mpps create takes no UID argument (--sop-instance-uid names ours)", 2)
    try:
        attributes = keyword_values(keys or ())
        scu = MppsScu(
            addr,
            calling_ae_title=calling_ae,
            called_ae_title=called_ae,
            connect_timeout=timeout,
            acse_timeout=timeout,
            dimse_timeout=dimse_timeout_of(timeout, dimse_timeout),
            verbose=verbose,
            tls=client_tls_from(tls, tls_ca, tls_cert, tls_key, tls_profile),
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None

    async def run() -> Any:
        if action == "create":
            return await scu.create(
                attributes,
                sop_instance_uid=sop_instance_uid,
                patient_id=patient_id,
                patient_name=patient_name,
                modality=modality,
                study_instance_uid=study_uid,
            )
        assert uid is not None
        return await scu.set(uid, attributes, status=status)

    result = run_async(run)  # a refusal (MppsRefused) exits 1 with the status and the SCP's comment
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "sop_instance_uid": result.sop_instance_uid,
                    "performed_procedure_step_status": result.performed_procedure_step_status,
                    "status": result.status,
                }
            )
        )
    else:
        typer.echo(result.sop_instance_uid)
