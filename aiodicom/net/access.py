"""Who may connect, who may associate, and how many associations one peer may hold.

A server decides in three steps, cheapest first:

1. **At accept time** (before a byte is read, before any TLS work): the peer's address against
   ``allowed_hosts`` (addresses and networks), then the ``on_connection(peer)`` hook. A refused connection
   is closed at once (it never takes a pending-connection slot), counted, and logged once per address per
   minute. So is one from an address that already holds its share of the connections that have not
   associated yet (the server's ``max_pending_per_peer``, counted in ``refused_pending``).
2. **After the A-ASSOCIATE-RQ**: the AE title checks (:func:`aiodicom.ul.negotiation.check_request`), then
   the user identity (PS3.7 D.3.3.7: ``require_user_identity`` and the ``on_user_identity`` hook), then the
   ``on_association_request`` hook, which sees the peer, the AE titles and the identity.
3. **The limits**, last and synchronously with the admission: ``max_associations`` in all and
   ``max_associations_per_peer`` per peer address, answered A-ASSOCIATE-RJ (2, 3, 2), transient, so that a
   client retries later.

Hooks may be plain functions or coroutine functions. ``on_connection`` and ``on_association_request`` are
filters: ``False`` (or a :class:`Rejection`) refuses, anything else lets the peer go on. ``on_user_identity``
authenticates and denies by default: only ``True`` or the server response (bytes) accept; ``False``,
``None`` or an exception reject with A-ASSOCIATE-RJ (1, 2, 1), as PS3.7 D.3.3.7.3 prescribes.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from aiodicom.errors import describe_rejection
from aiodicom.net.identity import IdentityKind
from aiodicom.net.tls import replay
from aiodicom.ul.negotiation import (
    REASON_LOCAL_LIMIT_EXCEEDED,
    REASON_NO_REASON,
    REJECTED_PERMANENT,
    REJECTED_TRANSIENT,
    SOURCE_ACSE,
    SOURCE_PRESENTATION,
    SOURCE_SERVICE_USER,
)
from aiodicom.ul.pdu import AAssociateRJ, AAssociateRQ

__all__ = [
    "DEFAULT_MAX_ASSOCIATIONS_PER_PEER",
    "AccessControl",
    "AllowedHost",
    "AssociationRequest",
    "IdentityRequest",
    "Network",
    "Rejection",
    "host_allowed",
    "parse_allowed_hosts",
    "peer_key",
]

log = logging.getLogger("aiodicom.server")

#: A quarter of the default 64 associations: one busy or hostile client leaves room for at least three
#: others, while a sender with ``concurrency`` up to 16 (the usual router settings) is never refused.
DEFAULT_MAX_ASSOCIATIONS_PER_PEER = 16

#: Refusals of one address are logged at most this often (seconds); the others are counted.
_LOG_INTERVAL = 60.0
_LOG_MEMORY = 4096  # addresses remembered for that; older entries are forgotten beyond it

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: An entry of ``allowed_hosts``: ``"10.0.0.5"``, ``"10.0.0.0/8"``, ``"fd00::/8"`` or an ipaddress object.
AllowedHost = str | Network | ipaddress.IPv4Address | ipaddress.IPv6Address
Peer = tuple[str, int]


# ------------------------------------------------------------------------------------------ addresses


def parse_allowed_hosts(values: Iterable[AllowedHost] | None) -> tuple[Network, ...] | None:
    """``allowed_hosts`` as networks: ``"10.0.0.5"``, ``"10.0.0.0/8"``, ``"::1"``, ``"fd00::/8"``, or
    :mod:`ipaddress` objects. A host name is a ValueError: names are not resolved at accept time (a DNS
    answer is not an identity)."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    networks: list[Network] = []
    for value in values:
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(value)
            continue
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            networks.append(ipaddress.ip_network(value))
            continue
        text = str(value).strip()
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"allowed host {value!r} is not an address or a network (e.g. 10.0.0.5, 10.0.0.0/8, "
                "fd00::/8); host names are not accepted"
            ) from None
        if network.version == 6 and network.prefixlen >= 96 and network[0].ipv4_mapped is not None:
            v4 = network[0].ipv4_mapped  # ::ffff:10.0.0.0/104 is the IPv4 network a dual-stack socket sees
            network = ipaddress.ip_network(f"{v4}/{network.prefixlen - 96}", strict=False)
        networks.append(network)
    return tuple(networks)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: the scope is not the address
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # an IPv4 peer of a dual-stack (::) listener
    return address


def peer_key(host: str) -> str:
    """The address a limit counts by: IPv4-mapped IPv6 addresses as IPv4, without a scope."""
    if ":" not in host and "%" not in host:
        return host  # IPv4 as the socket gives it (or no address): nothing to parse, once per connection
    address = _address(host)
    return host if address is None else str(address)


def host_allowed(host: str, networks: tuple[Network, ...] | None) -> bool:
    """Whether a peer address is in ``networks`` (None: every address is)."""
    if networks is None:
        return True
    address = _address(host)
    return address is not None and any(address in network for network in networks)


# --------------------------------------------------------------------------------------- what hooks see


@dataclass(frozen=True, slots=True)
class IdentityRequest:
    """A requestor's user identity (PS3.7 D.3.3.7.1), as the ``on_user_identity`` hook receives it.

    ``kind`` is None for a type that PS3.7 does not define (``identity_type`` holds its number);
    ``primary`` is the username, Kerberos ticket, SAML assertion or JWT, ``secondary`` the password (else
    empty). Its ``repr`` never shows a password or token.
    """

    identity_type: int
    primary: bytes
    secondary: bytes
    response_requested: bool
    peer: Peer
    calling_ae_title: str = ""
    called_ae_title: str = ""

    @classmethod
    def of(cls, rq: AAssociateRQ, peer: Peer) -> IdentityRequest | None:
        """The identity an A-ASSOCIATE-RQ carries (None: it carries none)."""
        item = rq.user_information.user_identity_rq
        if item is None:
            return None
        return cls(
            item.identity_type,
            item.primary_field,
            item.secondary_field,
            item.positive_response_requested,
            peer,
            rq.calling_ae_title,
            rq.called_ae_title,
        )

    @property
    def kind(self) -> IdentityKind | None:
        try:
            return IdentityKind(self.identity_type)
        except ValueError:
            return None

    @property
    def username(self) -> str | None:
        """The username (types 1 and 2), decoded as UTF-8; None for the other types."""
        if self.kind not in (IdentityKind.USERNAME, IdentityKind.USERNAME_PASSWORD):
            return None
        return self.primary.decode("utf-8", "replace")

    @property
    def password(self) -> str | None:
        """The password (type 2), decoded as UTF-8; None for the other types."""
        if self.kind is not IdentityKind.USERNAME_PASSWORD:
            return None
        return self.secondary.decode("utf-8", "replace")

    def __repr__(self) -> str:
        kind = self.kind.name.lower() if self.kind is not None else f"type {self.identity_type}"
        shown = repr(self.username) if self.username is not None else f"<{len(self.primary)} bytes>"
        return (
            f"IdentityRequest({kind}, {shown}{', password=<hidden>' if self.secondary else ''}, "
            f"response_requested={self.response_requested}, peer={self.peer[0]}:{self.peer[1]})"
        )


@dataclass(frozen=True, slots=True)
class AssociationRequest:
    """What the ``on_association_request`` hook sees: the peer, the AE titles, the user identity (None
    without one; ``identity_verified`` when an ``on_user_identity`` hook accepted it) and the request."""

    peer: Peer
    calling_ae_title: str
    called_ae_title: str
    identity: IdentityRequest | None
    identity_verified: bool
    request: AAssociateRQ


@dataclass(frozen=True, slots=True)
class Rejection:
    """An A-ASSOCIATE-RJ a hook asks for (PS3.8 Table 9-21); the default is permanent, by the service
    user, no reason given. ``Rejection(2)`` is transient; ``reason=3`` calling AE not recognized."""

    result: int = REJECTED_PERMANENT
    source: int = SOURCE_SERVICE_USER
    reason: int = REASON_NO_REASON

    def __post_init__(self) -> None:
        if self.result not in (1, 2) or self.source not in (1, 2, 3) or not 0 <= self.reason <= 255:
            raise ValueError(f"not an A-ASSOCIATE-RJ: result {self.result}, source {self.source}")

    def to_pdu(self) -> AAssociateRJ:
        return AAssociateRJ(self.result, self.source, self.reason)

    def __str__(self) -> str:
        return describe_rejection(self.result, self.source, self.reason)


ConnectionHook = Callable[[Peer], "bool | Rejection | Awaitable[bool | Rejection | None] | None"]
IdentityHook = Callable[[IdentityRequest], "bool | bytes | Awaitable[bool | bytes | None] | None"]
AssociationHook = Callable[
    [AssociationRequest], "bool | Rejection | Awaitable[bool | Rejection | None] | None"
]

IDENTITY_REJECTED = AAssociateRJ(REJECTED_PERMANENT, SOURCE_ACSE, REASON_NO_REASON)  # PS3.7 D.3.3.7.3
LIMIT_REACHED = AAssociateRJ(REJECTED_TRANSIENT, SOURCE_PRESENTATION, REASON_LOCAL_LIMIT_EXCEEDED)
_HOOK_FAILED = AAssociateRJ(REJECTED_TRANSIENT, SOURCE_SERVICE_USER, REASON_NO_REASON)
_SERVER_RESPONSE_MAX = 0xFF00  # the whole user-information item must still fit its 16-bit length


async def _call(hook: Callable[[Any], Any], argument: object, timeout: float) -> Any:
    result = hook(argument)
    if inspect.isawaitable(result):
        async with asyncio.timeout(timeout or None):
            result = await result
    return result


# -------------------------------------------------------------------------------------- the decisions


class AccessControl:
    """A server's access settings and what they refused (``refused_connections``, ``refused_pending``,
    ``rejected`` by (result, source, reason)). Built by :class:`~aiodicom.net.server.DicomServer` from its
    options."""

    def __init__(
        self,
        *,
        allowed_hosts: Iterable[AllowedHost] | None = None,
        on_connection: ConnectionHook | None = None,
        on_user_identity: IdentityHook | None = None,
        require_user_identity: bool = False,
        on_association_request: AssociationHook | None = None,
        max_associations_per_peer: int | None = DEFAULT_MAX_ASSOCIATIONS_PER_PEER,
        hook_timeout: float = 30.0,
        max_screening: int = 256,
        logger: logging.Logger = log,
    ) -> None:
        if max_associations_per_peer is not None and max_associations_per_peer < 1:
            raise ValueError(f"max_associations_per_peer must be at least 1, not {max_associations_per_peer}")
        for name, hook in (
            ("on_connection", on_connection),
            ("on_user_identity", on_user_identity),
            ("on_association_request", on_association_request),
        ):
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} takes a function, not {type(hook).__name__}")
        self.allowed_hosts = parse_allowed_hosts(allowed_hosts)
        self.on_connection = on_connection
        self.on_user_identity = on_user_identity
        self.require_user_identity = require_user_identity
        self.on_association_request = on_association_request
        self.max_associations_per_peer = max_associations_per_peer
        self.hook_timeout = hook_timeout
        self.max_screening = max_screening
        self.log = logger
        #: Connections closed at accept time (not an allowed host, or refused by ``on_connection``).
        self.refused_connections = 0
        #: Connections closed at accept time because their address held its share of the connections
        #: that have not associated yet (the server's ``max_pending_per_peer``).
        self.refused_pending = 0
        #: A-ASSOCIATE-RJ sent, by (result, source, reason).
        self.rejected: Counter[tuple[int, int, int]] = Counter()
        self._screening = 0  # connections waiting for an async on_connection hook
        self._admitting = False
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}  # (address, kind): last logged, since

    # ---------------------------------------------------------------------------- accept time

    def screen(self, factory: Callable[[], asyncio.BaseProtocol]) -> asyncio.BaseProtocol | None:
        """The protocol for a new connection when it has to be screened first (None: go on at once).

        The screen reads the peer's address when the connection is made; a connection it admits gets
        ``factory()`` (the server's own protocol, made then) and the transport is handed over to it."""
        if self._admitting or (self.allowed_hosts is None and self.on_connection is None):
            return None
        return _Screen(self, factory)

    def admit(self, factory: Callable[[], asyncio.BaseProtocol]) -> asyncio.BaseProtocol:
        self._admitting = True  # the factory calls screen() again: this time it goes through
        try:
            return factory()
        finally:
            self._admitting = False

    def refuse(self, host: str, why: str) -> None:
        """Count a refused connection; log it once per address per minute."""
        self.refused_connections += 1
        self._log_refusal(host, "access", why)

    def refuse_pending(self, host: str, held: int) -> None:
        """Count a connection closed because ``host`` already holds ``held`` connections that have not
        associated yet (its share); log it once per address per minute."""
        self.refused_pending += 1
        self._log_refusal(
            host, "pending", f"{held} connections from it have not associated yet (max_pending_per_peer)"
        )

    def _log_refusal(self, host: str, kind: str, why: str) -> None:
        now = asyncio.get_running_loop().time()
        key = (host, kind)
        last, quiet = self._logged.get(key, (float("-inf"), 0))
        if now - last < _LOG_INTERVAL:
            self._logged[key] = (last, quiet + 1)
            return
        if len(self._logged) >= _LOG_MEMORY:
            self._logged = {k: v for k, v in self._logged.items() if now - v[0] < _LOG_INTERVAL}
            if len(self._logged) >= _LOG_MEMORY:
                self._logged.clear()
        self._logged[key] = (now, 0)
        more = f" ({quiet} more refused since the last message)" if quiet else ""
        self.log.warning("refused a connection from %s: %s%s", host, why, more)

    # ------------------------------------------------------------------ after the A-ASSOCIATE-RQ

    async def check_request(self, rq: AAssociateRQ, peer: Peer) -> tuple[AAssociateRJ | None, bytes | None]:
        """The user identity and the ``on_association_request`` hook: an A-ASSOCIATE-RJ to send (or None),
        and the user identity server response to put in the A-ASSOCIATE-AC (None: no response item)."""
        identity = IdentityRequest.of(rq, peer)
        rj, response, verified = await self._check_identity(identity, peer)
        if rj is not None or self.on_association_request is None:
            return rj, response
        request = AssociationRequest(peer, rq.calling_ae_title, rq.called_ae_title, identity, verified, rq)
        try:
            verdict = await _call(self.on_association_request, request, self.hook_timeout)
        except TimeoutError:
            self.log.warning(
                "on_association_request did not answer within %g s; rejecting", self.hook_timeout
            )
            return _HOOK_FAILED, None
        except Exception:
            self.log.exception("on_association_request failed for %s:%s; rejecting", *peer)
            return _HOOK_FAILED, None
        if isinstance(verdict, Rejection):
            return verdict.to_pdu(), None
        if verdict is False:
            return Rejection().to_pdu(), None
        return None, response

    async def _check_identity(
        self, identity: IdentityRequest | None, peer: Peer
    ) -> tuple[AAssociateRJ | None, bytes | None, bool]:
        if identity is None:
            if self.require_user_identity:
                self.log.info("association from %s:%s has no user identity (one is required)", *peer)
                return IDENTITY_REJECTED, None, False
            return None, None, False
        hook = self.on_user_identity
        if identity.kind is None and (hook is not None or self.require_user_identity):
            self.log.info("unknown user identity type %d from %s:%s", identity.identity_type, *peer)
            return IDENTITY_REJECTED, None, False
        if hook is None:  # nothing checks it: not confirmed, so no response is sent (PS3.7 D.3.3.7.2)
            return None, None, False
        try:
            verdict = await _call(hook, identity, self.hook_timeout)
        except TimeoutError:
            self.log.warning("on_user_identity did not answer within %g s; rejecting", self.hook_timeout)
            return IDENTITY_REJECTED, None, False
        except Exception:
            self.log.exception("on_user_identity failed for %r; rejecting", identity)
            return IDENTITY_REJECTED, None, False
        if verdict is True:
            response = b""
        elif isinstance(verdict, bytes | bytearray | memoryview):
            response = bytes(verdict)
            if len(response) > _SERVER_RESPONSE_MAX:
                self.log.error(
                    "on_user_identity returned %d bytes: at most %d fit", len(response), _SERVER_RESPONSE_MAX
                )
                return IDENTITY_REJECTED, None, False
        else:
            self.log.info("user identity %r rejected", identity)
            return IDENTITY_REJECTED, None, False
        return None, response if identity.response_requested else None, True

    def peer_limit(self, host: str, hosts: Iterable[str]) -> AAssociateRJ | None:
        """A-ASSOCIATE-RJ (2, 3, 2) when the peer ``host`` already holds ``max_associations_per_peer`` of
        the associations whose peers are ``hosts``."""
        limit = self.max_associations_per_peer
        if limit is None:
            return None
        key = peer_key(host)
        held = sum(1 for other in hosts if peer_key(other) == key)
        return LIMIT_REACHED if held >= limit else None


class _Screen(asyncio.Protocol):
    """A new connection until its peer is admitted: then the transport goes to the server's protocol."""

    def __init__(self, access: AccessControl, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self.access = access
        self.factory = factory
        self.task: asyncio.Task[None] | None = None
        self.transport: asyncio.Transport | None = None
        # what the socket delivered while the verdict was awaited (uvloop starts reading after
        # connection_made whatever it asked), for the protocol that takes the connection over
        self.early: list[bytes] = []

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)
        peername = transport.get_extra_info("peername")
        peer: Peer = (str(peername[0]), int(peername[1])) if peername else ("", 0)
        access = self.access
        if not host_allowed(peer[0], access.allowed_hosts):
            access.refuse(peer[0], "not in the allowed hosts")
            transport.abort()
            return
        if access.on_connection is None:
            self._admit(transport)
            return
        try:
            verdict = access.on_connection(peer)
        except Exception:
            access.log.exception("on_connection failed for %s:%s; refusing", *peer)
            verdict = False
        if not inspect.isawaitable(verdict):
            self._decide(transport, peer, verdict)
            return
        if access._screening >= access.max_screening:
            if inspect.iscoroutine(verdict):
                verdict.close()  # never awaited: no warning
            access.refuse(peer[0], "too many connections waiting for on_connection")
            transport.abort()
            return
        transport.pause_reading()  # nothing is read before the verdict
        self.transport = transport
        access._screening += 1
        self.task = asyncio.get_running_loop().create_task(self._wait(transport, peer, verdict))

    async def _wait(self, transport: asyncio.Transport, peer: Peer, pending: Awaitable[Any]) -> None:
        try:
            async with asyncio.timeout(self.access.hook_timeout or None):
                verdict = await pending
        except TimeoutError:
            self.access.log.warning("on_connection did not answer within %g s", self.access.hook_timeout)
            verdict = False
        except Exception:
            self.access.log.exception("on_connection failed for %s:%s; refusing", *peer)
            verdict = False
        finally:
            self.access._screening -= 1
        if not transport.is_closing():
            self._decide(transport, peer, verdict)
            if not transport.is_closing():
                transport.resume_reading()

    def _decide(self, transport: asyncio.Transport, peer: Peer, verdict: object) -> None:
        if verdict is False or isinstance(verdict, Rejection):
            self.access.refuse(peer[0], "refused by on_connection")
            transport.abort()
        else:
            self._admit(transport)

    def _admit(self, transport: asyncio.Transport) -> None:
        protocol = self.access.admit(self.factory)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.early and not transport.is_closing():
            early, self.early = b"".join(self.early), []
            replay(transport.get_protocol(), early)  # the protocol may have handed it on in turn

    def data_received(self, data: bytes) -> None:
        # reading is paused until the verdict; a loop that read anyway delivers one read at most
        self.early.append(bytes(data))
        if self.transport is not None:
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
