"""A users file for username-and-password identities (PS3.7 D.3.3.7, type 2), checked with the standard
library's scrypt.

The file has one ``username:hash`` line per user (blank lines and lines starting with ``#`` are ignored;
the username is everything before the last ``:``). A hash is::

    $scrypt$ln=14,r=8,p=1$<salt>$<key>

scrypt (RFC 7914) with N = 2**ln, block size r and parallelism p, a 16-byte random salt and a 32-byte key,
both in standard base64 without padding. ``aiodicom hash-password`` prints one, as does::

    python -c "from aiodicom.net.passwords import hash_password; print(hash_password('s3cret'))"

Checking costs about 16 MB and tens of milliseconds: it runs in a thread, two at a time at most, so the
event loop never waits on it. An unknown user costs the same as a wrong password (no timing oracle).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio
import anyio.to_thread

from aiodicom.net.access import IdentityRequest
from aiodicom.net.identity import IdentityKind

__all__ = ["hash_password", "load_users", "users_hook", "verify_password"]

_LOG_N, _R, _P = 14, 8, 1
_SALT, _KEY = 16, 32
_FORMAT = re.compile(r"^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")
_MAX_MEMORY = 1 << 28  # 256 MiB: what scrypt may use for one check (hashlib's default is 32 MiB)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, log_n: int = _LOG_N, r: int = _R, p: int = _P) -> str:
    """The users-file hash of ``password`` (a new random salt each time)."""
    if not password:
        raise ValueError("the password is empty")
    salt = os.urandom(_SALT)
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=1 << log_n, r=r, p=p, dklen=_KEY, maxmem=_MAX_MEMORY
    )
    return f"$scrypt$ln={log_n},r={r},p={p}${_b64(salt)}${_b64(key)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    match = _FORMAT.match(encoded.strip())
    if match is None:
        raise ValueError("not a password hash of the form $scrypt$ln=14,r=8,p=1$<salt>$<key>")
    log_n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if not (1 <= log_n <= 20 and 1 <= r <= 16 and 1 <= p <= 16):
        raise ValueError(f"scrypt parameters out of range (ln={log_n}, r={r}, p={p})")
    return log_n, r, p, _unb64(match.group(4)), _unb64(match.group(5))


def verify_password(password: str | bytes, encoded: str) -> bool:
    """Whether ``password`` matches a users-file hash (compared in constant time)."""
    log_n, r, p, salt, key = _parse(encoded)
    raw = password.encode("utf-8") if isinstance(password, str) else password
    derived = hashlib.scrypt(raw, salt=salt, n=1 << log_n, r=r, p=p, dklen=len(key), maxmem=_MAX_MEMORY)
    return hmac.compare_digest(derived, key)


def load_users(path: str | os.PathLike[str]) -> dict[str, str]:
    """The users of a users file, ``{username: hash}``; a malformed line is a ValueError naming it."""
    users: dict[str, str] = {}
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, encoded = line.rpartition(":")
        if not sep or not name:
            raise ValueError(f"{path}, line {number}: expected username:hash")
        try:
            _parse(encoded)
        except ValueError as exc:
            raise ValueError(f"{path}, line {number}: {exc}") from None
        if name in users:
            raise ValueError(f"{path}, line {number}: user {name!r} is listed twice")
        users[name] = encoded
    if not users:
        raise ValueError(f"{path}: no users (one username:hash line each; see aiodicom hash-password)")
    return users


def users_hook(users: Mapping[str, str]) -> Callable[[IdentityRequest], Awaitable[bool]]:
    """An ``on_user_identity`` hook that accepts a username and password listed in ``users`` (from
    :func:`load_users`) and rejects everything else: a username alone, Kerberos, SAML, JWT."""
    users = dict(users)
    dummy = hash_password("not a password")  # unknown users cost the same as known ones
    limiter = anyio.CapacityLimiter(2)

    async def check(identity: IdentityRequest) -> bool:
        if identity.kind is not IdentityKind.USERNAME_PASSWORD:
            return False
        name = identity.primary.decode("utf-8", "replace")
        encoded = users.get(name, dummy)
        ok = await anyio.to_thread.run_sync(verify_password, identity.secondary, encoded, limiter=limiter)
        return ok and name in users

    return check
