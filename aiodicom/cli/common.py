"""The ``aiodicom`` command: one verb per service, the same option names for the same things.

Every verb exits 0 on success and otherwise prints one line saying why on stderr and exits non-zero:
1 for a DICOM failure (rejected, aborted, failure status), 2 for bad usage, 3 when the peer is unreachable.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from aiodicom import __version__
from aiodicom.cli.params import Group
from aiodicom.errors import DicomError, PeerUnreachable

app = typer.Typer(
    cls=Group,  # converts the plain option values itself (see aiodicom.cli.params)
    name="aiodicom",
    help="asyncio DICOM networking: echo, receive and send.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_T = TypeVar("_T")


def verb_app(name: str) -> typer.Typer:
    """The app with the verb ``name`` alone (the whole app when no such verb is registered).

    Typer builds the options of every registered verb before it runs one; for one verb that is a tenth of
    the work. The verb runs exactly as in the whole app: same group, options, usage lines and help.
    """
    chosen = [c for c in app.registered_commands if _verb_name(c) == name]
    if len(chosen) != 1:
        return app
    alone = copy.copy(app)
    alone.registered_commands = chosen
    return alone


def _verb_name(command: Any) -> str:
    return str(command.name or command.callback.__name__.lower().replace("_", "-"))  # as Typer names it


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


def s3_config_from(bucket: str | None, endpoint: str | None, prefix: str, region: str | None) -> Any:
    if bucket is None:
        if endpoint is not None:
            raise fail("--s3-endpoint needs --s3-bucket", 2)
        return None
    from aiodicom.storage.s3 import S3Config

    try:
        return S3Config(bucket, region=region, endpoint=endpoint, prefix=prefix)
    except ValueError as exc:
        raise fail(str(exc), 2) from None


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
DrainTimeout = Annotated[
    float,
    typer.Option(
        "--drain-timeout",
        min=0,
        help="On SIGTERM, seconds each association may take to finish the instance it is receiving.",
    ),
]

# Converting what a receiver stores (storescp, get, move).
Transcode = Annotated[
    str | None,
    typer.Option(
        "--transcode",
        help="Store every instance converted to this transfer syntax (UID or name, e.g. "
        "ExplicitVRLittleEndian or JPEGLSLossless).",
    ),
]
AllowLossy = Annotated[
    bool,
    typer.Option(
        "--allow-lossy", help="Allow a lossy syntax (each instance converted becomes a new instance)."
    ),
]
KeepOriginal = Annotated[
    bool,
    typer.Option(
        "--keep-original-on-transcode-failure",
        help="Store an instance that cannot be converted as received, instead of refusing it.",
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


# TLS (PS3.15 Annex B): the server verbs take --tls-cert/--tls-key [--tls-ca...], the client verbs --tls or
# any of --tls-ca/--tls-cert/--tls-key; both --tls-profile. Contexts are built by aiodicom.net.tls.
TlsFlag = Annotated[
    bool, typer.Option("--tls", help="Connect over TLS, trusting the system's CAs (or --tls-ca).")
]
TlsCert = Annotated[
    str | None, typer.Option("--tls-cert", help="Our certificate (PEM, with its chain) for TLS.")
]
TlsKey = Annotated[
    str | None, typer.Option("--tls-key", help="The private key of --tls-cert (PEM; default: in the cert).")
]
TlsCa = Annotated[
    str | None,
    typer.Option(
        "--tls-ca",
        help="CA certificates (PEM file or hashed directory) that the peer's certificate must chain to; a "
        "server with it requires client certificates (see --tls-optional-client-cert).",
    ),
]
TlsProfileOpt = Annotated[
    str,
    typer.Option(
        "--tls-profile",
        help="bcp195-nd (TLS 1.2 and 1.3, DCMTK's +py, the default) or bcp195-ex (TLS 1.2 only, +pz).",
    ),
]
TlsCrl = Annotated[
    str | None, typer.Option("--tls-crl", help="Certificate revocation lists (PEM) checked for the peer.")
]
TlsOptionalClientCert = Annotated[
    bool,
    typer.Option(
        "--tls-optional-client-cert",
        help="With --tls-ca: accept clients without a certificate (those that send one are still verified).",
    ),
]
ReceiveTlsCert = Annotated[
    str | None, typer.Option("--receive-tls-cert", help="The built-in receiver's TLS certificate (PEM).")
]
ReceiveTlsKey = Annotated[
    str | None, typer.Option("--receive-tls-key", help="The private key of --receive-tls-cert (PEM).")
]
ReceiveTlsCa = Annotated[
    str | None,
    typer.Option(
        "--receive-tls-ca", help="CA certificates the senders' certificates must chain to (required)."
    ),
]


def server_tls_from(
    cert: str | None,
    key: str | None,
    ca: str | None,
    optional_client_cert: bool = False,
    profile: str = "bcp195-nd",
    crl: str | None = None,
    *,
    prefix: str = "--tls",
) -> Any:
    """The server's ``ssl.SSLContext`` from the TLS options (None without --tls-cert); bad usage exits 2."""
    from aiodicom.net.tls import server_context

    if cert is None:
        others = {f"{prefix}-key": key, f"{prefix}-ca": ca, f"{prefix}-crl": crl}
        given = [name for name, value in others.items() if value is not None]
        if given or optional_client_cert:
            raise fail(f"{', '.join(given) or '--tls-optional-client-cert'} needs {prefix}-cert", 2)
        return None
    if optional_client_cert and ca is None:
        raise fail("--tls-optional-client-cert needs --tls-ca", 2)
    try:
        required = ca is not None and not optional_client_cert
        return server_context(cert, key, ca, crl, require_client_cert=required, profile=profile)
    except OSError as exc:
        raise fail(f"TLS: cannot load {exc.filename or cert}: {exc.strerror or exc}", 2) from None
    except ValueError as exc:
        raise fail(f"TLS: {exc}", 2) from None


def client_tls_from(
    tls: bool, ca: str | None, cert: str | None, key: str | None, profile: str = "bcp195-nd"
) -> Any:
    """The client's ``ssl.SSLContext`` from the TLS options (None without any of them); bad usage exits 2."""
    from aiodicom.net.tls import client_context

    if not (tls or ca or cert or key):
        return None
    if key is not None and cert is None:
        raise fail("--tls-key needs --tls-cert", 2)
    try:
        return client_context(ca, cert, key, profile=profile)
    except OSError as exc:
        raise fail(f"TLS: cannot load {exc.filename or ca or cert}: {exc.strerror or exc}", 2) from None
    except ValueError as exc:
        raise fail(f"TLS: {exc}", 2) from None


def identity_from_options(
    username: str | None,
    password_file: str | None,
    identity_type: str | None,
    identity_file: str | None,
    response: bool,
) -> Any:
    """The UserIdentity that the identity options describe (None without them); bad usage exits 2."""
    from aiodicom.net.identity import IdentityKind, UserIdentity

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
        raise fail(f"cannot read {exc.filename}: {exc.strerror}", 2) from None
    except (ValueError, TypeError) as exc:
        raise fail(str(exc), 2) from None


def _read_password(password_file: str | None) -> str | None:
    if password_file is not None:
        with open(password_file, encoding="utf-8") as fp:
            password = fp.readline().rstrip("\r\n")
        if not password:
            raise ValueError(f"{password_file}: the first line is empty (no password)")
        return password
    return os.environ.get(PASSWORD_ENV) or None


def dimse_timeout_of(timeout: float, dimse_timeout: float | None) -> float:
    if dimse_timeout is None:
        return timeout
    if dimse_timeout <= 0:
        raise fail("--dimse-timeout must be more than 0 seconds", 2)
    return dimse_timeout


def idle_timeout_option(idle_timeout: float | None) -> dict[str, Any]:
    if idle_timeout is None:
        return {}
    if idle_timeout < 0:
        raise fail("--idle-timeout cannot be negative", 2)
    return {"idle_timeout": idle_timeout or None}


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"aiodicom: {message}", err=True)
    return typer.Exit(code)


#: The event loop the verbs run on: "auto" (uvloop when installed), "asyncio" or "uvloop" (``--loop``).
LOOP = "auto"


def choose_loop(value: str) -> None:
    """``aiodicom --loop NAME VERB ...``: exits 2 for an unknown name, or uvloop when it is not installed."""
    global LOOP
    if value not in ("asyncio", "uvloop"):
        typer.echo(f"aiodicom: --loop takes asyncio or uvloop, not {value!r}", err=True)
        raise SystemExit(2)
    if value == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            typer.echo(
                "aiodicom: --loop uvloop: uvloop is not installed (pip install 'aiodicom[uvloop]')", err=True
            )
            raise SystemExit(2) from None
    LOOP = value


def run_async(coro_fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine (on uvloop when installed, unless ``--loop asyncio``), mapping errors to one line and
    an exit status."""
    import asyncio  # here: --help and bad usage never start a loop

    runner: Callable[[Any], Any] = asyncio.run
    if LOOP != "asyncio":
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
    logging.getLogger("aiodicom.cli").info(
        "event loop: %s", "uvloop" if runner is not asyncio.run else "asyncio"
    )
    try:
        return runner(coro_fn())  # type: ignore[no-any-return]
    except PeerUnreachable as exc:
        raise fail(str(exc), 3) from None
    except DicomError as exc:
        raise fail(str(exc), 1) from None
    except TimeoutError:  # an operation that gives up on its own says so; this is one that did not
        raise fail("no answer in time (--timeout, --dimse-timeout): the peer went silent", 1) from None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


async def serve_until_stopped(server: Any) -> None:
    """Serve until SIGTERM (systemd's and containers' stop signal) or Ctrl+C, then stop gracefully: no new
    associations, each association finishes the message it is handling, pending studies complete."""
    import asyncio
    import signal

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
