"""The codecs behind :mod:`aiodicom.dataset.transcode`: which library decodes and encodes each syntax.

Chosen by measurement (one 512x512 frame, one core; benchmarks/transcode_vs_dcmtk.py measures whole files):

==================  ===========================================  =============================================
syntax              decoder                                      encoder
==================  ===========================================  =============================================
JPEG (4.50-4.70)    imagecodecs (libjpeg-turbo 3): 6x pylibjpeg  imagecodecs (the only encoder)
JPEG-LS             pydicom + pyjpegls (CharLS; as imagecodecs)  pydicom + pyjpegls (the precision Bits Stored
                                                                 says: imagecodecs writes 16-bit streams)
JPEG 2000           pydicom + pylibjpeg-openjpeg (as imagecodecs) pydicom + pylibjpeg-openjpeg
HTJ2K               imagecodecs (OpenJPH): 1.8x pylibjpeg        imagecodecs (OpenJPH, the only encoder)
RLE Lossless        pydicom + pylibjpeg-rle: 18x pydicom's own   pydicom + pylibjpeg-rle: 10x pydicom's
==================  ===========================================  =============================================

Each choice falls back to the other libraries pydicom knows when its own is missing (or, for a decoder,
fails on a stream). imagecodecs decodes through a pydicom decoding plugin registered here, so that pydicom
still splits frames, conforms colour spaces and corrects signedness the same way for every library.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from .tags import resolve_transfer_syntax, uid_name

if TYPE_CHECKING:
    pass

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG = "1.2.840.10008.1.2.2"
NATIVE = frozenset((IMPLICIT, EXPLICIT, BIG))
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE = "1.2.840.10008.1.2.5"

JPEG_FAMILY = frozenset((JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1))
JPEG_LS_FAMILY = frozenset((JPEG_LS_LOSSLESS, JPEG_LS_NEAR))
J2K_FAMILY = frozenset((J2K_LOSSLESS, J2K, HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K))
HTJ2K_FAMILY = frozenset((HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K))
#: Encoding to these loses information (unless they are asked for losslessly: see :func:`lossy_target`).
LOSSY_TARGETS = frozenset((JPEG_BASELINE, JPEG_EXTENDED, JPEG_LS_NEAR, J2K, HTJ2K))
#: Lossy targets that can also hold a lossless stream (NEAR=0, the reversible 5-3 wavelet).
REVERSIBLE_IN = frozenset((JPEG_LS_NEAR, J2K, HTJ2K))
#: PS3.3 C.7.6.1.1.5.1: Lossy Image Compression Method.
METHODS = {
    JPEG_BASELINE: "ISO_10918_1",
    JPEG_EXTENDED: "ISO_10918_1",
    JPEG_LS_NEAR: "ISO_14495_1",
    J2K: "ISO_15444_1",
    HTJ2K: "ISO_15444_15",
}

#: Default qualities for lossy targets: each reaches PSNR >= 40 dB on the test images (tests/dataset).
JPEG_QUALITY = 90
JPEG_LS_NEAR_ERROR = 2
J2K_COMPRESSION_RATIO = 10.0
HTJ2K_QUANTIZATION = 0.002

_EXTRA = "pip install aiodicom[codecs]"


# -- names and availability ---------------------------------------------------------------------------------


def resolve(transfer_syntax: str) -> str:
    """The UID of a transfer syntax given by UID or name (ValueError when it is neither)."""
    return resolve_transfer_syntax(transfer_syntax)


def syntax_label(uid: str | None) -> str:
    """``Name (UID)`` for messages."""
    if not uid:
        return "an unknown transfer syntax"
    name = uid_name(uid)
    return f"{name} ({uid})" if name != uid else uid


@cache
def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _plugins(uid: str, *, decoder: bool) -> tuple[str, ...]:
    """The available pydicom plugins for ``uid`` (ours included), in our order of preference."""
    if not _have("numpy"):
        return ()
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.pixels.encoders.base import get_encoder

    _register()
    try:
        coder = get_decoder(uid) if decoder else get_encoder(uid)
    except NotImplementedError:
        return ()
    available = set(coder.available_plugins)
    preferred = _DECODE_ORDER if decoder else _ENCODE_ORDER
    order = [p for p in preferred.get(uid, ()) if p in available]
    return (*order, *sorted(available - set(order)))


_DECODE_ORDER: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(JPEG_FAMILY, ("imagecodecs", "pylibjpeg")),
    **dict.fromkeys(JPEG_LS_FAMILY, ("pyjpegls", "pylibjpeg")),
    **dict.fromkeys((J2K_LOSSLESS, J2K), ("pylibjpeg",)),
    **dict.fromkeys(HTJ2K_FAMILY, ("imagecodecs", "pylibjpeg")),
    RLE: ("pylibjpeg", "pydicom"),
}
_ENCODE_ORDER: dict[str, tuple[str, ...]] = {RLE: ("pylibjpeg", "pydicom")}


def decoding_plugins(transfer_syntax: str) -> tuple[str, ...]:
    """The pydicom decoding plugins tried for a compressed syntax, first choice first."""
    return _plugins(transfer_syntax, decoder=True)


def decodable(transfer_syntax: str) -> bool:
    """A codec here can decode ``transfer_syntax`` (or it is uncompressed or deflated)."""
    uid = _resolved(transfer_syntax)
    if uid is None:
        return False
    return uid in NATIVE or uid == DEFLATED or bool(decoding_plugins(uid))


def encodable(transfer_syntax: str) -> bool:
    """A codec here can encode to ``transfer_syntax`` (or it is uncompressed or deflated)."""
    uid = _resolved(transfer_syntax)
    if uid is None:
        return False
    if uid in NATIVE or uid == DEFLATED:
        return True
    if not _have("numpy"):
        return False
    if uid in JPEG_FAMILY or uid in HTJ2K_FAMILY:
        return _have("imagecodecs")
    if uid in (J2K_LOSSLESS, J2K):
        return bool(_plugins(J2K_LOSSLESS, decoder=False))
    if uid in JPEG_LS_FAMILY or uid == RLE:
        return bool(_plugins(uid, decoder=False))
    return False


def lossy_target(transfer_syntax: str) -> bool:
    """Encoding to ``transfer_syntax`` at its default (lossy) setting loses information: JPEG Baseline and
    Extended, JPEG-LS Near-Lossless, JPEG 2000 (4.91) and HTJ2K (4.203). (transcode() encodes the last three
    losslessly when not allowed to lose anything.)"""
    uid = _resolved(transfer_syntax)
    return uid in LOSSY_TARGETS


def _resolved(transfer_syntax: str) -> str | None:
    try:
        return resolve(transfer_syntax)
    except ValueError:
        return None


#: Syntaxes that a codec package of the ``codecs`` extra decodes or encodes.
_KNOWN_DECODES = JPEG_FAMILY | JPEG_LS_FAMILY | J2K_FAMILY | {RLE}
_KNOWN_ENCODES = JPEG_FAMILY | JPEG_LS_FAMILY | J2K_FAMILY | {RLE}


def missing_decoder(uid: str) -> str:
    """Why ``uid`` cannot be decoded, in a sentence."""
    if uid in _KNOWN_DECODES:
        return f"no decoder for {syntax_label(uid)} is installed: {_EXTRA}"
    return f"no codec here decodes {syntax_label(uid)}"


def missing_encoder(uid: str) -> str:
    """Why nothing can be encoded to ``uid``, in a sentence."""
    if uid in _KNOWN_ENCODES:
        return f"no encoder for {syntax_label(uid)} is installed: {_EXTRA}"
    return f"no codec here encodes to {syntax_label(uid)}"


def check_target(transfer_syntax: str, *, allow_lossy: bool) -> str:
    """The UID of a target syntax given by UID or name, checked: a ValueError says why for an unknown name,
    a lossy target without ``allow_lossy``, or a syntax nothing here can encode to (naming the syntax, and
    ``aiodicom[codecs]`` when a codec package is missing)."""
    uid = resolve(transfer_syntax)
    if uid in LOSSY_TARGETS and not allow_lossy:
        raise ValueError(f"{syntax_label(uid)} is lossy: converting to it needs allow_lossy=True")
    if not encodable(uid):
        raise ValueError(missing_encoder(uid))
    return uid


# -- frames -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameInfo:
    """What an encoder needs to know of the decoded frames (interleaved samples, planar configuration 0)."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str


_registered = False


def _register() -> None:
    """Add imagecodecs to pydicom's decoders of the JPEG and HTJ2K syntaxes (once)."""
    global _registered
    if _registered:
        return
    _registered = True
