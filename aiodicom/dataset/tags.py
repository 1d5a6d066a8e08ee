"""Tag sets, SOP class and transfer syntax groups, custom tags and option names for the services.

Keywords are pydicom's data dictionary keywords and UIDs come from pydicom's UID registry, so every name here
is checked against the same dictionary that parses the files. The helpers are the Python spellings of the
reference documents' ``getCommonTagSets``, ``combineTags``, ``getCommonSopClasses``,
``getCommonTransferSyntaxes``, ``getAvailableTagNames`` and ``createCustomTag``; each call returns fresh lists
that callers may mutate.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from types import ModuleType
from typing import Any, TypeAlias

from aiodicom.uids import TRANSFER_SYNTAXES

# pydicom (and numpy with it) is imported by the functions that read its dictionaries, not here: the tag sets
# and option names are needed by commands that never look a keyword up.

__all__ = [
    "DEFAULT_TAGS",
    "SERIES_LEVEL_KEYWORDS",
    "STUDY_LEVEL_KEYWORDS",
    "CustomTag",
    "CustomTagLike",
    "combine_tags",
    "create_custom_tag",
    "get_available_tag_names",
    "get_common_sop_classes",
    "get_common_tag_sets",
    "get_common_transfer_syntaxes",
    "normalize_custom_tags",
    "normalize_option",
    "parse_tag",
    "resolve_transfer_syntax",
    "split_levels",
    "storage_sop_classes",
    "validate_keywords",
]

# -- tag sets -----------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# No sequences or bulk data: those are never extracted as strings (see aiodicom.dataset.tag_string).
_TAG_SETS: dict[str, tuple[str, ...]] = {
    "patient_basic": _words(
        "PatientName PatientID PatientBirthDate PatientSex PatientAge PatientWeight PatientSize"
    ),
    "study_basic": _words(
        "StudyInstanceUID StudyDate StudyTime StudyDescription AccessionNumber StudyID ReferringPhysicianName"
    ),
    "series_basic": _words(
        "SeriesInstanceUID SeriesNumber SeriesDescription Modality SeriesDate SeriesTime "
        "BodyPartExamined ProtocolName"
    ),
    "instance_basic": _words("SOPInstanceUID SOPClassUID InstanceNumber ContentDate ContentTime"),
    "image_pixel_info": _words(
        "Rows Columns BitsAllocated BitsStored HighBit PixelRepresentation "
        "PhotometricInterpretation SamplesPerPixel NumberOfFrames"
    ),
    "equipment": _words(
        "Manufacturer ManufacturerModelName StationName InstitutionName SoftwareVersions DeviceSerialNumber"
    ),
    "ct": _words("KVP XRayTubeCurrent ExposureTime ConvolutionKernel SliceThickness CTDIvol"),
    "mr": _words("RepetitionTime EchoTime MagneticFieldStrength FlipAngle ScanningSequence SequenceName"),
    "ultrasound": _words(
        "TransducerType TransducerFrequency MechanicalIndex SoftTissueThermalIndex BoneThermalIndex HeartRate"
    ),
    "pet_nm": _words(
        "Units SeriesType CountsSource DecayCorrection CorrectedImage AttenuationCorrectionMethod "
        "ReconstructionMethod DecayFactor ActualFrameDuration NumberOfSlices NumberOfEnergyWindows"
    ),
    "xa": _words(
        "PositionerPrimaryAngle PositionerSecondaryAngle DistanceSourceToDetector "
        "DistanceSourceToPatient KVP XRayTubeCurrent ExposureTime CineRate"
    ),
    "rt": _words(
        "RTPlanLabel RTPlanName RTPlanDate RTPlanTime StructureSetLabel StructureSetName DoseUnits "
        "DoseType DoseSummationType ApprovalStatus RTImageLabel"
    ),
}
_DEFAULT_PARTS = _words("patient_basic study_basic series_basic instance_basic image_pixel_info equipment")
_TAG_SETS["default"] = tuple(dict.fromkeys(k for part in _DEFAULT_PARTS for k in _TAG_SETS[part]))

#: The default extraction set (42 keywords): what ``on_before_store`` sees when ``extract_tags`` is empty.
DEFAULT_TAGS: tuple[str, ...] = _TAG_SETS["default"]

#: Patient and study modules (Patient, General Study, Patient Study): the study level of a completed study.
STUDY_LEVEL_KEYWORDS: frozenset[str] = frozenset(
    _TAG_SETS["patient_basic"]
    + _TAG_SETS["study_basic"]
    + _words(
        "IssuerOfPatientID OtherPatientIDs OtherPatientNames PatientBirthTime PatientComments "
        "EthnicGroup PatientSpeciesDescription ResponsiblePerson PatientIdentityRemoved "
        "DeidentificationMethod MedicalAlerts Allergies PregnancyStatus SmokingStatus "
        "AdditionalPatientHistory Occupation AdmittingDiagnosesDescription AdmissionID "
        "PhysiciansOfRecord NameOfPhysiciansReadingStudy RequestingPhysician "
        "RequestedProcedureDescription StudyComments"
    )
)
#: General Series and Frame of Reference modules: the series level.
SERIES_LEVEL_KEYWORDS: frozenset[str] = frozenset(
    _TAG_SETS["series_basic"]
    + _words(
        "Laterality PerformingPhysicianName OperatorsName PatientPosition AnatomicalOrientationType "
        "SmallestPixelValueInSeries LargestPixelValueInSeries PerformedProcedureStepID "
        "PerformedProcedureStepStartDate PerformedProcedureStepStartTime "
        "PerformedProcedureStepDescription FrameOfReferenceUID PositionReferenceIndicator"
    )
)


def get_common_tag_sets() -> dict[str, list[str]]:
    """Predefined tag sets: patient_basic (7), study_basic (7), series_basic (8), instance_basic (5),
    image_pixel_info (9), equipment (6), ct (6), mr (6), ultrasound (6), pet_nm (11), xa (8), rt (11), and
    default (the first six in order, 42 keywords)."""
    return {name: list(keywords) for name, keywords in _TAG_SETS.items()}


def combine_tags(*lists: Iterable[str] | Iterable[Iterable[str]]) -> list[str]:
    """Join lists without duplicates, first occurrence first.

    Both ``combine_tags(a, b)`` and the documents' ``combine_tags([a, b])`` work; a bare string counts as one
    item. Works for keywords and UIDs alike.
    """
    groups: list[Any] = list(lists)
    if len(groups) == 1 and not isinstance(groups[0], str):
        items = list(groups[0])
        groups = items if items and all(not isinstance(i, str) for i in items) else [items]
    seen: dict[str, None] = {}
    for group in groups:
        for item in [group] if isinstance(group, str) else group:
            seen.setdefault(str(item), None)
    return list(seen)


def split_levels(tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """``(study, series, instance)``: study and series as in the level sets above; instance is everything
    else (instance, equipment, pixel description, modality-specific and custom tags)."""
    study: dict[str, str] = {}
    series: dict[str, str] = {}
    instance: dict[str, str] = {}
    for key, value in tags.items():
        if key in STUDY_LEVEL_KEYWORDS:
            study[key] = value
        elif key in SERIES_LEVEL_KEYWORDS:
            series[key] = value
        else:
            instance[key] = value
    return study, series, instance


@cache
def _all_keywords() -> tuple[str, ...]:
    from pydicom.datadict import keyword_dict

    return tuple(keyword_dict)


def validate_keywords(keywords: Iterable[str]) -> tuple[str, ...]:
    """The keywords, duplicates removed in order; an unknown one is a ValueError that names it and suggests
    close matches from pydicom's dictionary (imported only when there are keywords to check)."""
    result: dict[str, None] = {}
    for keyword in [keywords] if isinstance(keywords, str) else keywords:
        from pydicom.datadict import tag_for_keyword

        if not isinstance(keyword, str) or tag_for_keyword(keyword) is None:
            close = difflib.get_close_matches(str(keyword), _all_keywords(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"unknown DICOM keyword {keyword!r}{hint}")
        result.setdefault(keyword, None)
    return tuple(result)


@cache
def _available_tag_names() -> tuple[str, ...]:
    from pydicom._dicom_dict import DicomDictionary

    return tuple(sorted(entry[4] for entry in DicomDictionary.values() if entry[4] and entry[3] != "Retired"))


def get_available_tag_names() -> list[str]:
    """Every non-retired keyword of pydicom's data dictionary, sorted."""
    return list(_available_tag_names())


# -- custom tags --------------------------------------------------------------------------------------------

_TAG_FORMS = re.compile(
    r"(?P<g1>[0-9a-f]{4})(?P<e1>[0-9a-f]{4})"
    r"|\(\s*(?P<g2>[0-9a-f]{4})\s*,\s*(?P<e2>[0-9a-f]{4})\s*\)"
    r"|(?P<g3>[0-9a-f]{4})\s*,\s*(?P<e3>[0-9a-f]{4})",
    re.IGNORECASE,
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_tag(text: str | int) -> int:
    """A tag as a 32-bit int from ``GGGGEEEE``, ``(GGGG,EEEE)`` or ``GGGG,EEEE`` (hex, any case, spaces
    allowed around the parts), or an int already; anything else is a ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        if not 0 <= text <= 0xFFFFFFFF:
            raise ValueError(f"tag {text:#x} is out of range: a tag is a 32-bit (group, element) pair")
        return int(text)
    if not isinstance(text, str):
        raise ValueError(f"malformed tag {text!r}: write GGGGEEEE, (GGGG,EEEE) or GGGG,EEEE")
    match = _TAG_FORMS.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"malformed tag {text!r}: write GGGGEEEE, (GGGG,EEEE) or GGGG,EEEE in hex")
    group = match["g1"] or match["g2"] or match["g3"]
    element = match["e1"] or match["e2"] or match["e3"]
    return int(group + element, 16)


@dataclass(frozen=True, slots=True)
class CustomTag:
    """A tag to extract under a name of our choosing (private and vendor tags).

    ``tag`` is the 32-bit tag; a string in any form :func:`parse_tag` accepts is converted at construction,
    so ``CustomTag("00091001", "Vendor")`` works too. ``name`` must look like an identifier.
    ``str(custom)`` is ``GGGGEEEE``.
    """

    tag: int
    name: str

    def __post_init__(self) -> None:
        tag: Any = self.tag
        object.__setattr__(self, "tag", parse_tag(tag))
        name: Any = self.name
        if not isinstance(name, str) or not _NAME.fullmatch(name.strip()):
            raise ValueError(
                f"bad custom tag name {name!r}: use letters, digits and underscores, not a leading digit"
            )
        object.__setattr__(self, "name", name.strip())

    def __str__(self) -> str:
        return f"{self.tag:08X}"


def create_custom_tag(tag: str | int, name: str) -> CustomTag:
    """A :class:`CustomTag` from ``("00091001", "VendorField")``; a malformed tag or name is a ValueError."""
    return CustomTag(parse_tag(tag), name)


#: What ``extract_custom_tags`` accepts: a CustomTag, ``{"tag": ..., "name": ...}`` or ``(tag, name)``.
CustomTagLike: TypeAlias = CustomTag | Mapping[str, Any] | tuple[Any, Any] | list[Any]


def _as_custom_tag(item: Any, index: int) -> CustomTag:
    expected = "a CustomTag, a {'tag': ..., 'name': ...} dict or a (tag, name) tuple"
    if isinstance(item, CustomTag):
        return item
    if isinstance(item, Mapping):
        if "tag" not in item or "name" not in item:
            raise ValueError(f"custom tag #{index} {dict(item)!r} needs 'tag' and 'name' keys")
        return create_custom_tag(item["tag"], item["name"])
    if isinstance(item, tuple | list) and len(item) == 2:
        return create_custom_tag(item[0], item[1])
    raise ValueError(f"custom tag #{index} is {item!r}: expected {expected}")


def normalize_custom_tags(
    items: Iterable[CustomTagLike] | None, keywords: Iterable[str] = ()
) -> tuple[CustomTag, ...]:
    """Custom tags from CustomTag objects, ``{"tag": "00191010", "name": ...}`` dicts or ``(tag, name)``
    tuples. A name used twice, or equal to one of ``keywords`` (the extracted keywords, whose values share the
    same dict), is a ValueError."""
    taken = {keywords} if isinstance(keywords, str) else set(keywords)
    result: list[CustomTag] = []
    for index, item in enumerate(items or ()):
        custom = _as_custom_tag(item, index)
        if custom.name in taken:
            raise ValueError(f"the custom tag name {custom.name!r} is used twice (names must be unique)")
        taken.add(custom.name)
        result.append(custom)
    return tuple(result)


# -- SOP classes --------------------------------------------------------------------------------------------

_NOT_STORAGE = frozenset(
    {
        "1.2.840.10008.1.20.1",  # Storage Commitment Push Model
        "1.2.840.10008.1.20.2",  # Storage Commitment Pull Model (retired)
        "1.2.840.10008.1.3.10",  # Media Storage Directory Storage: the DICOMDIR, never sent with C-STORE
    }
)


def _uid_registry() -> dict[str, tuple[str, str, str, str, str]]:
    """pydicom's UID registry as it ships: ``pydicom._uid_dict.UID_dictionary``. That module is data alone,
    so until pydicom is imported it is read from its file without importing pydicom (and numpy with it):
    a receiver negotiates its storage SOP classes from it at start."""
    loaded = sys.modules.get("pydicom._uid_dict")
    if loaded is None:
        loaded = _standalone_uid_dict()
    registry: dict[str, tuple[str, str, str, str, str]] = loaded.UID_dictionary
    return registry


@cache
def _standalone_uid_dict() -> ModuleType:
    package = importlib.util.find_spec("pydicom")
    locations = package.submodule_search_locations if package is not None else None
    spec = None
    if locations:
        path = f"{next(iter(locations))}/_uid_dict.py"
        spec = importlib.util.spec_from_file_location("aiodicom.dataset._pydicom_uid_dict", path)
    if spec is None or spec.loader is None:  # not a plain file (a zipped install): import pydicom
        import pydicom._uid_dict

        return pydicom._uid_dict
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _storage_classes() -> tuple[str, ...]:
    return tuple(
        uid
        for uid, entry in _uid_registry().items()
        if entry[1] == "SOP Class" and "Storage" in entry[0] and uid not in _NOT_STORAGE
    )


def storage_sop_classes() -> list[str]:
    """Every storage SOP class in pydicom's UID registry, in registry order.

    The rule: entries of type "SOP Class" whose name contains "Storage" (``... Storage``, ``... Storage - For
    Presentation``, ``... Storage - Trial``...), except Storage Commitment (push and pull) and Media Storage
    Directory Storage (the DICOMDIR). Retired classes are included: real devices still send them.
    """
    return list(_storage_classes())


@cache
def _uid_by_keyword() -> dict[str, str]:
    return {entry[4]: uid for uid, entry in _uid_registry().items() if entry[4]}


def _uids(keywords: Iterable[str]) -> list[str]:
    known = _uid_by_keyword()
    return [known[k] for k in keywords]


_SOP_CLASSES: dict[str, tuple[str, ...]] = {
    "ct": _words("CTImageStorage EnhancedCTImageStorage LegacyConvertedEnhancedCTImageStorage"),
    "mr": _words(
        "MRImageStorage EnhancedMRImageStorage EnhancedMRColorImageStorage "
        "LegacyConvertedEnhancedMRImageStorage MRSpectroscopyStorage"
    ),
    "ultrasound": _words("UltrasoundImageStorage UltrasoundMultiFrameImageStorage EnhancedUSVolumeStorage"),
    "pet": _words(
        "PositronEmissionTomographyImageStorage EnhancedPETImageStorage "
        "LegacyConvertedEnhancedPETImageStorage NuclearMedicineImageStorage"
    ),
    "xray": _words(
        "ComputedRadiographyImageStorage DigitalXRayImageStorageForPresentation "
        "DigitalXRayImageStorageForProcessing DigitalIntraOralXRayImageStorageForPresentation "
        "DigitalIntraOralXRayImageStorageForProcessing XRayAngiographicImageStorage "
        "EnhancedXAImageStorage XRayRadiofluoroscopicImageStorage EnhancedXRFImageStorage "
        "XRay3DAngiographicImageStorage"
    ),
    "mammography": _words(
        "DigitalMammographyXRayImageStorageForPresentation "
        "DigitalMammographyXRayImageStorageForProcessing BreastTomosynthesisImageStorage "
        "BreastProjectionXRayImageStorageForPresentation "
        "BreastProjectionXRayImageStorageForProcessing"
    ),
    "secondary_capture": _words(
        "SecondaryCaptureImageStorage MultiFrameSingleBitSecondaryCaptureImageStorage "
        "MultiFrameGrayscaleByteSecondaryCaptureImageStorage "
        "MultiFrameGrayscaleWordSecondaryCaptureImageStorage "
        "MultiFrameTrueColorSecondaryCaptureImageStorage"
    ),
    "radiation_therapy": _words(
        "RTImageStorage RTDoseStorage RTStructureSetStorage RTPlanStorage RTIonPlanStorage "
        "RTBeamsTreatmentRecordStorage RTIonBeamsTreatmentRecordStorage "
        "RTBrachyTreatmentRecordStorage RTTreatmentSummaryRecordStorage"
    ),
    "documents": _words(
        "EncapsulatedPDFStorage EncapsulatedCDAStorage EncapsulatedSTLStorage "
        "EncapsulatedOBJStorage EncapsulatedMTLStorage"
    ),
    "structured_reports": _words(
        "BasicTextSRStorage EnhancedSRStorage ComprehensiveSRStorage Comprehensive3DSRStorage "
        "ExtensibleSRStorage KeyObjectSelectionDocumentStorage XRayRadiationDoseSRStorage "
        "EnhancedXRayRadiationDoseSRStorage MammographyCADSRStorage ChestCADSRStorage"
    ),
}
_IMAGING = _words("ct mr ultrasound pet xray mammography secondary_capture")


def get_common_sop_classes() -> dict[str, list[str]]:
    """SOP class UIDs by family: ct, mr, ultrasound, pet (PET and NM), xray, mammography, secondary_capture,
    radiation_therapy, documents, structured_reports, all_imaging (the union of the seven imaging families)
    and all (every storage class, see :func:`storage_sop_classes`)."""
    groups = {name: _uids(keywords) for name, keywords in _SOP_CLASSES.items()}
    groups["all_imaging"] = combine_tags(*(groups[name] for name in _IMAGING))
    groups["all"] = storage_sop_classes()
    return groups


# -- transfer syntaxes --------------------------------------------------------------------------------------

_TRANSFER_SYNTAXES: dict[str, tuple[str, ...]] = {
    # Preference order: Explicit VR Little Endian first (what we propose and accept first).
    "uncompressed": _words("ExplicitVRLittleEndian ImplicitVRLittleEndian ExplicitVRBigEndian"),
    "jpeg": _words("JPEGBaseline8Bit JPEGExtended12Bit JPEGLossless JPEGLosslessSV1"),
    "jpeg_ls": _words("JPEGLSLossless JPEGLSNearLossless"),
    "jpeg2000": _words(
        "JPEG2000Lossless JPEG2000 JPEG2000MCLossless JPEG2000MC HTJ2KLossless HTJ2KLosslessRPCL HTJ2K"
    ),
    "rle": _words("RLELossless"),
    "mpeg": _words(
        "MPEG2MPML MPEG2MPMLF MPEG2MPHL MPEG2MPHLF MPEG4HP41 MPEG4HP41F MPEG4HP41BD MPEG4HP41BDF "
        "MPEG4HP422D MPEG4HP422DF MPEG4HP423D MPEG4HP423DF MPEG4HP42STEREO MPEG4HP42STEREOF "
        "HEVCMP51 HEVCM10P51"
    ),
}
_COMPRESSED = _words("jpeg jpeg_ls jpeg2000 rle mpeg")


def get_common_transfer_syntaxes() -> dict[str, list[str]]:
    """Transfer syntax UIDs by family: uncompressed (Explicit VR LE, Implicit VR LE, Explicit VR BE), jpeg,
    jpeg_ls, jpeg2000 (with HTJ2K), rle, mpeg (MPEG-2, MPEG-4 and HEVC), all_compressed (the five compressed
    families) and all (uncompressed, Deflated Explicit VR Little Endian and all_compressed)."""
    groups = {name: _uids(keywords) for name, keywords in _TRANSFER_SYNTAXES.items()}
    groups["all_compressed"] = combine_tags(*(groups[name] for name in _COMPRESSED))
    deflated = _uids(["DeflatedExplicitVRLittleEndian"])
    groups["all"] = combine_tags(groups["uncompressed"], deflated, groups["all_compressed"])
    return groups


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


# The reference documents' names. They win over pydicom's keywords where the two disagree: the documents'
# "JPEGLossless" is 1.2.840.10008.1.2.4.70 (Process 14 SV1), pydicom's JPEGLossless keyword is ...4.57.
_DOCUMENT_SYNTAX_NAMES = {
    "ImplicitVRLittleEndian": "1.2.840.10008.1.2",
    "ExplicitVRLittleEndian": "1.2.840.10008.1.2.1",
    "ExplicitVRBigEndian": "1.2.840.10008.1.2.2",
    "DeflatedExplicitVRLittleEndian": "1.2.840.10008.1.2.1.99",
    "JPEGBaseline": "1.2.840.10008.1.2.4.50",
    "JPEGExtended": "1.2.840.10008.1.2.4.51",
    "JPEGLossless": "1.2.840.10008.1.2.4.70",
    "JPEGLosslessP14": "1.2.840.10008.1.2.4.57",
    "JPEGLSLossless": "1.2.840.10008.1.2.4.80",
    "JPEGLSLossy": "1.2.840.10008.1.2.4.81",
    "JPEG2000Lossless": "1.2.840.10008.1.2.4.90",
    "JPEG2000": "1.2.840.10008.1.2.4.91",
    "RLELossless": "1.2.840.10008.1.2.5",
}


def _syntax_names() -> dict[str, tuple[str, str]]:
    """Squashed name -> (UID, the name as written), for pydicom's names, keywords and the documents' names.

    Made again when pydicom's dictionary grows (other libraries add syntaxes pydicom does not know yet)."""
    from pydicom._uid_dict import UID_dictionary

    return _syntax_names_of(len(UID_dictionary))


@cache
def _syntax_names_of(size: int) -> dict[str, tuple[str, str]]:
    from pydicom._uid_dict import UID_dictionary

    names: dict[str, tuple[str, str]] = {}
    syntaxes = [(u, e) for u, e in UID_dictionary.items() if e[1] == "Transfer Syntax"]
    for uid, entry in syntaxes:  # names first, so that keywords and then the documents' names win
        names.setdefault(_squash(entry[0]), (uid, entry[0]))
    for uid, entry in syntaxes:
        names[_squash(entry[4])] = (uid, entry[4])
    names.update({_squash(k): (uid, k) for k, uid in _DOCUMENT_SYNTAX_NAMES.items()})
    return names


def resolve_sop_class(name: str) -> str:
    """A SOP class UID from a UID (private ones too) or a pydicom keyword (``CTImageStorage``). Anything
    else is a ValueError: an abstract syntax that can match nothing must not pass silently."""
    from pydicom._uid_dict import UID_dictionary

    text = str(name).strip().rstrip("\0").strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)*", text) and len(text) <= 64:
        return text
    for uid, entry in UID_dictionary.items():
        if entry[4] == text:
            return str(uid)
    close = difflib.get_close_matches(text, [e[4] for e in UID_dictionary.values() if e[4]], n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown SOP class {name!r}: give a UID or a pydicom keyword{hint}")


def resolve_transfer_syntax(name: str, *, allow_private: bool = False) -> str:
    """A transfer syntax UID from a UID, a pydicom keyword or name (``JPEGBaseline8Bit``, ``JPEG Baseline
    (Process 1)``) or the reference documents' names (``JPEGBaseline``, ``JPEG2000Lossless``; their
    ``JPEGLossless`` is ...4.70), case-insensitively. An unknown name, or a UID that is not a transfer syntax
    known to pydicom (registered private syntaxes included), is a ValueError; with ``allow_private`` any
    UID is taken as a private transfer syntax (a receiver may accept one it was told about)."""
    text = str(name).strip().rstrip("\0").strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)*", text):
        if len(text) > 64:
            raise ValueError(f"{text} is not a UID: longer than 64 characters")
        from pydicom._uid_dict import UID_dictionary
        from pydicom.uid import PrivateTransferSyntaxes

        private = {str(s) for s in PrivateTransferSyntaxes}
        known = UID_dictionary.get(text, ("", ""))[1] == "Transfer Syntax" or text in private
        if not known and not allow_private:
            raise ValueError(f"{text} is not a transfer syntax UID known to pydicom")
        return text
    names = _syntax_names()
    found = names.get(_squash(text))
    if found is None:
        close = [names[c][1] for c in difflib.get_close_matches(_squash(text), list(names), n=3)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        expected = "give a UID, a pydicom keyword or a name like JPEGBaseline"
        raise ValueError(f"unknown transfer syntax {name!r}: {expected}{hint}")
    return found[0]


# -- option strings -----------------------------------------------------------------------------------------


def normalize_option(value: str, choices: Iterable[str], what: str) -> str:
    """The choice that ``value`` names: snake_case or the documents' CamelCase, any case, with ``-``, ``_`` or
    spaces (``AllStorage``, ``all-storage`` -> ``all_storage``; ``S3`` -> ``s3``). An Enum gives its value.
    Anything else is a ValueError listing the choices."""
    options = list(choices)
    raw: Any = value.value if isinstance(value, Enum) else value
    if isinstance(raw, str):
        key = _squash(raw)
        for choice in options:
            if key == _squash(choice):
                return choice
    raise ValueError(f"{what} must be one of {', '.join(options)}, not {value!r}")


def uid_name(uid: str) -> str:
    """The name of a SOP class or transfer syntax UID (the UID itself when neither pydicom nor the table of
    transfer syntaxes, which has those newer than pydicom's registry, knows it)."""
    from pydicom.uid import UID

    name = str(UID(uid).name)
    if name and name != uid:
        return name
    return TRANSFER_SYNTAXES.get(uid, uid)
