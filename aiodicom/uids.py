"""Well-known UIDs, our implementation's identification, and the transfer syntaxes DICOM defines.

A static table, so that the sans-IO upper layer (which imports no pydicom) can tell a DICOM transfer syntax
from a private one; a test checks it against pydicom's registry.
"""

from __future__ import annotations

#: Our implementation class UID (PS3.7 D.3.3.2), under the UUID-derived ``2.25.`` root.
IMPLEMENTATION_CLASS_UID = "2.25.263611565932437277038073814110543958642"
#: Our implementation version name: at most 16 characters.
IMPLEMENTATION_VERSION_NAME = "AIODICOM_010"

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
UNCOMPRESSED_TRANSFER_SYNTAXES = (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
)

#: Every transfer syntax of PS3.6 Table A-1, retired ones included, by UID: its name. JPEG XL and Deflated
#: Image Frame Compression (2024) are newer than pydicom 3.0's registry.
TRANSFER_SYNTAXES: dict[str, str] = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.1.98": "Encapsulated Uncompressed Explicit VR Little Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline (Process 1)",
    "1.2.840.10008.1.2.4.51": "JPEG Extended (Process 2 and 4)",
    "1.2.840.10008.1.2.4.52": "JPEG Extended (Process 3 and 5)",
    "1.2.840.10008.1.2.4.53": "JPEG Spectral Selection, Non-Hierarchical (Process 6 and 8)",
    "1.2.840.10008.1.2.4.54": "JPEG Spectral Selection, Non-Hierarchical (Process 7 and 9)",
    "1.2.840.10008.1.2.4.55": "JPEG Full Progression, Non-Hierarchical (Process 10 and 12)",
    "1.2.840.10008.1.2.4.56": "JPEG Full Progression, Non-Hierarchical (Process 11 and 13)",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless, Non-Hierarchical (Process 14)",
    "1.2.840.10008.1.2.4.58": "JPEG Lossless, Non-Hierarchical (Process 15)",
    "1.2.840.10008.1.2.4.59": "JPEG Extended, Hierarchical (Process 16 and 18)",
    "1.2.840.10008.1.2.4.60": "JPEG Extended, Hierarchical (Process 17 and 19)",
    "1.2.840.10008.1.2.4.61": "JPEG Spectral Selection, Hierarchical (Process 20 and 22)",
    "1.2.840.10008.1.2.4.62": "JPEG Spectral Selection, Hierarchical (Process 21 and 23)",
    "1.2.840.10008.1.2.4.63": "JPEG Full Progression, Hierarchical (Process 24 and 26)",
    "1.2.840.10008.1.2.4.64": "JPEG Full Progression, Hierarchical (Process 25 and 27)",
    "1.2.840.10008.1.2.4.65": "JPEG Lossless, Hierarchical (Process 28)",
    "1.2.840.10008.1.2.4.66": "JPEG Lossless, Hierarchical (Process 29)",
    "1.2.840.10008.1.2.4.70": (
        "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])"
    ),
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless Image Compression",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Lossy (Near-Lossless) Image Compression",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.91": "JPEG 2000 Image Compression",
    "1.2.840.10008.1.2.4.92": "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.93": "JPEG 2000 Part 2 Multi-component Image Compression",
    "1.2.840.10008.1.2.4.94": "JPIP Referenced",
    "1.2.840.10008.1.2.4.95": "JPIP Referenced Deflate",
    "1.2.840.10008.1.2.4.100": "MPEG2 Main Profile / Main Level",
    "1.2.840.10008.1.2.4.100.1": "Fragmentable MPEG2 Main Profile / Main Level",
    "1.2.840.10008.1.2.4.101": "MPEG2 Main Profile / High Level",
    "1.2.840.10008.1.2.4.101.1": "Fragmentable MPEG2 Main Profile / High Level",
    "1.2.840.10008.1.2.4.102": "MPEG-4 AVC/H.264 High Profile / Level 4.1",
    "1.2.840.10008.1.2.4.102.1": "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1",
    "1.2.840.10008.1.2.4.103": "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
    "1.2.840.10008.1.2.4.103.1": "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1",
    "1.2.840.10008.1.2.4.104": "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video",
    "1.2.840.10008.1.2.4.104.1": "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video",
    "1.2.840.10008.1.2.4.105": "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video",
    "1.2.840.10008.1.2.4.105.1": "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video",
    "1.2.840.10008.1.2.4.106": "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2",
    "1.2.840.10008.1.2.4.106.1": "Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2",
    "1.2.840.10008.1.2.4.107": "HEVC/H.265 Main Profile / Level 5.1",
    "1.2.840.10008.1.2.4.108": "HEVC/H.265 Main 10 Profile / Level 5.1",
    "1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
    "1.2.840.10008.1.2.4.201": "High-Throughput JPEG 2000 Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.202": (
        "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)"
    ),
    "1.2.840.10008.1.2.4.203": "High-Throughput JPEG 2000 Image Compression",
    "1.2.840.10008.1.2.4.204": "JPIP HTJ2K Referenced",
    "1.2.840.10008.1.2.4.205": "JPIP HTJ2K Referenced Deflate",
    "1.2.840.10008.1.2.5": "RLE Lossless",
    "1.2.840.10008.1.2.6.1": "RFC 2557 MIME encapsulation",
    "1.2.840.10008.1.2.6.2": "XML Encoding",
    "1.2.840.10008.1.2.7.1": "SMPTE ST 2110-20 Uncompressed Progressive Active Video",
    "1.2.840.10008.1.2.7.2": "SMPTE ST 2110-20 Uncompressed Interlaced Active Video",
    "1.2.840.10008.1.2.7.3": "SMPTE ST 2110-30 PCM Digital Audio",
    "1.2.840.10008.1.2.8.1": "Deflated Image Frame Compression",
    "1.2.840.10008.1.20": "Papyrus 3 Implicit VR Little Endian",
}

#: The transfer syntaxes whose data set is deflated (PS3.5 A.5): Deflated Explicit VR Little Endian,
#: JPIP Referenced Deflate, JPIP HTJ2K Referenced Deflate.
DEFLATED_TRANSFER_SYNTAXES = frozenset(
    {DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"}
)


def is_dicom_transfer_syntax(uid: str) -> bool:
    """Whether ``uid`` is a transfer syntax that DICOM defines (not a private one)."""
    return uid in TRANSFER_SYNTAXES
