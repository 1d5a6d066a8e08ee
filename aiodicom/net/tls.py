"""TLS for DICOM (PS3.15 Annex B): ``ssl.SSLContext`` builders with DCMTK 3.6.7's profiles, and the acceptor's
handshake (its own timeout, a cap on handshakes at a time, failures named and counted).

Two profiles, as DCMTK names them:

- ``"bcp195-nd"`` (the default, DCMTK ``+py``): the Non-downgrading BCP 195 TLS Profile: TLS 1.2 and 1.3, and
  for TLS 1.2 the profile's four suites (ECDHE/DHE with RSA, AES-GCM);
- ``"bcp195-ex"`` (DCMTK ``+pz``): the Extended BCP 195 TLS Profile: TLS 1.2 only, those four suites and the
  two ECDHE-ECDSA AES-GCM ones.

The plain BCP 195 profile (DCMTK ``+px``) is not offered: it still negotiates TLS 1.0 and 1.1 and CBC suites
with static RSA key transport for the sake of old peers, which RFC 8996 deprecates; a peer that can do no
better than that cannot be talked to securely.

A server prefers its own order (the strongest suite first, as DCMTK does); TLS 1.3 uses OpenSSL's suites.
Hostname checking is off unless asked for: DICOM peers are usually addressed by IP and authenticated by
their certificate, issued by a CA that only issues certificates to them.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import collections
import functools
import logging
import os
import ssl
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiodicom.net.transport import set_nodelay

__all__ = [
    "PROFILES",
    "TlsAcceptor",
    "TlsContext",
    "TlsFailure",
    "TlsProfile",
    "client_context",
    "describe_tls_error",
    "remade_server_context",
    "server_context",
    "tls_failure_kind",
    "tls_profile",
]

log = logging.getLogger("aiodicom.tls")

StrPath = str | os.PathLike[str]
#: The type ``tls=`` takes everywhere (for modules outside aiodicom.net, which never import ssl).
TlsContext = ssl.SSLContext
_T = TypeVar("_T")
#: How each context of server_context() was made: a server's worker processes make it again that way.
_MADE: weakref.WeakKeyDictionary[ssl.SSLContext, functools.partial[ssl.SSLContext]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True, slots=True)
class TlsProfile:
    """A TLS security profile: the protocol versions and the TLS 1.2 suites (OpenSSL names), in a client's
    order of preference; a server uses ``server_ciphers`` (strongest first)."""

    name: str
    title: str
    minimum_version: ssl.TLSVersion
    maximum_version: ssl.TLSVersion
    ciphers: tuple[str, ...]
    server_ciphers: tuple[str, ...]


# DCMTK 3.6.7, dcmtls/libsrc/tlsciphr.cc: the suites each profile adds, in the order it adds them (the
# client's order); as a server DCMTK sorts them strongest first (its list is sorted weakest first).
_ND = (
    "ECDHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES256-GCM-SHA384",
)
_EX = (*_ND, "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256")

PROFILES: dict[str, TlsProfile] = {
    "bcp195-nd": TlsProfile(
        "bcp195-nd",
        "Non-downgrading BCP 195 TLS Profile",
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_3,
        _ND,
        (
            "DHE-RSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "DHE-RSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ),
    ),
    "bcp195-ex": TlsProfile(
        "bcp195-ex",
        "Extended BCP 195 TLS Profile",
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_2,
        _EX,
        (
            "DHE-RSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "DHE-RSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ),
    ),
}

_ALIASES = {
    "+py": "bcp195-nd",
    "nd": "bcp195-nd",
    "non-downgrading": "bcp195-nd",
    "profile-bcp195-nd": "bcp195-nd",
    "+pz": "bcp195-ex",
    "ex": "bcp195-ex",
    "extended": "bcp195-ex",
    "profile-bcp195-ex": "bcp195-ex",
}


def tls_profile(name: str | TlsProfile) -> TlsProfile:
    """The profile called ``name``: ``bcp195-nd`` or ``bcp195-ex`` (also DCMTK's ``+py``/``+pz`` and
    ``--profile-bcp195-nd``...; case and ``_`` for ``-`` do not matter). Anything else is a ValueError,
    the plain BCP 195 profile (``bcp195``, ``+px``) with the reason."""
    if isinstance(name, TlsProfile):
        return name
    key = name.strip().lower().replace("_", "-").removeprefix("--")
    key = _ALIASES.get(key, key)
    if key in PROFILES:
        return PROFILES[key]
    if key in ("bcp195", "+px", "profile-bcp195"):
        raise ValueError(
            "the plain BCP 195 TLS profile is not offered: it still allows TLS 1.0 and 1.1 (deprecated by "
            "RFC 8996); use bcp195-nd (TLS 1.2 and 1.3, the default) or bcp195-ex (TLS 1.2 only)"
        )
    raise ValueError(f"unknown TLS profile {name!r}: bcp195-nd (the default) or bcp195-ex")


def _base(prof: TlsProfile, purpose: ssl.Purpose) -> ssl.SSLContext:
    server = purpose is ssl.Purpose.CLIENT_AUTH
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = prof.minimum_version
    ctx.maximum_version = prof.maximum_version
    ctx.set_ciphers(":".join(prof.server_ciphers if server else prof.ciphers))
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if server:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_SINGLE_ECDH_USE | ssl.OP_SINGLE_DH_USE
    return ctx


def _load_ca(ctx: ssl.SSLContext, ca: StrPath) -> None:
    """A CA file (PEM, DCMTK ``+cf``) or a directory of hashed certificates (``c_rehash``, DCMTK ``+cd``)."""
    if os.path.isdir(ca):
        ctx.load_verify_locations(capath=os.fspath(ca))
    else:
        ctx.load_verify_locations(cafile=os.fspath(ca))


def _load_crl(ctx: ssl.SSLContext, crl: StrPath) -> None:
    # as DCMTK's +crl: the leaf's issuer must have a CRL loaded, and a revoked leaf is refused
    ctx.load_verify_locations(cafile=os.fspath(crl))
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def server_context(
    cert: StrPath,
    key: StrPath | None = None,
    ca: StrPath | None = None,
    crl: StrPath | None = None,
    *,
    require_client_cert: bool | None = None,
    profile: str | TlsProfile = "bcp195-nd",
    password: str | None = None,
) -> ssl.SSLContext:
    """An acceptor's context: our certificate (PEM, with its chain) and private key (None: in ``cert``).

    With ``ca`` (a PEM file or a hashed directory) clients' certificates are verified against it and, by
    default, required (DCMTK's ``-rc``); ``require_client_cert=False`` accepts clients without one but still
    verifies those that send one (``-vc``). Without ``ca`` no client certificate is asked for (and asking
    for one is a ValueError). ``crl`` is a PEM file of certificate revocation lists, checked for the
    client's certificate. ``profile`` is ``bcp195-nd`` (default) or ``bcp195-ex``.
    """
    prof = tls_profile(profile)
    ctx = _base(prof, ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.fspath(cert), os.fspath(key) if key is not None else None, password)
    _MADE[ctx] = functools.partial(
        server_context,
        cert,
        key,
        ca,
        crl,
        require_client_cert=require_client_cert,
        profile=prof,
        password=password,
    )
    if require_client_cert is None:
        require_client_cert = ca is not None
    if ca is None:
        if require_client_cert:
            raise ValueError("require_client_cert needs ca: client certificates are verified against it")
        if crl is not None:
            raise ValueError("crl needs ca (client certificates are only verified with one)")
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    _load_ca(ctx, ca)
    if crl is not None:
        _load_crl(ctx, crl)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def remade_server_context(ctx: ssl.SSLContext) -> functools.partial[ssl.SSLContext] | None:
    """How to make ``ctx`` again from its files, if :func:`server_context` made it (else None): what a
    server's worker processes call, since a context cannot be sent to another process. Changes made to
    ``ctx`` after :func:`server_context` returned it are not in what this makes."""
    return _MADE.get(ctx)


def client_context(
    ca: StrPath | None = None,
    cert: StrPath | None = None,
    key: StrPath | None = None,
    crl: StrPath | None = None,
    *,
    check_hostname: bool = False,
    profile: str | TlsProfile = "bcp195-nd",
    password: str | None = None,
) -> ssl.SSLContext:
    """A requestor's context. The server's certificate is always verified: against ``ca`` (a PEM file or a
    hashed directory), else the system's trust store. ``cert``/``key``: our certificate for mutual
    authentication (``key`` None: in ``cert``). ``check_hostname=True`` also checks that the certificate
    names the host connected to (off by default: DICOM peers are usually addressed by IP and trusted by
    their CA). ``crl`` is a PEM file of revocation lists, checked for the server's certificate."""
    prof = tls_profile(profile)
    ctx = _base(prof, ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ca is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        _load_ca(ctx, ca)
    if crl is not None:
        _load_crl(ctx, crl)
    if key is not None and cert is None:
        raise ValueError("key needs cert (our certificate)")
    if cert is not None:
        ctx.load_cert_chain(os.fspath(cert), os.fspath(key) if key is not None else None, password)
    return ctx


# ------------------------------------------------------------------------------------- naming failures

# OpenSSL's verify codes (X509_V_ERR_*) that say why a certificate was not trusted
_VERIFY_CAUSES = {
    2: ("unknown_ca", "unknown CA"),
    9: ("not_yet_valid", "certificate not yet valid"),
    10: ("expired", "certificate expired"),
    18: ("unknown_ca", "self-signed certificate, not trusted"),
    19: ("unknown_ca", "unknown CA (self-signed certificate in the chain)"),
    20: ("unknown_ca", "unknown CA"),
    21: ("unknown_ca", "unknown CA"),
    23: ("revoked", "certificate revoked"),
    3: ("no_crl", "no CRL for the certificate's issuer"),
    12: ("no_crl", "CRL not yet valid"),
    11: ("no_crl", "CRL expired"),
    26: ("bad_certificate", "certificate not for this purpose"),
    62: ("hostname", "hostname mismatch"),
    64: ("hostname", "IP address mismatch"),
}
# OpenSSL's reasons (the [SSL: ...] part) for the rest
_REASON_CAUSES = {
    "UNSUPPORTED_PROTOCOL": ("protocol_version", "protocol version not allowed (TLS 1.2 or newer needed)"),
    "TLSV1_ALERT_PROTOCOL_VERSION": ("protocol_version", "the peer refused the protocol version"),
    "WRONG_SSL_VERSION": ("protocol_version", "protocol version not allowed"),
    "NO_PROTOCOLS_AVAILABLE": ("protocol_version", "no protocol version in common"),
    "NO_SHARED_CIPHER": ("no_shared_cipher", "no cipher suite in common"),
    "SSLV3_ALERT_HANDSHAKE_FAILURE": ("handshake_failure", "the peer refused the handshake"),
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": ("no_certificate", "the client sent no certificate"),
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": ("no_certificate", "the peer requires a client certificate"),
    "TLSV1_ALERT_UNKNOWN_CA": ("unknown_ca", "the peer does not trust our certificate (unknown CA)"),
    "SSLV3_ALERT_BAD_CERTIFICATE": ("bad_certificate", "the peer refused our certificate"),
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": ("expired", "the peer says our certificate expired"),
    "SSLV3_ALERT_CERTIFICATE_REVOKED": ("revoked", "the peer says our certificate is revoked"),
    "TLSV1_ALERT_DECRYPT_ERROR": ("bad_certificate", "the peer could not verify our key"),
    "WRONG_VERSION_NUMBER": ("not_tls", "the peer does not speak TLS"),
    "HTTP_REQUEST": ("not_tls", "the peer does not speak TLS (an HTTP request)"),
    "UNEXPECTED_EOF_WHILE_READING": ("closed", "the peer closed the connection during the handshake"),
}


def tls_failure_kind(exc: BaseException) -> tuple[str, str]:
    """``(kind, description)`` of a TLS handshake failure: a short key to count by (``unknown_ca``,
    ``expired``, ``protocol_version``, ``no_certificate``, ``not_tls``, ``timeout``, ``closed``...) and a
    few words for a person."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        kind, text = _VERIFY_CAUSES.get(exc.verify_code, ("bad_certificate", ""))
        return kind, text or (exc.verify_message or "certificate verify failed")
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _REASON_CAUSES:
            return _REASON_CAUSES[reason]
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return "closed", "the peer closed the connection during the handshake"
        return "other", (reason.replace("_", " ").lower() or str(exc))
    if isinstance(exc, TimeoutError) or (
        isinstance(exc, ConnectionAbortedError) and "longer than" in str(exc)  # asyncio's handshake timeout
    ):
        return "timeout", "the handshake took too long"
    if isinstance(exc, ConnectionError | EOFError):
        return "closed", "the peer closed the connection during the handshake"
    return "other", str(exc) or type(exc).__name__


def describe_tls_error(exc: BaseException) -> str:
    """A one-line cause of a TLS failure, with OpenSSL's own words in parentheses."""
    _, text = tls_failure_kind(exc)
    detail = ""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        detail = exc.verify_message
    elif isinstance(exc, ssl.SSLError) and exc.reason:
        detail = exc.reason.replace("_", " ").lower()
    return f"{text} ({detail})" if detail and detail.lower() not in text.lower() else text


# ------------------------------------------------------------------------------------- the acceptor side


class TlsAcceptor:
    """An acceptor's TLS: each connection is accepted as plain TCP and upgraded here, so that a handshake
    that fails is ours to see: logged once with its cause, counted in :attr:`failures`, its connection
    closed at once. At most ``max_handshakes`` run at a time (each costs about 300 KB); more wait for a
    turn, up to ``wait_timeout`` seconds (then they are closed, counted as ``busy``); each handshake has
    ``handshake_timeout`` seconds."""

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        handshake_timeout: float = 10.0,
        max_handshakes: int = 32,
        wait_timeout: float = 30.0,
        logger: logging.Logger = log,
        on_failure: Callable[[TlsFailure], None] | None = None,
    ) -> None:
        if max_handshakes < 1:
            raise ValueError(f"max_tls_handshakes must be at least 1, not {max_handshakes}")
        if handshake_timeout <= 0:
            raise ValueError(f"tls_handshake_timeout must be more than 0, not {handshake_timeout}")
        self.context = context
        self.handshake_timeout = handshake_timeout
        self.max_handshakes = max_handshakes
        self.wait_timeout = wait_timeout
        self.log = logger
        #: Handshakes that completed, and those that failed by kind (see :func:`tls_failure_kind`).
        self.completed = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.handshaking = 0
        self._slots: asyncio.Semaphore | None = None
        self.on_failure = on_failure

    def protocol(
        self,
        on_ready: Callable[[], asyncio.BaseProtocol],
        on_failed: Callable[[], None],
        spawn: Callable[[asyncio.Task[None]], None],
    ) -> asyncio.Protocol:
        """The protocol for one accepted connection: after the handshake ``on_ready()`` gives the protocol
        that takes the TLS transport over; a failure calls ``on_failed()``. ``spawn`` is handed the task that
        runs the handshake (a server tracks it, to cancel it on stop)."""
        return _Upgrade(self, on_ready, on_failed, spawn)

    def _failed(self, peer: tuple[str, int], exc: BaseException) -> None:
        kind, _ = tls_failure_kind(exc)
        self._count(TlsFailure(peer[0], peer[1], kind, describe_tls_error(exc)))

    def _count(self, failure: TlsFailure) -> None:
        self.failures[failure.kind] += 1
        self.log.warning("%s", failure.message)
        if self.on_failure is not None:
            self.on_failure(failure)


@dataclass(frozen=True, slots=True)
class TlsFailure:
    """A TLS handshake that failed on a server (the event ``tls_failure``): the peer, the kind counted in
    ``tls_failures`` (see :func:`tls_failure_kind`) and the cause in words."""

    peer_host: str
    peer_port: int
    kind: str
    reason: str

    @property
    def message(self) -> str:
        return f"TLS handshake with {self.peer_host}:{self.peer_port} failed: {self.reason}"


class _Upgrade(asyncio.Protocol):
    """A connection until its handshake is done: then the real protocol gets the TLS transport."""

    def __init__(
        self,
        acceptor: TlsAcceptor,
        on_ready: Callable[[], asyncio.BaseProtocol],
        on_failed: Callable[[], None],
        spawn: Callable[[asyncio.Task[None]], None],
    ) -> None:
        self.acceptor = acceptor
        self.on_ready = on_ready
        self.on_failed = on_failed
        self.spawn = spawn
        self.peer: tuple[str, int] = ("", 0)
        self.raw: asyncio.Transport | None = None
        self.target: asyncio.BaseProtocol | None = None
        # what the socket delivered before the TLS layer took over (uvloop starts reading after
        # connection_made whatever it asked), for the TLS layer
        self.pre_tls: list[bytes] = []
        self.tls_started = False
        # what the TLS layer delivers between the end of the handshake and the hand-over
        self.early: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw: asyncio.Transport = transport  # type: ignore[assignment]
        self.raw = raw
        raw.pause_reading()  # the ClientHello stays in the socket until the TLS layer reads it
        set_nodelay(raw)
        peer = raw.get_extra_info("peername")
        if peer:
            self.peer = (str(peer[0]), int(peer[1]))
        self.spawn(asyncio.get_running_loop().create_task(self._handshake(raw)))

    async def _handshake(self, raw: asyncio.Transport) -> None:
        acceptor = self.acceptor
        loop = asyncio.get_running_loop()
        if acceptor._slots is None:
            acceptor._slots = asyncio.Semaphore(acceptor.max_handshakes)
        slots = acceptor._slots
        try:
            async with asyncio.timeout(acceptor.wait_timeout):
                await slots.acquire()
        except TimeoutError:
            raw.abort()
            running, waited = acceptor.max_handshakes, acceptor.wait_timeout
            reason = f"not started: {running} handshakes running for {waited:.0f} s (max_tls_handshakes)"
            acceptor._count(TlsFailure(*self.peer, "busy", reason))
            self.on_failed()
            return
        except BaseException:
            raw.abort()
            self.on_failed()
            raise
        acceptor.handshaking += 1
        try:
            if self.lost is not None or raw.is_closing():
                raise ConnectionResetError("the connection closed before the handshake")
            pre, self.pre_tls = b"".join(self.pre_tls), []
            tls = await _start_tls(
                loop, raw, self, acceptor.context, acceptor.handshake_timeout, pre, self._started
            )
        except (OSError, EOFError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            raw.abort()
            acceptor._failed(self.peer, exc)
            self.on_failed()
            return
        except BaseException:
            raw.abort()
            self.on_failed()
            raise
        finally:
            acceptor.handshaking -= 1
            slots.release()
        if tls is None:  # the connection closed as the handshake ended
            acceptor._failed(self.peer, ConnectionResetError("connection closed"))
            self.on_failed()
            return
        acceptor.completed += 1
        target = self.on_ready()
        self.target = target
        tls.set_protocol(target)
        target.connection_made(tls)
        replay(target, b"".join(self.early))
        self.early.clear()
        if (
            self.eof
            and isinstance(target, asyncio.Protocol | asyncio.BufferedProtocol)
            and not target.eof_received()
        ):
            tls.close()
        if self.lost is not None:
            target.connection_lost(self.lost[0])

    def _started(self) -> None:
        self.tls_started = True

    # the socket's calls until the TLS layer takes over, then the TLS layer's until the hand-over (and
    # connection_lost, which it schedules with us bound)

    def data_received(self, data: bytes) -> None:
        if not self.tls_started:
            self.pre_tls.append(bytes(data))
            if self.raw is not None:  # one read at most: a peer cannot make us buffer more
                self.raw.pause_reading()
        elif self.target is not None:
            replay(self.target, data)
        else:
            self.early.append(bytes(data))

    def eof_received(self) -> bool:
        if self.target is not None and isinstance(self.target, asyncio.Protocol | asyncio.BufferedProtocol):
            return bool(self.target.eof_received())
        if self.tls_started:
            self.eof = True
        return True  # keep the transport open until the hand-over decides (or the handshake fails)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.target is not None:
            self.target.connection_lost(exc)
        else:
            self.lost = (exc,)


class _AlertingSSLProtocol(asyncio.sslproto.SSLProtocol):
    """asyncio's TLS layer, which closes the connection of a failed handshake without sending the alert
    OpenSSL wrote (the peer sees the connection reset, not why): the alert goes out first."""

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            try:
                self._process_outgoing()  # type: ignore[attr-defined]
            except Exception:  # the connection is going away anyway
                log.debug("could not send the TLS alert", exc_info=True)
        super()._on_handshake_complete(handshake_exc)


async def _start_tls(
    loop: asyncio.AbstractEventLoop,
    raw: asyncio.Transport,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    timeout: float,
    pre: bytes,
    started: Callable[[], None],
) -> asyncio.Transport | None:
    """``loop.start_tls(..., server_side=True)`` with :class:`_AlertingSSLProtocol` (as
    ``BaseEventLoop.start_tls`` does it, on asyncio's transports and uvloop's); a loop whose transports it
    cannot drive uses its own ``start_tls``. ``pre`` (bytes
    read before) goes to the TLS layer first; ``started()`` is called once it is the raw transport's
    protocol."""
    if not (
        hasattr(raw, "_force_close")  # asyncio's transports and uvloop's (whose own TLS sends no alert)
        and hasattr(raw, "set_protocol")
        and hasattr(asyncio.sslproto.SSLProtocol, "_on_handshake_complete")
        and hasattr(asyncio.sslproto.SSLProtocol, "_process_outgoing")
    ):

        def took_over() -> None:  # start_tls set its protocol and scheduled its connection_made
            started()
            if pre:
                loop.call_soon(replay, raw.get_protocol(), pre)

        coro = loop.start_tls(raw, protocol, context, server_side=True, ssl_handshake_timeout=timeout)
        return await _stepped(coro, took_over)
    waiter = loop.create_future()
    tls = _AlertingSSLProtocol(
        loop,
        protocol,
        context,
        waiter,
        server_side=True,
        ssl_handshake_timeout=timeout,  # type: ignore[arg-type]  # typeshed says int; asyncio takes a float
        call_connection_made=False,
    )
    raw.pause_reading()
    started()
    raw.set_protocol(tls)
    made = loop.call_soon(tls.connection_made, raw)
    resumed = loop.call_soon(raw.resume_reading)
    if pre:
        loop.call_soon(replay, tls, pre)
    try:
        await waiter
    except BaseException:
        raw.close()
        made.cancel()
        resumed.cancel()
        raise
    transport: asyncio.Transport | None = tls._app_transport
    return transport


async def _stepped(coro: Coroutine[Any, Any, _T], after_first_step: Callable[[], None]) -> _T:
    """Await ``coro``, calling ``after_first_step()`` as soon as it first suspends: ``start_tls`` swaps
    the transport's protocol synchronously, and bytes read before must reach the new one before the
    socket is read again."""
    first = True
    while True:
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if first:
            first = False
            after_first_step()
        if yielded is None:  # a bare yield
            await asyncio.sleep(0)
            continue
        # a future: wait for it as a task would; the coroutine reads its outcome (or its cancellation)
        # when it resumes
        yielded._asyncio_future_blocking = False
        try:
            await yielded
        except asyncio.CancelledError:
            if not yielded.done():
                yielded.cancel()
        except Exception:
            pass


def replay(target: Any, data: bytes) -> None:
    """Hand bytes that arrived before a hand-over to the protocol ``target``, as its transport would."""
    if not data:
        return
    if hasattr(target, "get_buffer"):
        view = memoryview(data)
        while view:
            buf = memoryview(target.get_buffer(len(view)))
            n = min(len(buf), len(view))
            if n == 0:
                raise RuntimeError("the protocol gave an empty buffer")
            buf[:n] = view[:n]
            target.buffer_updated(n)
            view = view[n:]
    else:
        target.data_received(data)
