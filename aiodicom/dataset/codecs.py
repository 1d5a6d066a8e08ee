"""The codecs behind :mod:`aiodicom.dataset.transcode`: which library decodes and encodes each syntax.

Chosen by measurement (one 512x512 16-bit frame, one core, then two threads; the benchmark
benchmarks/transcode_vs_dcmtk.py measures whole files against DCMTK):

- JPEG (4.50-4.70): imagecodecs' libjpeg-turbo 3 both ways (the only encoder); decoding 6x pylibjpeg-libjpeg.
- JPEG-LS: decoding with imagecodecs' CharLS (as fast as pyjpegls on one core, but it releases the GIL: 1.9x
  with two threads, pyjpegls 1.0x); encoding with pyjpegls through pydicom, which writes the precision Bits
  Stored says (imagecodecs writes 16-bit streams for 12-bit data, 4% larger).
- JPEG 2000: imagecodecs' OpenJPEG both ways (as fast as pylibjpeg-openjpeg, releases the GIL; pylibjpeg-
  openjpeg 2.6 crashes when two threads encode at once, so its fallback encodes under a lock).
- HTJ2K: imagecodecs' OpenJPH (0.26, the maintained HTJ2K library, the only encoder; decoding 1.8x
  pylibjpeg-openjpeg), but irreversible streams are decoded by pylibjpeg-openjpeg: imagecodecs returns
  OpenJPH's out-of-range values wrapped around (256 -> 0) rather than clipped.
- RLE Lossless: pylibjpeg-rle through pydicom both ways (decoding 18x, encoding 10x pydicom's own).

Each choice falls back to the other libraries pydicom knows when its own is missing (or, for a decoder,
fails on a stream). imagecodecs decodes through a pydicom decoding plugin registered here, so that pydicom
still splits frames, conforms colour spaces and corrects signedness the same way for every library.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aiodicom.errors import TranscodeError

from .tags import resolve_transfer_syntax, uid_name

if TYPE_CHECKING:
    import numpy as np

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
JPEG_QUALITY = 95
JPEG_LS_NEAR_ERROR = 2
J2K_PSNR = 46.0  # dB over the range of values a frame uses
HTJ2K_LEVELS = 64.0  # quantization step: this fraction of the range a frame uses

_EXTRA = "pip install aiodicom[codecs]"
_OPENJPEG_LOCK = threading.Lock()


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
    **dict.fromkeys(JPEG_LS_FAMILY, ("imagecodecs", "pyjpegls", "pylibjpeg")),
    **dict.fromkeys((J2K_LOSSLESS, J2K), ("imagecodecs", "pylibjpeg")),
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


#: pydicom's encoder plugins for the syntaxes whose encoder is a separate package: every (distribution,
#: the module it installs, minimum version) the plugin needs, as pydicom's ``ENCODER_DEPENDENCIES`` and
#: ``is_available`` say (pydicom checks the module's ``__version__``).
_ENCODER_DISTRIBUTIONS: dict[str, tuple[tuple[str, str, tuple[int, ...]], ...]] = {
    JPEG_LS_LOSSLESS: (("pyjpegls", "jpeg_ls", (1, 3)),),
    J2K_LOSSLESS: (("pylibjpeg", "pylibjpeg", (2, 0)), ("pylibjpeg-openjpeg", "openjpeg", (2, 2))),
}


def encoder_installed(transfer_syntax: str) -> bool:
    """What :func:`encodable` answers for a target of :data:`FALLBACK_ORDER`, read from the installed
    distributions instead of by importing pydicom, numpy and the codecs (a sender proposes these syntaxes
    before it knows whether anything will be converted; the conversion itself checks with encodable)."""
    uid = transfer_syntax
    if uid in NATIVE or uid == DEFLATED:
        return True
    if not _have("numpy"):
        return False
    if uid in JPEG_FAMILY or uid in HTJ2K_FAMILY:
        return _have("imagecodecs")
    if uid == RLE:
        return True  # pydicom's own RLE encoder
    needed = _ENCODER_DISTRIBUTIONS.get(uid)
    if needed is None:
        return encodable(uid)
    return all(_version_at_least(*requirement) for requirement in needed)


@cache
def _version_at_least(distribution: str, module: str, minimum: tuple[int, ...]) -> bool:
    """As pydicom's check: ``module`` importable, its distribution's version plain numbers at least
    ``minimum``. The version is read from the ``.dist-info`` folder beside the module when it is there
    (importlib.metadata, which finds it elsewhere too, costs more to import than the rest of this check)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    version = _dist_info_version(distribution, os.path.dirname(os.path.dirname(spec.origin)))
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return False
    try:
        return tuple(int(x) for x in version.split(".")) >= minimum
    except ValueError:
        return False


def _dist_info_version(distribution: str, folder: str) -> str | None:
    """The version in the name of ``distribution``'s ``NAME-VERSION.dist-info`` folder in ``folder``."""
    prefix = re.sub(r"[-_.]+", "_", distribution).lower() + "-"
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            if name.endswith(".dist-info") and name.lower().startswith(prefix):
                return name[len(prefix) : -len(".dist-info")]
    return None


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


@dataclass(frozen=True)
class Plan:
    """How frames are encoded to a target syntax, and what the encoded data set says of them."""

    transfer_syntax: str
    photometric: str
    bits_allocated: int
    bits_stored: int
    lossy: bool
    encode: Callable[[np.ndarray[Any, Any]], bytes]

    @property
    def method(self) -> str:
        """Lossy Image Compression Method (0028,2114) of a lossy plan."""
        return METHODS[self.transfer_syntax]


def _refuse(target: str, why: str) -> TranscodeError:
    return TranscodeError(f"cannot encode to {syntax_label(target)}: {why}", target)


def plan(target: str, info: FrameInfo, *, allow_lossy: bool) -> Plan:
    """How to encode frames described by ``info`` to ``target``; TranscodeError when ``target`` cannot carry
    them (bit depth, colour, signedness) or is lossy without ``allow_lossy`` (JPEG Baseline, Extended)."""
    if info.samples not in (1, 3):
        raise _refuse(target, f"{info.samples} samples per pixel")
    if info.bits_allocated not in (8, 16) or not 1 < info.bits_stored <= 16:
        raise _refuse(target, f"{info.bits_allocated}-bit pixels ({info.bits_stored} stored)")
    if target in (JPEG_BASELINE, JPEG_EXTENDED):
        return _jpeg_lossy(target, info, allow_lossy=allow_lossy)
    if target in (JPEG_LOSSLESS, JPEG_LOSSLESS_SV1):
        return _jpeg_lossless(target, info)
    if target in (J2K_LOSSLESS, J2K) and _have("imagecodecs"):
        return _j2k(target, info, lossy=allow_lossy and target == J2K)
    if target in JPEG_LS_FAMILY or target == RLE or target in (J2K_LOSSLESS, J2K):
        return _pydicom_plan(target, info, lossy=allow_lossy and target in LOSSY_TARGETS)
    if target in (HTJ2K_LOSSLESS, HTJ2K):
        return _htj2k(target, info, lossy=allow_lossy and target == HTJ2K)
    raise _refuse(target, "no encoder here")


def _jpeg_lossy(target: str, info: FrameInfo, *, allow_lossy: bool) -> Plan:
    import imagecodecs
    import numpy as np

    if not allow_lossy:
        raise _refuse(target, "it is lossy and allow_lossy is not set")
    limit = 8 if target == JPEG_BASELINE else 12
    if info.bits_stored > limit:
        raise _refuse(target, f"it carries at most {limit} bits, the pixels have {info.bits_stored}")
    if info.signed:
        raise _refuse(target, "signed pixel data")
    if info.photometric == "PALETTE COLOR":
        raise _refuse(target, "palette indices cannot be compressed lossily")
    precision = 8 if info.bits_stored <= 8 else 12
    dtype = np.uint8 if precision == 8 else np.uint16
    colour = info.samples == 3
    source_space = "YCbCr" if info.photometric.startswith("YBR") else "RGB"

    def encode(arr: np.ndarray[Any, Any]) -> bytes:
        data = np.ascontiguousarray(arr, dtype=dtype)
        if colour:
            return bytes(
                imagecodecs.jpeg8_encode(
                    data,
                    JPEG_QUALITY,
                    colorspace=source_space,
                    outcolorspace="YCbCr",
                    subsampling="422",
                    bitspersample=precision,
                )
            )
        return bytes(imagecodecs.jpeg8_encode(data, JPEG_QUALITY, bitspersample=precision))

    photometric = "YBR_FULL_422" if colour else info.photometric
    return Plan(target, photometric, 8 if precision == 8 else 16, precision, True, encode)


def _jpeg_lossless(target: str, info: FrameInfo) -> Plan:
    import imagecodecs
    import numpy as np

    if info.photometric.startswith("YBR"):
        # A YCbCr lossless JPEG gets a JFIF marker, and decoders (pylibjpeg's libjpeg among them) then turn
        # it into RGB on their own: the pixels would not come back as they went in.
        raise _refuse(target, f"{info.photometric} pixels would be read back as RGB")
    bits = info.bits_stored
    unsigned = np.uint8 if info.bits_allocated == 8 else np.uint16
    mask = (1 << bits) - 1

    def encode(arr: np.ndarray[Any, Any]) -> bytes:
        # The stream holds the stored bit pattern (signed data too: PS3.5 8.2.1), as an unsigned integer.
        data: np.ndarray[Any, Any] = np.ascontiguousarray(arr).view(unsigned)
        if bits < info.bits_allocated or info.signed:
            data = np.bitwise_and(data, mask, dtype=unsigned)
        kwargs: dict[str, Any] = {"colorspace": "RGB", "outcolorspace": "RGB"} if info.samples == 3 else {}
        return bytes(
            imagecodecs.jpeg8_encode(data, lossless=True, predictor=1, bitspersample=max(bits, 2), **kwargs)
        )

    return Plan(target, info.photometric, info.bits_allocated, bits, False, encode)


def _pydicom_plan(target: str, info: FrameInfo, *, lossy: bool) -> Plan:
    """RLE, JPEG-LS and JPEG 2000 through pydicom's encoders (pylibjpeg-rle, pyjpegls, pylibjpeg-openjpeg)."""
    from pydicom.pixels.encoders.base import get_encoder

    photometric = info.photometric
    kwargs: dict[str, Any] = {}
    syntax = target
    if target in (J2K_LOSSLESS, J2K):
        syntax = J2K if lossy else J2K_LOSSLESS  # a reversible stream is valid in both
        if info.samples == 3 and photometric == "RGB":  # the multiple component transform
            photometric = "YBR_ICT" if lossy else "YBR_RCT"
    elif target in JPEG_LS_FAMILY:
        kwargs["jls_error"] = JPEG_LS_NEAR_ERROR if lossy else 0
    if lossy and photometric == "PALETTE COLOR":
        raise _refuse(target, "palette indices cannot be compressed lossily")
    plugins = _plugins(syntax, decoder=False)
    if not plugins:
        raise TranscodeError(missing_encoder(target), target)
    encoder = get_encoder(syntax)
    options = {
        "rows": info.rows,
        "columns": info.columns,
        "samples_per_pixel": info.samples,
        "bits_allocated": info.bits_allocated,
        "bits_stored": info.bits_stored,
        "pixel_representation": int(info.signed),
        "photometric_interpretation": photometric,
        "planar_configuration": 0,
        "number_of_frames": 1,
        "encoding_plugin": plugins[0],
        **kwargs,
    }

    def encode(arr: np.ndarray[Any, Any]) -> bytes:
        if syntax in (J2K, J2K_LOSSLESS):
            with _OPENJPEG_LOCK:  # pylibjpeg-openjpeg 2.6 crashes when two threads encode at once
                return _encode_j2k(arr)
        return bytes(encoder.encode(arr, **options))

    def _encode_j2k(arr: np.ndarray[Any, Any]) -> bytes:
        if lossy:
            # OpenJPEG's PSNR target is relative to the full scale of the precision: aim at J2K_PSNR over the
            # range the frame uses instead, so that 12 bits of CT in 16 get the same quality as 8-bit data.
            scale = (1 << info.bits_stored) - 1
            return bytes(encoder.encode(arr, j2k_psnr=[J2K_PSNR + _db(scale / _range(arr))], **options))
        return bytes(encoder.encode(arr, **options))

    return Plan(target, photometric, info.bits_allocated, info.bits_stored, lossy, encode)


def _range(arr: np.ndarray[Any, Any]) -> float:
    return max(float(arr.max()) - float(arr.min()), 1.0)


def _db(ratio: float) -> float:
    import math

    return 20 * math.log10(max(ratio, 1.0))


def _j2k(target: str, info: FrameInfo, *, lossy: bool) -> Plan:
    """JPEG 2000 through imagecodecs' OpenJPEG: the same library as pylibjpeg-openjpeg, but it releases the
    GIL and is safe in threads (pylibjpeg-openjpeg 2.6 crashes when two threads encode at once)."""
    import imagecodecs

    if lossy and info.photometric == "PALETTE COLOR":
        raise _refuse(target, "palette indices cannot be compressed lossily")
    colour = info.samples == 3 and info.photometric == "RGB"
    photometric = ("YBR_ICT" if lossy else "YBR_RCT") if colour else info.photometric
    scale = (1 << info.bits_stored) - 1

    def encode(arr: np.ndarray[Any, Any]) -> bytes:
        # The PSNR target (dB) is relative to the full scale of Bits Stored: aim at J2K_PSNR over the range
        # the frame uses instead, so that 12 bits of CT in 16 get the same quality as 8-bit data.
        level: Any = J2K_PSNR + _db(scale / _range(arr)) if lossy else None
        return bytes(
            imagecodecs.jpeg2k_encode(
                arr,
                level,
                codecformat="j2k",
                bitspersample=info.bits_stored,
                reversible=not lossy,
                mct=colour,
            )
        )

    return Plan(J2K if lossy else target, photometric, info.bits_allocated, info.bits_stored, lossy, encode)


def _htj2k(target: str, info: FrameInfo, *, lossy: bool) -> Plan:
    import imagecodecs

    if lossy and info.photometric == "PALETTE COLOR":
        raise _refuse(target, "palette indices cannot be compressed lossily")
    colour = info.samples == 3 and info.photometric == "RGB"
    photometric = ("YBR_ICT" if lossy else "YBR_RCT") if colour else info.photometric

    def encode(arr: np.ndarray[Any, Any]) -> bytes:
        # OpenJPH's quantization step is relative to the full scale of the array's type: make it relative to
        # the range the frame uses (1/HTJ2K_LEVELS of it) so that quality does not depend on Bits Allocated.
        level = _range(arr) / HTJ2K_LEVELS / (1 << (8 * arr.dtype.itemsize)) if lossy else None
        return bytes(imagecodecs.htj2k_encode(arr, level, reversible=not lossy, rgb=colour))

    return Plan(target, photometric, info.bits_allocated, info.bits_stored, lossy, encode)


# -- what a stream says of itself ---------------------------------------------------------------------------


def stream_lossy(transfer_syntax: str, stream: bytes) -> bool:
    """Whether a compressed frame's codestream (its first bytes suffice) was encoded lossily: by its JPEG
    SOF process, its JPEG-LS NEAR parameter, or its JPEG 2000 / HTJ2K wavelet (COD: 9-7 irreversible)."""
    try:
        if transfer_syntax in JPEG_FAMILY:
            return _jpeg_marker(stream, _SOF) not in (0xC3, 0xC7, 0xCB, 0xCF)
        if transfer_syntax in JPEG_LS_FAMILY:
            at = _jpeg_segment(stream, 0xDA)
            components = stream[at + 4]
            return stream[at + 5 + 2 * components] != 0
        if transfer_syntax in J2K_FAMILY:
            return _j2k_irreversible(stream)
    except (IndexError, ValueError, struct.error):
        return transfer_syntax in LOSSY_TARGETS  # unreadable headers: what the syntax usually is
    return False


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_segment(stream: bytes, wanted: int | frozenset[int]) -> int:
    """The offset of the first marker segment of a wanted type (its 0xFF byte), walking from SOI."""
    wanted_set = wanted if isinstance(wanted, frozenset) else frozenset((wanted,))
    if stream[:2] != b"\xff\xd8":
        raise ValueError("no SOI marker")
    at = 2
    while True:
        if stream[at] != 0xFF:
            raise ValueError("not a marker")
        while stream[at + 1] == 0xFF:  # fill bytes
            at += 1
        marker = stream[at + 1]
        if marker in wanted_set:
            return at
        if marker == 0xD9:
            raise ValueError("no such marker")
        at += 2 + struct.unpack_from(">H", stream, at + 2)[0]


def _jpeg_marker(stream: bytes, wanted: frozenset[int]) -> int:
    return stream[_jpeg_segment(stream, wanted) + 1]


def _j2k_irreversible(stream: bytes) -> bool:
    at = stream.find(b"\xff\x4f\xff\x51")  # SOC SIZ (past a JP2 wrapper, when there is one)
    if at < 0:
        raise ValueError("no JPEG 2000 codestream")
    at += 2
    while True:
        marker, length = struct.unpack_from(">HH", stream, at)
        if marker == 0xFF52:  # COD: Scod, SGcod (4 bytes), then levels, width, height, style, transform
            return stream[at + 13] == 0
        if marker == 0xFF90:  # SOT: the main header ended without a COD
            raise ValueError("no COD marker")
        at += 2 + length


# -- imagecodecs as a pydicom decoding plugin ---------------------------------------------------------------

_IMAGECODECS_DECODES = JPEG_FAMILY | JPEG_LS_FAMILY | J2K_FAMILY
DECODER_DEPENDENCIES = {uid: ("numpy", "imagecodecs") for uid in _IMAGECODECS_DECODES}


def is_available(uid: str) -> bool:
    """pydicom's plugin protocol: imagecodecs decodes ``uid`` here."""
    return uid in _IMAGECODECS_DECODES and _have("imagecodecs") and _have("numpy")


def decode_frame(src: bytes, runner: Any) -> bytes:
    """pydicom's plugin protocol: one frame decoded, in the layout pydicom expects (interleaved samples).

    JPEG colour is left as YCbCr for pydicom to convert, except when RGB is asked for: then libjpeg-turbo
    converts (as DCMTK's IJG code does) and the runner is told the pixels are RGB."""
    import imagecodecs

    uid = runner.transfer_syntax
    if uid in HTJ2K_FAMILY:
        if _j2k_irreversible(src) and _have("openjpeg"):
            # imagecodecs 2026.3 returns OpenJPH's irreversible output wrapped around (256 -> 0), not clipped:
            # pylibjpeg-openjpeg decodes these streams (here, rather than by failing over to its plugin, which
            # pydicom would log as an error with a traceback for every frame)
            from openjpeg.utils import decode as openjpeg_decode

            with _OPENJPEG_LOCK:
                arr = openjpeg_decode(src)
        else:
            arr = imagecodecs.htj2k_decode(src)
        if runner.photometric_interpretation in ("YBR_ICT", "YBR_RCT"):
            runner.set_option("photometric_interpretation", "RGB")
    elif uid in J2K_FAMILY:
        arr = imagecodecs.jpeg2k_decode(src)  # the multiple component transform undone by OpenJPEG
        if runner.photometric_interpretation in ("YBR_ICT", "YBR_RCT"):
            runner.set_option("photometric_interpretation", "RGB")
    elif uid in JPEG_LS_FAMILY:
        arr = imagecodecs.jpegls_decode(src)
        if arr.ndim == 3 and arr.shape[-1] != runner.samples_per_pixel:  # colour by plane
            arr = arr.transpose(1, 2, 0)
    else:
        photometric = runner.photometric_interpretation
        if runner.samples_per_pixel == 3 and photometric.startswith("YBR"):
            if runner.get_option("as_rgb", False):
                arr = imagecodecs.jpeg8_decode(src, colorspace="YCbCr", outcolorspace="RGB")
                runner.set_option("photometric_interpretation", "RGB")
            else:
                arr = imagecodecs.jpeg8_decode(src, colorspace="YCbCr", outcolorspace="YCbCr")
        else:
            arr = imagecodecs.jpeg8_decode(src)
    if runner.samples_per_pixel > 1:
        runner.set_option("planar_configuration", 0)
    runner.set_option("bits_allocated", arr.dtype.itemsize * 8)
    return bytes(arr.tobytes())


_registered = False


def _register() -> None:
    """Add imagecodecs to pydicom's decoders of the JPEG and HTJ2K syntaxes (once)."""
    global _registered
    if _registered:
        return
    _registered = True
    if not is_available(JPEG_BASELINE):
        return
    from pydicom.pixels.decoders.base import get_decoder

    for uid in sorted(_IMAGECODECS_DECODES):
        with contextlib.suppress(ValueError, NotImplementedError):  # already there; no such decoder
            get_decoder(uid).add_plugin("imagecodecs", (__name__, "decode_frame"))


# -- choosing a target --------------------------------------------------------------------------------------

#: Lossless targets for an instance whose own syntax a peer did not accept, best first: uncompressed ones
#: (a decode only, and every receiver reads them), Deflate, then lossless compressions.
FALLBACK_ORDER = (
    EXPLICIT,
    IMPLICIT,
    DEFLATED,
    BIG,
    JPEG_LS_LOSSLESS,
    RLE,
    J2K_LOSSLESS,
    HTJ2K_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_LOSSLESS,
)


def lossless_fallback(accepted: Iterable[str]) -> str | None:
    """The best of the ``accepted`` syntaxes to convert an instance to without losing anything (None when
    none of them can be encoded losslessly here)."""
    offered = set(accepted)
    for uid in FALLBACK_ORDER:
        if uid in offered and encodable(uid):
            return uid
    return None
