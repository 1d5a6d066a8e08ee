"""Tag sets, SOP class and transfer syntax groups, custom tags and option names for the services.

Keywords are pydicom's data dictionary keywords; UIDs come from pydicom's UID registry.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydicom._dicom_dict import DicomDictionary
from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import keyword_dict, tag_for_keyword

_TAG_SETS: dict[str, tuple[str, ...]] = {
    "patient_basic": (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "PatientAge",
        "PatientWeight",
        "PatientSize",
    ),
    "study_basic": (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyDescription",
        "AccessionNumber",
        "StudyID",
        "ReferringPhysicianName",
    ),
    "series_basic": (
        "SeriesInstanceUID",
        "SeriesNumber",
        "SeriesDescription",
        "Modality",
        "SeriesDate",
        "SeriesTime",
        "BodyPartExamined",
        "ProtocolName",
    ),
    "instance_basic": ("SOPInstanceUID", "SOPClassUID", "InstanceNumber", "ContentDate", "ContentTime"),
    "image_pixel_info": (
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PhotometricInterpretation",
        "SamplesPerPixel",
        "NumberOfFrames",
    ),
    "equipment": (
        "Manufacturer",
        "ManufacturerModelName",
        "StationName",
        "InstitutionName",
        "SoftwareVersions",
        "DeviceSerialNumber",
    ),
    "ct": (
        "KVP",
        "XRayTubeCurrent",
        "ExposureTime",
        "ConvolutionKernel",
        "SliceThickness",
        "SpacingBetweenSlices",
    ),
    "mr": (
        "RepetitionTime",
        "EchoTime",
        "MagneticFieldStrength",
        "FlipAngle",
        "SequenceName",
        "ImagingFrequency",
    ),
    "ultrasound": (
        "TransducerType",
        "TransducerFrequency",
        "NumberOfStages",
        "StageNumber",
        "ViewNumber",
        "HeartRate",
    ),
    "pet_nm": (
        "RadiopharmaceuticalInformationSequence",
        "Units",
        "DecayCorrection",
        "CorrectedImage",
        "CountsSource",
        "ActualFrameDuration",
        "EnergyWindowRangeSequence",
        "NumberOfSlices",
        "NumberOfTimeSlices",
        "SeriesType",
        "ReconstructionMethod",
    ),
    "xa": (
        "PositionerPrimaryAngle",
        "PositionerSecondaryAngle",
        "DistanceSourceToDetector",
        "DistanceSourceToPatient",
        "KVP",
        "XRayTubeCurrent",
        "ExposureTime",
        "FieldOfViewShape",
    ),
    "rt": (
        "RTPlanLabel",
        "RTPlanName",
        "RTPlanDate",
        "RTPlanTime",
        "StructureSetLabel",
        "StructureSetName",
        "DoseUnits",
        "DoseType",
        "DoseSummationType",
        "ApprovalStatus",
        "RTImageLabel",
    ),
}
_TAG_SETS["default"] = tuple(
    keyword
    for name in (
        "patient_basic",
        "study_basic",
        "series_basic",
        "instance_basic",
        "image_pixel_info",
        "equipment",
    )
    for keyword in _TAG_SETS[name]
)
DEFAULT_TAGS: tuple[str, ...] = _TAG_SETS["default"]

#: Patient and study modules: the study level of a completed study.
STUDY_LEVEL_KEYWORDS = frozenset(
    _TAG_SETS["patient_basic"]
    + _TAG_SETS["study_basic"]
    + (
        "IssuerOfPatientID",
        "OtherPatientIDs",
        "OtherPatientNames",
        "PatientComments",
        "EthnicGroup",
        "AdmittingDiagnosesDescription",
        "NameOfPhysiciansReadingStudy",
        "StudyComments",
    )
)
#: The series module: the series level.
SERIES_LEVEL_KEYWORDS = frozenset(
    _TAG_SETS["series_basic"]
    + (
        "Laterality",
        "PerformingPhysicianName",
        "OperatorsName",
        "FrameOfReferenceUID",
        "PatientPosition",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepDescription",
    )
)


def get_common_tag_sets() -> dict[str, list[str]]:
    """Predefined tag sets: patient_basic, study_basic, series_basic, instance_basic, image_pixel_info,
    equipment, ct, mr, ultrasound, pet_nm, xa, rt, and default (the first six, 42 tags)."""
    return {name: list(keywords) for name, keywords in _TAG_SETS.items()}


def combine_tags(*lists: Iterable[str] | Iterable[Iterable[str]]) -> list[str]:
    """Join tag lists without duplicates, in order; ``combine_tags([a, b])`` works too."""
    if len(lists) == 1:
        items = list(lists[0])
        if items and not isinstance(items[0], str):
            lists = tuple(items)
    seen: dict[str, None] = {}
    for group in lists:
        for keyword in group:
            seen.setdefault(str(keyword), None)
    return list(seen)


def split_levels(tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(study, series, instance) tags: instance is everything that is not study or series level."""
    study = {k: v for k, v in tags.items() if k in STUDY_LEVEL_KEYWORDS}
    series = {k: v for k, v in tags.items() if k in SERIES_LEVEL_KEYWORDS}
    instance = {k: v for k, v in tags.items() if k not in study and k not in series}
    return study, series, instance


def validate_keywords(keywords: Iterable[str]) -> tuple[str, ...]:
    """Every keyword must be in pydicom's dictionary; an unknown one is a ValueError with suggestions."""
    result: dict[str, None] = {}
    for keyword in keywords:
        if tag_for_keyword(keyword) is None:
            close = difflib.get_close_matches(keyword, keyword_dict.keys(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"unknown DICOM keyword {keyword!r}{hint}")
        result.setdefault(keyword, None)
    return tuple(result)


@dataclass(frozen=True, slots=True)
class CustomTag:
    """A tag to extract under a name of our choosing (private and vendor tags)."""

    tag: int
    name: str

    def __str__(self) -> str:
        return f"{self.tag:08X}"


_TAG_FORMS = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")


def parse_tag(text: str | int) -> int:
    """A tag from ``GGGGEEEE``, ``(GGGG,EEEE)`` or ``GGGG,EEEE``."""
    if isinstance(text, int):
        if not 0 <= text <= 0xFFFFFFFF:
            raise ValueError(f"tag {text} is out of range")
        return text
    match = _TAG_FORMS.match(text.strip())
    if match is None:
        raise ValueError(f"malformed tag {text!r}: write GGGGEEEE, (GGGG,EEEE) or GGGG,EEEE")
    return int(match.group(1) + match.group(2), 16)


def create_custom_tag(tag: str | int, name: str) -> CustomTag:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a custom tag needs a name")
    return CustomTag(parse_tag(tag), name.strip())


def normalize_custom_tags(items: Iterable[Any] | None, keywords: Iterable[str] = ()) -> tuple[CustomTag, ...]:
    """Custom tags from CustomTag objects, ``{"tag": ..., "name": ...}`` dicts or ``(tag, name)`` tuples.

    A name used twice (or equal to an extracted keyword) is a ValueError.
    """
    taken = set(keywords)
    result: list[CustomTag] = []
    for item in items or ():
        if isinstance(item, CustomTag):
            custom = item
        elif isinstance(item, Mapping):
            custom = create_custom_tag(item["tag"], item["name"])
        else:
            tag, name = item
            custom = create_custom_tag(tag, name)
        if custom.name in taken:
            raise ValueError(f"the custom tag name {custom.name!r} is used twice")
        taken.add(custom.name)
        result.append(custom)
    return tuple(result)


def get_available_tag_names() -> list[str]:
    """Every non-retired keyword of pydicom's data dictionary, sorted."""
    return sorted(entry[4] for entry in DicomDictionary.values() if entry[4] and entry[3] != "Retired")


@cache
def _storage_classes() -> tuple[str, ...]:
    return tuple(
        uid
        for uid, (name, kind, *_rest) in UID_dictionary.items()
        if kind == "SOP Class" and "Storage" in name and "Commitment" not in name
    )


def storage_sop_classes() -> list[str]:
    """Every storage SOP class in pydicom's UID registry (retired ones too: devices still send them)."""
    return list(_storage_classes())


_OPTION_ALIASES = {"s3": "s3"}


def normalize_option(value: str, choices: Iterable[str], what: str) -> str:
    """Accept ``all_storage``, ``AllStorage``, ``ALL-STORAGE``... for the choice ``all_storage``."""
    options = list(choices)
    key = re.sub(r"[^a-z0-9]", "", str(value).lower())
    for choice in options:
        if key == choice.replace("_", ""):
            return choice
    raise ValueError(f"{what} must be one of {', '.join(options)}, not {value!r}")


_DOCUMENT_SYNTAX_NAMES = {
    "implicitvrlittleendian": "1.2.840.10008.1.2",
    "explicitvrlittleendian": "1.2.840.10008.1.2.1",
    "explicitvrbigendian": "1.2.840.10008.1.2.2",
    "deflatedexplicitvrlittleendian": "1.2.840.10008.1.2.1.99",
    "jpegbaseline": "1.2.840.10008.1.2.4.50",
    "jpegextended": "1.2.840.10008.1.2.4.51",
    "jpeglossless": "1.2.840.10008.1.2.4.70",
    "jpeglslossless": "1.2.840.10008.1.2.4.80",
    "jpeglslossy": "1.2.840.10008.1.2.4.81",
    "jpeg2000lossless": "1.2.840.10008.1.2.4.90",
    "jpeg2000": "1.2.840.10008.1.2.4.91",
    "rlelossless": "1.2.840.10008.1.2.5",
}


def resolve_transfer_syntax(name: str) -> str:
    """A transfer syntax UID from a UID, a pydicom keyword (``JPEGBaseline8Bit``) or the reference documents'
    names (``JPEGBaseline``, ``JPEG2000Lossless``...), case-insensitively."""
    text = str(name).strip()
    if re.fullmatch(r"[0-9.]+", text):
        if UID_dictionary.get(text, ("", ""))[1] != "Transfer Syntax":
            raise ValueError(f"{text} is not a transfer syntax UID known to pydicom")
        return text
    key = re.sub(r"[^a-z0-9]", "", text.lower())
    if key in _DOCUMENT_SYNTAX_NAMES:
        return _DOCUMENT_SYNTAX_NAMES[key]
    for uid, (_name, kind, _info, _retired, keyword) in UID_dictionary.items():
        if kind == "Transfer Syntax" and keyword.lower() == key:
            return uid
    raise ValueError(
        f"unknown transfer syntax {name!r}: give a UID, a pydicom keyword or a name like JPEGBaseline"
    )


def _uids(*keywords: str) -> list[str]:
    by_keyword = {entry[4]: uid for uid, entry in UID_dictionary.items()}
    return [by_keyword[k] for k in keywords]


_SOP_CLASSES: dict[str, tuple[str, ...]] = {
    "ct": ("CTImageStorage", "EnhancedCTImageStorage", "LegacyConvertedEnhancedCTImageStorage"),
    "mr": (
        "MRImageStorage",
        "EnhancedMRImageStorage",
        "EnhancedMRColorImageStorage",
        "LegacyConvertedEnhancedMRImageStorage",
        "MRSpectroscopyStorage",
    ),
    "ultrasound": ("UltrasoundImageStorage", "UltrasoundMultiFrameImageStorage", "EnhancedUSVolumeStorage"),
    "pet": (
        "PositronEmissionTomographyImageStorage",
        "EnhancedPETImageStorage",
        "LegacyConvertedEnhancedPETImageStorage",
        "NuclearMedicineImageStorage",
    ),
    "xray": (
        "ComputedRadiographyImageStorage",
        "DigitalXRayImageStorageForPresentation",
        "DigitalXRayImageStorageForProcessing",
        "XRayAngiographicImageStorage",
        "EnhancedXAImageStorage",
        "XRayRadiofluoroscopicImageStorage",
        "EnhancedXRFImageStorage",
    ),
    "mammography": (
        "DigitalMammographyXRayImageStorageForPresentation",
        "DigitalMammographyXRayImageStorageForProcessing",
        "BreastTomosynthesisImageStorage",
    ),
    "secondary_capture": (
        "SecondaryCaptureImageStorage",
        "MultiFrameSingleBitSecondaryCaptureImageStorage",
        "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
        "MultiFrameGrayscaleWordSecondaryCaptureImageStorage",
        "MultiFrameTrueColorSecondaryCaptureImageStorage",
    ),
    "radiation_therapy": (
        "RTImageStorage",
        "RTDoseStorage",
        "RTStructureSetStorage",
        "RTPlanStorage",
        "RTIonPlanStorage",
        "RTBeamsTreatmentRecordStorage",
    ),
    "documents": ("EncapsulatedPDFStorage", "EncapsulatedCDAStorage", "EncapsulatedSTLStorage"),
    "structured_reports": (
        "BasicTextSRStorage",
        "EnhancedSRStorage",
        "ComprehensiveSRStorage",
        "Comprehensive3DSRStorage",
        "KeyObjectSelectionDocumentStorage",
    ),
}
_IMAGING = ("ct", "mr", "ultrasound", "pet", "xray", "mammography", "secondary_capture")

_TRANSFER_SYNTAXES: dict[str, tuple[str, ...]] = {
    "uncompressed": ("ExplicitVRLittleEndian", "ImplicitVRLittleEndian", "ExplicitVRBigEndian"),
    "jpeg": ("JPEGBaseline8Bit", "JPEGExtended12Bit", "JPEGLossless", "JPEGLosslessSV1"),
    "jpeg_ls": ("JPEGLSLossless", "JPEGLSNearLossless"),
    "jpeg2000": ("JPEG2000Lossless", "JPEG2000", "HTJ2KLossless", "HTJ2KLosslessRPCL", "HTJ2K"),
    "rle": ("RLELossless",),
    "mpeg": ("MPEG2MPML", "MPEG2MPHL", "MPEG4HP41", "MPEG4HP41BD", "HEVCMP51", "HEVCM10P51"),
}


def get_common_sop_classes() -> dict[str, list[str]]:
    """SOP class UIDs by family: ct, mr, ultrasound, pet, xray, mammography, secondary_capture,
    radiation_therapy, documents, structured_reports, all_imaging, and all (every storage class)."""
    groups = {name: _uids(*keywords) for name, keywords in _SOP_CLASSES.items()}
    groups["all_imaging"] = combine_tags(*(groups[name] for name in _IMAGING))
    groups["all"] = storage_sop_classes()
    return groups


def get_common_transfer_syntaxes() -> dict[str, list[str]]:
    """Transfer syntaxes by family: uncompressed, jpeg, jpeg_ls, jpeg2000, rle, mpeg, all_compressed, all."""
    groups = {name: _uids(*keywords) for name, keywords in _TRANSFER_SYNTAXES.items()}
    groups["all_compressed"] = combine_tags(
        *(groups[n] for n in ("jpeg", "jpeg_ls", "jpeg2000", "rle", "mpeg"))
    )
    groups["all"] = combine_tags(groups["uncompressed"], ["1.2.840.10008.1.2.1.99"], groups["all_compressed"])
    return groups
