"""Known test studies for query/retrieve tests, built from pydicom's bundled test files.

Every instance gets fresh UIDs and consistent patient/study/series attributes, but keeps its source file's
transfer syntax and pixel data bytes unchanged, so a study covers many transfer syntaxes and SOP classes.

``build_qr_studies(directory)`` writes:

* Study A -- PatientID ``QR-PAT-1``, PatientName ``QR^Alpha``, StudyDate ``20240115``, AccessionNumber
  ``ACC-A``, StudyDescription ``QR multi-syntax``, StudyID ``A1``; 8 series (one per transfer syntax, series
  numbers 1..8) and 11 instances, see ``STUDY_A_SERIES``.
* Study B -- PatientID ``QR-PAT-2``, PatientName ``QR^Beta``, StudyDate ``20240320``, AccessionNumber
  ``ACC-B``, StudyDescription ``QR plain CT``, StudyID ``B1``; one CT series (number 1) of 3 instances.

``build_large_study(directory, count, series)`` writes ``count`` small CT instances of one study (benchmarks).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid


@dataclass(frozen=True)
class SeriesSpec:
    """One series to build: ``count`` copies of the pydicom test file ``source``."""

    source: str
    count: int
    description: str


#: Study A: one series per transfer syntax / SOP class (series number = index + 1).
STUDY_A_SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("CT_small.dcm", 3, "CT explicit VR little endian"),
    SeriesSpec("MR_small_implicit.dcm", 2, "MR implicit VR little endian"),
    SeriesSpec("MR_small_bigendian.dcm", 1, "MR explicit VR big endian"),
    SeriesSpec("MR_small_RLE.dcm", 1, "MR RLE lossless"),
    SeriesSpec("SC_rgb_jpeg_dcmtk.dcm", 1, "SC JPEG baseline"),
    SeriesSpec("MR_small_jpeg_ls_lossless.dcm", 1, "MR JPEG-LS lossless"),
    SeriesSpec("MR_small_jp2klossless.dcm", 1, "MR JPEG 2000 lossless"),
    SeriesSpec("image_dfl.dcm", 1, "SC deflated explicit VR little endian"),
)

#: Study B: one plain CT series of three instances.
STUDY_B_SERIES: tuple[SeriesSpec, ...] = (SeriesSpec("CT_small.dcm", 3, "CT plain"),)


@dataclass(frozen=True)
class Instance:
    """One written file and the identifying attributes it carries."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str
    modality: str
    instance_number: int
    source: str  # the pydicom test file it was made from


@dataclass(frozen=True)
class Series:
    series_instance_uid: str
    study_instance_uid: str
    series_number: int
    modality: str
    description: str
    instances: tuple[Instance, ...]

    @property
    def sop_class_uid(self) -> str:
        return self.instances[0].sop_class_uid

    @property
    def transfer_syntax_uid(self) -> str:
        return self.instances[0].transfer_syntax_uid


@dataclass(frozen=True)
class Study:
    study_instance_uid: str
    patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    description: str
    series: tuple[Series, ...]

    @property
    def instances(self) -> tuple[Instance, ...]:
        return tuple(inst for s in self.series for inst in s.instances)

    @property
    def modalities(self) -> frozenset[str]:
        """The values of ModalitiesInStudy."""
        return frozenset(s.modality for s in self.series)

    @property
    def sop_classes(self) -> frozenset[str]:
        """The values of SOPClassesInStudy."""
        return frozenset(i.sop_class_uid for i in self.instances)

    @property
    def transfer_syntaxes(self) -> frozenset[str]:
        return frozenset(i.transfer_syntax_uid for i in self.instances)

    @property
    def paths(self) -> list[Path]:
        return [i.path for i in self.instances]


@dataclass(frozen=True)
class QrData:
    """Everything written by ``build_qr_studies``; ``a`` and ``b`` are studies A and B."""

    root: Path
    studies: tuple[Study, ...]
    _by_sop: dict[str, Instance] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for inst in self.all_instances():
            self._by_sop[inst.sop_instance_uid] = inst

    @property
    def a(self) -> Study:
        return self.studies[0]

    @property
    def b(self) -> Study:
        return self.studies[1]

    def study(self, study_uid: str) -> Study:
        for s in self.studies:
            if s.study_instance_uid == study_uid:
                return s
        raise KeyError(study_uid)

    def study_of_patient(self, patient_id: str) -> Study:
        for s in self.studies:
            if s.patient_id == patient_id:
                return s
        raise KeyError(patient_id)

    def series(self, study_uid: str) -> tuple[Series, ...]:
        return self.study(study_uid).series

    def series_by_uid(self, series_uid: str) -> Series:
        for s in self.studies:
            for ser in s.series:
                if ser.series_instance_uid == series_uid:
                    return ser
        raise KeyError(series_uid)

    def instances(self, study_uid: str | None = None, series_uid: str | None = None) -> tuple[Instance, ...]:
        """All instances, or those of one study and/or one series."""
        return tuple(
            i
            for i in self.all_instances()
            if (study_uid is None or i.study_instance_uid == study_uid)
            and (series_uid is None or i.series_instance_uid == series_uid)
        )

    def instance(self, sop_instance_uid: str) -> Instance:
        return self._by_sop[sop_instance_uid]

    def all_instances(self) -> Iterator[Instance]:
        for s in self.studies:
            yield from s.instances

    @property
    def paths(self) -> list[Path]:
        return [i.path for i in self.all_instances()]


def _load(source: str) -> Dataset:
    path = get_testdata_file(source)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {source} is missing")
    return dcmread(path)


def _write(ds: Dataset, path: Path) -> None:
    """Write ``ds`` in the transfer syntax of its file meta (pydicom 3 encodes, and deflates, from it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _instance_from(ds: Dataset, path: Path, source: str) -> Instance:
    return Instance(
        path=path,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        study_instance_uid=str(ds.StudyInstanceUID),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        patient_id=str(ds.PatientID),
        modality=str(ds.Modality),
        instance_number=int(ds.InstanceNumber),
        source=source,
    )


def _set_study(ds: Dataset, study: dict[str, str]) -> None:
    ds.PatientID = study["patient_id"]
    ds.PatientName = study["patient_name"]
    ds.PatientBirthDate = study["patient_birth_date"]
    ds.PatientSex = study["patient_sex"]
    ds.StudyInstanceUID = study["study_instance_uid"]
    ds.StudyDate = study["study_date"]
    ds.StudyTime = study["study_time"]
    ds.AccessionNumber = study["accession_number"]
    ds.StudyID = study["study_id"]
    ds.StudyDescription = study["description"]
    ds.ReferringPhysicianName = "QR^Referrer"
    for keyword in ("OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "IssuerOfPatientID"):
        if keyword in ds:
            delattr(ds, keyword)


def _set_instance(ds: Dataset, series_uid: str, frame_uid: str, number: int, series_number: int) -> None:
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = number
    if "FrameOfReferenceUID" in ds:
        ds.FrameOfReferenceUID = frame_uid


def _build_study(directory: Path, study: dict[str, str], specs: tuple[SeriesSpec, ...]) -> Study:
    study_dir = directory / study["study_id"]
    series_list = []
    for series_number, spec in enumerate(specs, start=1):
        template = _load(spec.source)
        syntax = template.file_meta.TransferSyntaxUID
        pixels = template.get("PixelData")
        series_uid, frame_uid = generate_uid(), generate_uid()
        instances = []
        for number in range(1, spec.count + 1):
            ds = copy.deepcopy(template)
            _set_study(ds, study)
            ds.SeriesDescription = spec.description
            _set_instance(ds, series_uid, frame_uid, number, series_number)
            path = study_dir / f"s{series_number:02d}" / f"i{number:03d}.dcm"
            _write(ds, path)
            instances.append(_instance_from(ds, path, spec.source))
            _check_written(path, syntax, pixels, str(ds.SOPInstanceUID))
        series_list.append(
            Series(
                series_instance_uid=series_uid,
                study_instance_uid=study["study_instance_uid"],
                series_number=series_number,
                modality=str(template.Modality),
                description=spec.description,
                instances=tuple(instances),
            )
        )
    return Study(
        study_instance_uid=study["study_instance_uid"],
        patient_id=study["patient_id"],
        patient_name=study["patient_name"],
        patient_birth_date=study["patient_birth_date"],
        patient_sex=study["patient_sex"],
        study_date=study["study_date"],
        study_time=study["study_time"],
        accession_number=study["accession_number"],
        study_id=study["study_id"],
        description=study["description"],
        series=tuple(series_list),
    )


def _check_written(path: Path, syntax: UID, pixels: bytes | None, sop_uid: str) -> None:
    """The written file reads back with its source's transfer syntax and unchanged pixel data."""
    back = dcmread(path)
    if back.file_meta.TransferSyntaxUID != syntax:
        raise AssertionError(f"{path}: written as {back.file_meta.TransferSyntaxUID}, expected {syntax}")
    if back.SOPInstanceUID != sop_uid or back.file_meta.MediaStorageSOPInstanceUID != sop_uid:
        raise AssertionError(f"{path}: SOP Instance UID did not round-trip")
    if back.get("PixelData") != pixels:
        raise AssertionError(f"{path}: pixel data bytes changed")


def study_a_attributes() -> dict[str, str]:
    return {
        "study_instance_uid": generate_uid(),
        "patient_id": "QR-PAT-1",
        "patient_name": "QR^Alpha",
        "patient_birth_date": "19700101",
        "patient_sex": "F",
        "study_date": "20240115",
        "study_time": "101500",
        "accession_number": "ACC-A",
        "study_id": "A1",
        "description": "QR multi-syntax",
    }


def study_b_attributes() -> dict[str, str]:
    return {
        "study_instance_uid": generate_uid(),
        "patient_id": "QR-PAT-2",
        "patient_name": "QR^Beta",
        "patient_birth_date": "19800202",
        "patient_sex": "M",
        "study_date": "20240320",
        "study_time": "143000",
        "accession_number": "ACC-B",
        "study_id": "B1",
        "description": "QR plain CT",
    }


def build_qr_studies(directory: Path) -> QrData:
    """Write studies A and B under ``directory`` (``A1/sNN/iNNN.dcm``, ``B1/...``) and describe them."""
    directory.mkdir(parents=True, exist_ok=True)
    a = _build_study(directory, study_a_attributes(), STUDY_A_SERIES)
    b = _build_study(directory, study_b_attributes(), STUDY_B_SERIES)
    return QrData(root=directory, studies=(a, b))


def build_large_study(directory: Path, count: int = 500, series: int = 5) -> Study:
    """Write ``count`` small CT instances (CT_small.dcm, explicit VR LE, ~39 kB each) of one study, spread
    round-robin over ``series`` series, under ``directory/LARGE/sNN/iNNNNN.dcm``. PatientID ``QR-PAT-L``,
    PatientName ``QR^Large``, StudyDate ``20240501``, AccessionNumber ``ACC-L``."""
    template = _load("CT_small.dcm")
    study = {
        "study_instance_uid": generate_uid(),
        "patient_id": "QR-PAT-L",
        "patient_name": "QR^Large",
        "patient_birth_date": "19900303",
        "patient_sex": "O",
        "study_date": "20240501",
        "study_time": "080000",
        "accession_number": "ACC-L",
        "study_id": "L1",
        "description": "QR large study",
    }
    _set_study(template, study)
    series_uids = [generate_uid() for _ in range(series)]
    frame_uids = [generate_uid() for _ in range(series)]
    per_series: list[list[Instance]] = [[] for _ in range(series)]
    for index in range(count):
        k = index % series
        number = len(per_series[k]) + 1
        ds = template  # only per-instance attributes change: no copy needed
        ds.SeriesDescription = f"CT large {k + 1}"
        _set_instance(ds, series_uids[k], frame_uids[k], number, k + 1)
        path = directory / "LARGE" / f"s{k + 1:02d}" / f"i{number:05d}.dcm"
        _write(ds, path)
        per_series[k].append(_instance_from(ds, path, "CT_small.dcm"))
    return Study(
        study_instance_uid=study["study_instance_uid"],
        patient_id=study["patient_id"],
        patient_name=study["patient_name"],
        patient_birth_date=study["patient_birth_date"],
        patient_sex=study["patient_sex"],
        study_date=study["study_date"],
        study_time=study["study_time"],
        accession_number=study["accession_number"],
        study_id=study["study_id"],
        description=study["description"],
        series=tuple(
            Series(
                series_instance_uid=series_uids[k],
                study_instance_uid=study["study_instance_uid"],
                series_number=k + 1,
                modality="CT",
                description=f"CT large {k + 1}",
                instances=tuple(per_series[k]),
            )
            for k in range(series)
            if per_series[k]
        ),
    )
