"""How this side associates, as one value shared by ``connect()``, every SCU and the servers.

:class:`AssociationOptions` holds our AE title and the peer's, the PDU sizes, the timeouts, the user identity
our implementation's identification, and TLS. It is frozen: :meth:`AssociationOptions.replace`
gives a changed copy, so one object can configure many SCUs without them seeing each other's changes. The
classes still take the reference documents' keyword names (``calling_ae_title``, ``max_pdu_length``...),
which override the options they are given; those names are also attributes (:class:`Option`), read from and
written to the instance's options.
"""

from __future__ import annotations

import dataclasses
import ssl
import warnings
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar, overload

from aiodicom.net.address import validate_ae_title, validate_implementation
from aiodicom.net.identity import UserIdentity
from aiodicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["KEEP", "AssociationOptions", "Keep", "Option", "OptionKeywords", "deprecated_positional"]


class Keep:
    """The type of :data:`KEEP`: an argument left out (``None`` can be a value, e.g. no timeout)."""

    _instance: Keep | None = None

    def __new__(cls) -> Keep:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "KEEP"


#: An option argument that was not given: the value of the options it applies to stays.
KEEP = Keep()


#: What an association advertises as the largest P-DATA-TF it receives, unless told otherwise.
DEFAULT_MAX_PDU_LENGTH = 262144


@dataclass(frozen=True, kw_only=True, slots=True)
class AssociationOptions:
    """One side's association settings.

    - ``ae_title``: ours: the calling AE title of a requestor, the title an acceptor answers to;
    - ``called_ae_title``: a requestor's peer (None: the AE title in the address, else ``ANY-SCP``);
    - ``max_pdu_length``: the largest P-DATA-TF we receive, advertised (0: no limit; 1-6 carry no PDV;
      default 256 KiB: a sender then sends a small instance in one or two PDVs rather than nine, which
      costs the receiver about 17 % less CPU per 131 KB instance; memory does not grow with it, since PDVs
      are streamed);
      ``max_send_pdu_length`` caps what we send beyond the peer's maximum; ``strict`` refuses P-DATA-TF
      larger than we advertised;
    - ``connect_timeout``, ``acse_timeout``: a requestor's TCP connection and wait for the A-ASSOCIATE-AC;
      ``dimse_timeout``: the longest silence while a response is awaited (None: no limit);
      ``idle_timeout``: an acceptor's longest silence on an established association (None: no limit);
      ``artim_timeout``: an acceptor's deadline from connect to a whole A-ASSOCIATE-RQ;
    - ``user_identity``: sent with every association a requestor opens;
    - ``implementation_class_uid``, ``implementation_version_name``: who we are, in the negotiation and
      in the file meta we write;
    - ``tls``: an ``ssl.SSLContext`` (see :mod:`aiodicom.net.tls` for builders with DCMTK's profiles): a
      requestor's connections and an acceptor's are TLS (PS3.15 Annex B); None: plain TCP.
      ``tls_handshake_timeout`` bounds the handshake (an acceptor's also bounds the wait for a turn).
    - ``max_ops_invoked``: a requestor's asynchronous operations window (PS3.7 D.3.3.3): how many requests
      it proposes to have outstanding at once, 1-65535 (None: no proposal, one at a time); the window
      used is what the acceptor grants, at most this. ``max_ops_performed``: how many an acceptor grants
      (the requests it takes before answering the first; 0: as many as proposed; default 1).

    Values are checked at construction: a bad AE title, UID or timeout is a ValueError.
    """

    ae_title: str = "AIODICOM"
    called_ae_title: str | None = None
    max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH
    max_send_pdu_length: int | None = None
    strict: bool = False
    connect_timeout: float = 30.0
    acse_timeout: float = 30.0
    dimse_timeout: float | None = 60.0
    idle_timeout: float | None = 300.0
    artim_timeout: float = 30.0
    user_identity: UserIdentity | None = None
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version_name: str = IMPLEMENTATION_VERSION_NAME
    tls: ssl.SSLContext | None = None
    tls_handshake_timeout: float = 10.0
    max_ops_invoked: int | None = None
    max_ops_performed: int = 1

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once
        set_(self, "ae_title", validate_ae_title(self.ae_title, "AE title"))
        if self.called_ae_title is not None:
            set_(self, "called_ae_title", validate_ae_title(self.called_ae_title, "called AE title"))
        validate_implementation(self.implementation_class_uid, self.implementation_version_name)
        if self.max_pdu_length < 0 or 0 < self.max_pdu_length <= 6:
            raise ValueError(f"max_pdu_length {self.max_pdu_length}: 0 (no limit) or at least 7")
        send = self.max_send_pdu_length
        if send is not None and (send < 0 or 0 < send <= 6):
            raise ValueError(f"max_send_pdu_length {send}: 0 (the peer's maximum) or at least 7")
        for name in ("connect_timeout", "acse_timeout", "dimse_timeout", "idle_timeout", "artim_timeout"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} may not be negative ({value})")
        if self.tls is not None and not isinstance(self.tls, ssl.SSLContext):
            raise TypeError(
                f"tls is an ssl.SSLContext (aiodicom.net.tls builds them), not {type(self.tls).__name__}"
            )
        if self.tls_handshake_timeout <= 0:
            raise ValueError(f"tls_handshake_timeout must be more than 0 ({self.tls_handshake_timeout})")
        invoked, performed = self.max_ops_invoked, self.max_ops_performed
        if invoked is not None and (isinstance(invoked, bool) or not 1 <= invoked <= 0xFFFF):
            raise ValueError(f"max_ops_invoked {invoked!r}: None (no window) or 1 to 65535")
        if isinstance(performed, bool) or not 0 <= performed <= 0xFFFF:
            raise ValueError(f"max_ops_performed {performed!r}: 0 (as many as proposed) to 65535")
        if self.user_identity is not None and not isinstance(self.user_identity, UserIdentity):
            raise TypeError(f"user_identity is a UserIdentity, not {type(self.user_identity).__name__}")

    def replace(self, **changes: Any) -> AssociationOptions:
        """A copy with ``changes``; arguments that are :data:`KEEP` change nothing."""
        given = {name: value for name, value in changes.items() if value is not KEEP}
        return dataclasses.replace(self, **given) if given else self


class OptionKeywords(TypedDict, total=False):
    """The reference documents' keyword names for association options, as ``connect()`` takes them: each
    one given overrides the options' field (``calling_ae_title`` is ``ae_title``)."""

    calling_ae_title: str
    called_ae_title: str | None
    max_pdu_length: int
    max_send_pdu_length: int | None
    strict: bool
    connect_timeout: float
    acse_timeout: float
    dimse_timeout: float | None
    user_identity: UserIdentity | None
    implementation_class_uid: str
    implementation_version_name: str
    tls: ssl.SSLContext | None
    tls_handshake_timeout: float
    max_ops_invoked: int | None


_T = TypeVar("_T")


class Option(Generic[_T]):
    """An attribute of a class with ``options`` that reads and writes one field of them (by copy)."""

    def __init__(self, field: str) -> None:
        self.field = field

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Option[_T]: ...

    @overload
    def __get__(self, obj: object, owner: type[Any]) -> _T: ...

    def __get__(self, obj: object | None, owner: type[Any]) -> Option[_T] | _T:
        if obj is None:
            return self
        value: _T = getattr(obj.options, self.field)  # type: ignore[attr-defined]
        return value

    def __set__(self, obj: object, value: _T) -> None:
        obj.options = obj.options.replace(**{self.field: value})  # type: ignore[attr-defined]


def deprecated_positional(owner: str, names: tuple[str, ...], args: tuple[Any, ...]) -> dict[str, Any]:
    """The values of arguments passed by position where they are now keyword-only, with a
    DeprecationWarning at the caller's line (they keep working for one release)."""
    if len(args) > len(names):
        raise TypeError(f"{owner}() takes at most {len(names) + 1} positional arguments")
    warnings.warn(
        f"{owner}: pass {', '.join(names[: len(args)])} by keyword; positional arguments after the first "
        "are deprecated",
        DeprecationWarning,
        stacklevel=3,
    )
    return dict(zip(names, args, strict=False))
