"""User identity negotiation, the requestor's side (PS3.7 D.3.3.7): who we are, told to the peer in the
A-ASSOCIATE-RQ, and what the peer answered.

One value says it all::

    identity = UserIdentity.username_password("alice", "s3cret")
    identity = UserIdentity.jwt(token, positive_response_requested=True)
    await EchoScu("PACS@10.0.0.5:104", user_identity=identity).echo()

With ``positive_response_requested=True`` the peer must confirm the identity in its A-ASSOCIATE-AC; an
association whose AC carries no user identity response is released and :class:`IdentityNotConfirmed` is
raised. For the username types the response is empty (PS3.7 D.3.3.7.2) but still present.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

from aiodicom.errors import IdentityNotConfirmed as IdentityNotConfirmed  # also importable from here
from aiodicom.ul.items import UserIdentityRQ, UserIdentityType

__all__ = ["IdentityKind", "IdentityNotConfirmed", "UserIdentity"]

_FIELD_MAX = 0xFFFF  # each field has a 2-byte length (PS3.7 Table D.3-14)


#: The user identity types (PS3.7 Table D.3-14), as the upper layer encodes them.
IdentityKind = UserIdentityType


@dataclass(frozen=True, slots=True)
class UserIdentity:
    """A user identity to send in the A-ASSOCIATE-RQ: its ``kind``, the ``primary`` field (username,
    Kerberos ticket, SAML assertion or JWT) and the ``secondary`` one (the password, else empty).

    Build it with :meth:`username`, :meth:`username_password`, :meth:`kerberos`, :meth:`saml` or
    :meth:`jwt`. Its ``repr`` never shows a password, ticket, assertion or token.
    """

    kind: IdentityKind
    primary: bytes
    secondary: bytes = b""
    positive_response_requested: bool = False

    def __post_init__(self) -> None:
        kind = IdentityKind.parse(self.kind)
        object.__setattr__(self, "kind", kind)
        if not isinstance(self.primary, bytes) or not isinstance(self.secondary, bytes):
            raise TypeError("user identity fields are bytes (use the constructors for text)")
        if not self.primary:
            raise ValueError(f"a {kind.name.lower()} user identity needs a non-empty primary field")
        if len(self.primary) > _FIELD_MAX or len(self.secondary) > _FIELD_MAX:
            raise ValueError(f"a user identity field holds at most {_FIELD_MAX} bytes")
        if kind is IdentityKind.USERNAME_PASSWORD and not self.secondary:
            raise ValueError("a username and password identity needs a password (or use username())")
        if kind is not IdentityKind.USERNAME_PASSWORD and self.secondary:
            raise ValueError(f"a {kind.name.lower()} user identity has no secondary field")

    # ------------------------------------------------------------------------------ constructors

    @classmethod
    def username(cls, name: str, *, positive_response_requested: bool = False) -> UserIdentity:
        """A username alone (type 1), sent as UTF-8."""
        return cls(IdentityKind.USERNAME, _text(name, "username"), b"", positive_response_requested)

    @classmethod
    def username_password(
        cls, name: str, password: str, *, positive_response_requested: bool = False
    ) -> UserIdentity:
        """A username and its password (type 2), both sent as UTF-8 (and in clear: use TLS)."""
        return cls(
            IdentityKind.USERNAME_PASSWORD,
            _text(name, "username"),
            _text(password, "password"),
            positive_response_requested,
        )

    @classmethod
    def kerberos(cls, ticket: bytes, *, positive_response_requested: bool = False) -> UserIdentity:
        """A Kerberos service ticket (type 3), as the bytes of its encoding."""
        return cls(IdentityKind.KERBEROS, bytes(ticket), b"", positive_response_requested)

    @classmethod
    def saml(cls, assertion: str | bytes, *, positive_response_requested: bool = False) -> UserIdentity:
        """A SAML assertion (type 4): its XML text (sent as UTF-8) or bytes."""
        data = assertion if isinstance(assertion, bytes) else _text(assertion, "SAML assertion")
        return cls(IdentityKind.SAML, data, b"", positive_response_requested)

    @classmethod
    def jwt(cls, token: str | bytes, *, positive_response_requested: bool = False) -> UserIdentity:
        """A JSON Web Token (type 5) in its compact form (ASCII)."""
        text = token.decode("ascii") if isinstance(token, bytes) else token
        text = text.strip()
        if not text.isascii() or text.count(".") not in (2, 4):  # JWS (or unsecured) and JWE compact forms
            raise ValueError("a JWT is base64url parts separated by dots (header.payload.signature)")
        return cls(IdentityKind.JWT, text.encode("ascii"), b"", positive_response_requested)

    @classmethod
    def of(cls, kind: str | int | IdentityKind, data: bytes) -> UserIdentity:
        """A Kerberos, SAML or JWT identity from a credential's bytes (as read from a file)."""
        kind = IdentityKind.parse(kind)
        if kind is IdentityKind.KERBEROS:
            return cls.kerberos(data)
        if kind is IdentityKind.SAML:
            return cls.saml(data.strip())
        if kind is IdentityKind.JWT:
            return cls.jwt(data)
        raise ValueError("use UserIdentity.username() or username_password() for a username")

    # ---------------------------------------------------------------------------------- helpers

    def requesting_response(self, requested: bool = True) -> UserIdentity:
        """The same identity asking (or not) for the peer to confirm it."""
        return dataclasses.replace(self, positive_response_requested=requested)

    @property
    def is_username(self) -> bool:
        return self.kind in (IdentityKind.USERNAME, IdentityKind.USERNAME_PASSWORD)

    def to_item(self) -> UserIdentityRQ:
        """The user identity sub-item of the A-ASSOCIATE-RQ."""
        return UserIdentityRQ(int(self.kind), self.primary, self.secondary, self.positive_response_requested)

    def __repr__(self) -> str:
        shown = (
            self.primary.decode("utf-8", "replace") if self.is_username else f"<{len(self.primary)} bytes>"
        )
        secret = ", password=<hidden>" if self.secondary else ""
        return (
            f"UserIdentity({self.kind.name.lower()}, {shown!r}{secret}, "
            f"positive_response_requested={self.positive_response_requested})"
        )


def _text(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"the {what} is text (str), not {type(value).__name__}")
    return value.encode("utf-8")


def resolve_identity(
    user_identity: UserIdentity | UserIdentityRQ | None,
    *,
    username: str | None = None,
    password: str | None = None,
    kerberos_ticket: bytes | None = None,
    saml_assertion: str | None = None,
    jwt: str | None = None,
    identity_response_requested: bool | None = None,
    stacklevel: int = 3,
) -> UserIdentity | None:
    """``user_identity``, or one built from the older separate arguments (with a DeprecationWarning)."""
    if isinstance(user_identity, UserIdentityRQ):
        warnings.warn(
            "user_identity=UserIdentityRQ(...) is deprecated: give a UserIdentity "
            "(UserIdentity.username_password(name, password), UserIdentity.jwt(token), ...)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        user_identity = UserIdentity(
            IdentityKind.parse(user_identity.identity_type),
            user_identity.primary_field,
            user_identity.secondary_field,
            user_identity.positive_response_requested,
        )
    old = {
        "username": username,
        "password": password,
        "kerberos_ticket": kerberos_ticket,
        "saml_assertion": saml_assertion,
        "jwt": jwt,
    }
    given = [name for name, value in old.items() if value is not None]
    if not given and identity_response_requested is None:
        return user_identity
    spelled = ", ".join(given + (["identity_response_requested"] if identity_response_requested else []))
    warnings.warn(
        f"{spelled or 'identity_response_requested'}= is deprecated: give user_identity=UserIdentity...(), "
        "e.g. UserIdentity.username_password(name, password, positive_response_requested=True)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    if user_identity is not None and given:
        raise ValueError("give user_identity or the separate identity arguments, not both")
    if sum(x is not None for x in (username, kerberos_ticket, saml_assertion, jwt)) > 1:
        raise ValueError(
            "give one user identity: username (and password), kerberos_ticket, saml_assertion or jwt"
        )
    if password is not None and username is None:
        raise ValueError("a password needs a username")
    response = bool(identity_response_requested)
    if username is not None:
        if password is not None:
            return UserIdentity.username_password(username, password, positive_response_requested=response)
        return UserIdentity.username(username, positive_response_requested=response)
    if kerberos_ticket is not None:
        return UserIdentity.kerberos(kerberos_ticket, positive_response_requested=response)
    if saml_assertion is not None:
        return UserIdentity.saml(saml_assertion, positive_response_requested=response)
    if jwt is not None:
        return UserIdentity.jwt(jwt, positive_response_requested=response)
    if user_identity is not None:  # only identity_response_requested was given
        return user_identity.requesting_response(response)
    return None
