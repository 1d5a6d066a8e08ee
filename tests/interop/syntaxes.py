"""Test instances in every transfer syntax, made at test time from pydicom's bundled files (no download) with
DCMTK's dcmconv/dcmcjpeg/dcmcjpls/dcmcrle and gdcmconv (JPEG 2000), each with the reference decompression of
an independent decoder: DCMTK's dcmdjpeg/dcmdjpls/dcmdrle/dcmconv, gdcmconv --raw for JPEG 2000 (and pydicom's
pylibjpeg-openjpeg for HTJ2K, which neither DCMTK nor this gdcm knows; those sources are written by
imagecodecs' OpenJPH encoder).

Small images keep the matrix of conversions cheap: 64x64 8-bit, 12-bit (3 frames) and 16-bit signed
monochrome from MR_small.dcm, and 100x100 RGB (2 frames) from SC_rgb_rle_2frame.dcm.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.interop.peers import DCMTK_ENV, require_tool

EXPLICIT = "1.2.840.10008.1.2.1"


@dataclass(frozen=True)
class SyntaxFile:
    """One test instance: its base image, its syntax, the file, the reference decompression (Explicit VR
    LE, by an independent decoder) and whether its encoding lost information."""

    base: str
    syntax: str
    path: Path
    reference: Path
    lossy: bool

    @property
    def name(self) -> str:
        return f"{self.base}-{self.syntax}"


_UNSIGNED = frozenset(("mono8", "mono12", "rgb8"))  # DCMTK compresses signed pixels losslessly only
#: name: (UID, the tool's command line (IN and OUT replaced), lossy, bases it applies to (None: all)).
_ENCODINGS: dict[str, tuple[str, list[str], bool, frozenset[str] | None]] = {
    "implicit": ("1.2.840.10008.1.2", ["dcmconv", "+ti", "IN", "OUT"], False, None),
    "bigendian": ("1.2.840.10008.1.2.2", ["dcmconv", "+tb", "IN", "OUT"], False, None),
    "deflated": ("1.2.840.10008.1.2.1.99", ["dcmconv", "+td", "IN", "OUT"], False, None),
    "rle": ("1.2.840.10008.1.2.5", ["dcmcrle", "IN", "OUT"], False, None),
    "jpegls": ("1.2.840.10008.1.2.4.80", ["dcmcjpls", "IN", "OUT"], False, None),
    "jpegls-near": ("1.2.840.10008.1.2.4.81", ["dcmcjpls", "+en", "IN", "OUT"], True, _UNSIGNED),
    "jpeg-sv1": ("1.2.840.10008.1.2.4.70", ["dcmcjpeg", "IN", "OUT"], False, None),
    "jpeg-p14": ("1.2.840.10008.1.2.4.57", ["dcmcjpeg", "+el", "IN", "OUT"], False, None),
    "jpeg-baseline": (
        "1.2.840.10008.1.2.4.50",
        ["dcmcjpeg", "+eb", "IN", "OUT"],
        True,
        frozenset(("mono8", "rgb8")),
    ),
    "jpeg-extended": (
        "1.2.840.10008.1.2.4.51",
        ["dcmcjpeg", "+ee", "IN", "OUT"],
        True,
        frozenset(("mono12",)),
    ),
    "j2k": ("1.2.840.10008.1.2.4.90", ["gdcmconv", "--j2k", "IN", "OUT"], False, None),
    "j2k-lossy": (
        "1.2.840.10008.1.2.4.91",
        ["gdcmconv", "--j2k", "--lossy", "-q", "45", "IN", "OUT"],
        True,
        None,
    ),
    "htj2k": ("1.2.840.10008.1.2.4.201", [], False, None),
    "htj2k-lossy": ("1.2.840.10008.1.2.4.203", [], True, None),
}
#: The reference decompression of each family (Explicit VR LE out).
_DECOMPRESS = {
    "1.2.840.10008.1.2.5": ["dcmdrle", "IN", "OUT"],
    "1.2.840.10008.1.2.4.80": ["dcmdjpls", "IN", "OUT"],
    "1.2.840.10008.1.2.4.81": ["dcmdjpls", "IN", "OUT"],
    "1.2.840.10008.1.2.4.70": ["dcmdjpeg", "IN", "OUT"],
    "1.2.840.10008.1.2.4.57": ["dcmdjpeg", "IN", "OUT"],
    "1.2.840.10008.1.2.4.50": ["dcmdjpeg", "IN", "OUT"],
    "1.2.840.10008.1.2.4.51": ["dcmdjpeg", "IN", "OUT"],
    "1.2.840.10008.1.2.4.90": ["gdcmconv", "--raw", "IN", "OUT"],
    "1.2.840.10008.1.2.4.91": ["gdcmconv", "--raw", "IN", "OUT"],
}


def _tool(name: str) -> str:
    if name == "gdcmconv":
        path = shutil.which("gdcmconv")
        if path is None:
            pytest.fail("gdcmconv is not installed (Debian: apt-get install libgdcm-tools)")
        return path
    return require_tool(name)


def run_tool(command: list[str], source: Path, target: Path) -> None:
    """Run a DCMTK/gdcm command line with IN and OUT replaced; fail the test with its output if it fails."""
    argv = [
        _tool(command[0]),
        *(str(source) if a == "IN" else str(target) if a == "OUT" else a for a in command[1:]),
    ]
    done = subprocess.run(argv, env=DCMTK_ENV, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 or not target.exists():
        pytest.fail(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout}{done.stderr}")


def _dataset(
    template: Dataset, pixels: np.ndarray, *, bits_stored: int, signed: bool, photometric: str
) -> Dataset:
    frames = pixels.shape[0]
    ds = Dataset()
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality"):
        if keyword in template:
            setattr(ds, keyword, template.data_element(keyword).value)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture: any modality and bit depth
    ds.SOPInstanceUID = generate_uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = pixels.shape[1], pixels.shape[2]
    samples = 3 if pixels.ndim == 4 else 1
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def base_datasets() -> dict[str, Dataset]:
    """The four base images, uncompressed."""
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr_pixels = mr.pixel_array.astype(np.int32)  # 64x64, 127..2145
    low, high = int(mr_pixels.min()), int(mr_pixels.max())
    mono8 = ((mr_pixels - low) * 255 // (high - low)).astype(np.uint8)[None]
    mono12 = np.stack([np.roll(np.clip(mr_pixels, 0, 4095), 7 * i, axis=1) for i in range(3)]).astype(
        np.uint16
    )
    mono16 = mr.pixel_array.astype(np.int16)[None] - 1000  # negative values too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rgb = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm")).pixel_array.astype(np.uint8)
    return {
        "mono8": _dataset(mr, mono8, bits_stored=8, signed=False, photometric="MONOCHROME2"),
        "mono12": _dataset(mr, mono12, bits_stored=12, signed=False, photometric="MONOCHROME2"),
        "mono16": _dataset(mr, mono16, bits_stored=16, signed=True, photometric="MONOCHROME2"),
        "rgb8": _dataset(mr, rgb, bits_stored=8, signed=False, photometric="RGB"),
    }


def _htj2k(base: Dataset, path: Path, syntax: str, lossy: bool) -> None:
    """An HTJ2K instance written with imagecodecs' OpenJPH encoder (neither DCMTK nor gdcm writes one)."""
    import imagecodecs

    pixels = base.pixel_array
    frames = pixels if int(base.get("NumberOfFrames", 1)) > 1 else pixels[None]
    colour = int(base.SamplesPerPixel) == 3
    level = 0.004 if lossy else None
    streams = [imagecodecs.htj2k_encode(f, level, reversible=not lossy, rgb=colour) for f in frames]
    ds = pydicom.dcmread(path.parent / "base.dcm")
    ds.PixelData = encapsulate([bytes(s) for s in streams], has_bot=len(streams) > 1)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if colour:
        ds.PhotometricInterpretation = "YBR_ICT" if lossy else "YBR_RCT"
    if lossy:
        ds.LossyImageCompression = "01"
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)


def _reference_htj2k(path: Path, reference: Path) -> None:
    """HTJ2K decompressed by pydicom with pylibjpeg-openjpeg (not the imagecodecs decoder aiodicom uses)."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array  # pylibjpeg is pydicom's only plugin of its own for HTJ2K
    ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OW" if arr.dtype.itemsize > 1 else "OB"
    ds["PixelData"].is_undefined_length = False
    if int(ds.SamplesPerPixel) == 3:
        ds.PhotometricInterpretation = "RGB"
    ds.file_meta.TransferSyntaxUID = EXPLICIT
    ds.save_as(reference, enforce_file_format=True)


def make_syntax_files(folder: Path) -> list[SyntaxFile]:
    """Every base in every syntax that applies to it, with its reference decompression."""
    files: list[SyntaxFile] = []
    for base_name, base in base_datasets().items():
        where = folder / base_name
        where.mkdir(parents=True, exist_ok=True)
        base_path = where / "base.dcm"
        base.save_as(base_path, enforce_file_format=True)
        files.append(SyntaxFile(base_name, "explicit", base_path, base_path, lossy=False))
        for name, (uid, command, lossy, bases) in _ENCODINGS.items():
            if bases is not None and base_name not in bases:
                continue
            path = where / f"{name}.dcm"
            reference = where / f"{name}.ref.dcm"
            if name.startswith("htj2k"):
                _htj2k(base, path, uid, lossy)
                _reference_htj2k(path, reference)
            else:
                run_tool(command, base_path, path)
                decompress = _DECOMPRESS.get(uid, ["dcmconv", "+te", "IN", "OUT"])
                run_tool(decompress, path, reference)
            files.append(SyntaxFile(base_name, name, path, reference, lossy))
    return files


@pytest.fixture(scope="session")
def syntax_files(tmp_path_factory: pytest.TempPathFactory) -> list[SyntaxFile]:
    """Test instances in every syntax (made once per run; needs DCMTK and gdcmconv)."""
    return make_syntax_files(tmp_path_factory.mktemp("syntaxes"))
