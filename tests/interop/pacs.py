"""Query/retrieve fixtures: Orthanc, DCMTK dcmqrscp and DCMTK wlmscpfs on loopback, loaded with known studies.

AE titles used by these fixtures (every PACS knows all of them):

* ``FIND-SCU``, ``GET-SCU``, ``MOVE-SCU`` -- the calling AE titles tests should use for C-FIND/C-GET/C-MOVE
  (the PACS accept any calling AE title, these are just registered too).
* Move destinations, each with a free loopback port pre-allocated per PACS in ``pacs.dest_ports``:
  ``MOVE-SCU`` (the moving SCU's own Storage SCP), ``AIODICOM-RCV`` (a separate aiodicom StoreScp) and
  ``STORESCP`` (a DCMTK storescp, start it with the ``qr_storescp`` fixture). Nothing listens on these ports
  until a test starts a receiver there; a test must stop its receiver before it ends (ports are reused).

Study contents: see ``tests/interop/studies.py`` (``qr_data.a`` and ``qr_data.b``).

The session-scoped PACS fixtures are shared and read only. A test that stores into a PACS (or needs another
data set, e.g. ``build_large_study``) starts a private one: ``with start_orthanc(tmp_path / "pacs", data)``
or ``start_dcmqrscp(...)`` (``data=None`` for an empty one); both yield a ``Pacs`` and stop it on exit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from tests.interop.peers import DCMTK_ENV, Peer, free_port, require_tool, stop, wait_for_port
from tests.interop.studies import Instance, QrData, build_qr_studies

HOST = "127.0.0.1"
#: Calling AE titles the tests use.
CALLING_AE_TITLES = ("FIND-SCU", "GET-SCU", "MOVE-SCU")
#: C-MOVE destinations every PACS fixture knows, each with a pre-allocated port in ``dest_ports``.
MOVE_DESTINATIONS = ("MOVE-SCU", "AIODICOM-RCV", "STORESCP")


@dataclass(frozen=True)
class Pacs:
    """A running query/retrieve SCP loaded with ``qr_data``.

    ``address`` is ``"AE@127.0.0.1:port"`` (the form aiodicom's SCU classes take); ``dest_ports`` maps each
    move destination AE title (``MOVE_DESTINATIONS``) to the loopback port the PACS sends C-MOVE
    sub-operations to; ``stored`` are the instances the PACS holds (all of ``data`` unless noted);
    ``http_port`` is Orthanc's REST port (``None`` for dcmqrscp)."""

    name: str
    ae_title: str
    dicom_port: int
    dest_ports: dict[str, int]
    data: QrData
    stored: tuple[Instance, ...]
    http_port: int | None = None
    host: str = HOST
    notes: dict[str, str] = field(default_factory=dict)
    #: True when C-GET/C-MOVE sends each instance in its stored syntax (Orthanc); False for dcmqrscp, which
    #: sends over the first accepted context of the SOP class and cannot decompress (see ``retrieved_as``).
    retrieves_as_stored: bool = True
    #: aiodicom's archive only: the ``--out-dir`` the instances are stored in (None for the others).
    out_dir: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.dicom_port}"

    def retrieved_as(self, instance: Instance) -> str | None:
        """The transfer syntax ``instance`` arrives in (C-MOVE or C-GET) at a receiver that accepts every
        transfer syntax the PACS proposes (DCMTK ``storescp +xa``, as ``qr_storescp`` starts it), or None
        when the PACS fails that sub-operation.

        Orthanc: the stored syntax. If the receiver does not accept it, Orthanc 1.10 transcodes to an
        uncompressed syntax, except JPEG 2000 which it cannot decode: a C-GET then fails as a whole (C000).
        dcmqrscp: uncompressed and deflated instances arrive as explicit VR little endian (DCMTK converts
        them); RLE, JPEG, JPEG-LS and JPEG 2000 instances fail (C-MOVE ends with warning status B000, "one or
        more failures") because dcmqrscp uses the first accepted context of the SOP class, the uncompressed
        one, and has no decoder."""
        if self.retrieves_as_stored:
            return instance.transfer_syntax_uid
        if instance.transfer_syntax_uid in DCMQRSCP_SYNTAXES[:4]:
            return "1.2.840.10008.1.2.1"
        return None


# ---------------------------------------------------------------------------------------------- data


@pytest.fixture(scope="session")
def qr_data(tmp_path_factory: pytest.TempPathFactory) -> QrData:
    """Studies A and B (``tests/interop/studies.py``) written once per session into a temporary directory.

    A: PatientID QR-PAT-1, QR^Alpha, 20240115, ACC-A, 8 series / 11 instances in 8 transfer syntaxes
    (explicit/implicit LE, explicit BE, RLE, JPEG baseline, JPEG-LS, JPEG 2000, deflated), modalities
    CT/MR/OT.
    B: PatientID QR-PAT-2, QR^Beta, 20240320, ACC-B, one CT series of 3 explicit VR LE instances.
    Read only: never modify these files."""
    return build_qr_studies(tmp_path_factory.mktemp("qr-data"))


# ------------------------------------------------------------------------------------------- Orthanc


def _orthanc_exe() -> str:
    exe = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(exe).exists():
        pytest.fail("Orthanc is not installed: scripts/test.sh installs it", pytrace=False)
    return exe


def _orthanc_upload(http_port: int, path: Path) -> None:
    request = urllib.request.Request(
        f"http://{HOST}:{http_port}/instances",
        data=path.read_bytes(),
        headers={"Content-Type": "application/dicom"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
        if response.status != 200 or body.get("Status") not in ("Success", "AlreadyStored"):
            raise RuntimeError(f"Orthanc refused {path}: HTTP {response.status} {body}")


@contextmanager
def start_orthanc(
    workdir: Path,
    data: QrData | None,
    extra_modalities: dict[str, tuple[str, str, int]] | None = None,
    dicom_port: int | None = None,
) -> Iterator[Pacs]:
    """Start Orthanc in ``workdir`` (own storage and index), upload ``data`` over REST, stop it on exit.

    ``extra_modalities`` are added to ``DicomModalities`` as ``{id: (ae_title, host, port)}`` (e.g. a PACS
    Orthanc queries with ``/modalities/{id}/query``); ``dicom_port`` is Orthanc's own DICOM port (a free
    one when None: give one to register Orthanc in that PACS before it starts)."""
    exe = _orthanc_exe()
    dicom_port, http_port = dicom_port or free_port(), free_port()
    dest_ports = {ae: free_port() for ae in MOVE_DESTINATIONS}
    modalities = {ae: [ae, HOST, port] for ae, port in dest_ports.items()}
    for ae in CALLING_AE_TITLES:
        modalities.setdefault(ae, [ae, HOST, free_port()])
    for key, (ae, host, port) in (extra_modalities or {}).items():
        modalities[key] = [ae, host, port]
    config = {
        "Name": "aiodicom-qr",
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "StorageCompression": False,
        "DicomCheckCalledAet": False,
        "DicomCheckModalityHost": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowFindWorklist": False,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "DicomModalities": modalities,
        "DicomModalitiesInDatabase": False,
        "StorageAccessOnFind": "Always",
        "SynchronousCMove": True,
        "LimitFindResults": 0,
        "LimitFindInstances": 0,
        "DicomScpTimeout": 30,
        "DicomScuTimeout": 10,
        "SaveJobs": False,
        "HttpDescribeErrors": True,
        "Plugins": [],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log = (workdir / "orthanc.log").open("wb")
    # Orthanc's DICOM layer is DCMTK's: without TCP_NODELAY each sub-operation waits on Nagle (~40 ms)
    proc = subprocess.Popen([exe, str(config_path)], stdout=log, stderr=subprocess.STDOUT, env=DCMTK_ENV)
    try:
        wait_for_port(dicom_port, proc, timeout=30)
        wait_for_port(http_port, proc, timeout=30)
        stored: tuple[Instance, ...] = ()
        if data is not None:
            for path in data.paths:
                _orthanc_upload(http_port, path)
            stored = tuple(data.all_instances())
        yield Pacs(
            name="orthanc",
            ae_title="ORTHANC",
            dicom_port=dicom_port,
            http_port=http_port,
            dest_ports=dest_ports,
            data=data if data is not None else QrData(workdir, ()),
            stored=stored,
        )
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """An empty Orthanc with its own storage, DICOM and HTTP ports on 127.0.0.1; yields
    (dicom_port, http_port)."""
    with start_orthanc(tmp_path / "orthanc", None) as pacs:
        assert pacs.http_port is not None
        yield pacs.dicom_port, pacs.http_port


@pytest.fixture(scope="session")
def orthanc_qr(tmp_path_factory: pytest.TempPathFactory, qr_data: QrData) -> Iterator[Pacs]:
    """Orthanc 1.10 (session scope, shared: do not store into it or delete from it) holding studies A and B.

    Yields a ``Pacs``: ``ae_title`` "ORTHANC" (called AE title not checked), ``dicom_port`` and ``http_port``
    on 127.0.0.1, ``dest_ports`` for the move destinations MOVE-SCU, AIODICOM-RCV and STORESCP
    (registered in ``DicomModalities`` with those ports), ``data`` = ``qr_data``, ``stored`` = every
    instance. C-ECHO, C-STORE, C-FIND, C-GET and C-MOVE are allowed from any calling AE title
    (FIND-SCU, GET-SCU and MOVE-SCU are registered as modalities as well); ``SynchronousCMove`` is on,
    so the final C-MOVE response comes after all sub-operations. ``StorageAccessOnFind: Always``: C-FIND
    at any level may return any attribute of the stored files. Orthanc also computes the study-level
    ModalitiesInStudy, SOPClassesInStudy, NumberOfStudyRelated{Series,Instances} and series-level
    NumberOfSeriesRelatedInstances. Orthanc's log is in ``<tmp>/orthanc.log``."""
    with start_orthanc(tmp_path_factory.mktemp("orthanc-qr"), qr_data) as pacs:
        yield pacs


# ------------------------------------------------------------------------------------------ dcmqrscp

#: Storage SOP classes dcmqrscp accepts (C-STORE and C-GET sub-operations): CR, CT, MR, US, SC, DX, NM, PT.
DCMQRSCP_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.1",
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.6.1",
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.20",
    "1.2.840.10008.5.1.4.1.1.128",
)
#: Patient root, study root and patient/study only FIND, MOVE and GET.
QR_MODELS = tuple(f"1.2.840.10008.5.1.4.1.2.{m}.{op}" for m in (1, 2, 3) for op in (1, 2, 3))
#: Transfer syntaxes dcmqrscp accepts for storage, and proposes one context each for C-MOVE sub-operations.
DCMQRSCP_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # explicit VR little endian (first: preferred)
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.2",  # explicit VR big endian
    "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
    "1.2.840.10008.1.2.5",  # RLE lossless
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
)


def _dcmqrscp_association_config() -> str:
    """An association negotiation profile file (``-xf FILE In Out``) accepting every syntax above."""
    uncompressed = DCMQRSCP_SYNTAXES[:3]
    lines = ["[[TransferSyntaxes]]", "[Uncompressed]"]
    lines += [f"TransferSyntax{i} = {uid}" for i, uid in enumerate(uncompressed, 1)]
    # dcmqrscp accepts the first syntax of this list that a proposed context offers.
    lines += ["[Any]"]
    lines += [f"TransferSyntax{i} = {uid}" for i, uid in enumerate(DCMQRSCP_SYNTAXES, 1)]
    for k, uid in enumerate(DCMQRSCP_SYNTAXES[3:], 1):
        lines += [f"[Single{k}]", f"TransferSyntax1 = {uid}"]
    lines += ["[[PresentationContexts]]", "[InContexts]"]
    incoming = ["1.2.840.10008.1.1\\Uncompressed"] + [f"{m}\\Uncompressed" for m in QR_MODELS]
    incoming += [f"{sop}\\Any" for sop in DCMQRSCP_STORAGE]
    lines += [f"PresentationContext{i} = {pc}" for i, pc in enumerate(incoming, 1)]
    lines += ["[OutContexts]"]
    outgoing = []
    for sop in DCMQRSCP_STORAGE:
        outgoing.append(f"{sop}\\Uncompressed")
        outgoing += [f"{sop}\\Single{k}" for k in range(1, len(DCMQRSCP_SYNTAXES) - 2)]
    lines += [f"PresentationContext{i} = {pc}" for i, pc in enumerate(outgoing, 1)]
    # C-GET: the requestor proposes to be the SCP of the storage SOP classes; accept that role.
    lines += ["[[SCPSCURoleSelection]]", "[GetRoles]"]
    lines += [f"Role{i} = {sop}\\BOTH" for i, sop in enumerate(DCMQRSCP_STORAGE, 1)]
    lines += ["[[Profiles]]", "[In]", "PresentationContexts = InContexts", "SCPSCURoleSelection = GetRoles"]
    lines += ["[Out]"]
    lines += ["PresentationContexts = OutContexts", ""]
    return "\n".join(lines)


def _dcmqrscp_stored(db: Path) -> dict[str, str]:
    """SOPInstanceUID -> transfer syntax of every file in a dcmqrscp storage area."""
    from pydicom import dcmread

    stored = {}
    for path in db.glob("*.dcm"):
        ds = dcmread(path, stop_before_pixels=True)
        stored[str(ds.SOPInstanceUID)] = str(ds.file_meta.TransferSyntaxUID)
    return stored


@contextmanager
def start_dcmqrscp(workdir: Path, data: QrData | None) -> Iterator[Pacs]:
    """Start dcmqrscp (a child process per association) in ``workdir``, store ``data`` with DCMTK storescu,
    stop it on exit."""
    exe = require_tool("dcmqrscp")
    port = free_port()
    dest_ports = {ae: free_port() for ae in MOVE_DESTINATIONS}
    hosts = dict(dest_ports)
    for ae in CALLING_AE_TITLES:
        hosts.setdefault(ae, free_port())
    db = workdir / "db"
    db.mkdir(parents=True, exist_ok=True)
    host_table = [f"{ae.lower().replace('-', '')} = ({ae}, {HOST}, {p})" for ae, p in hosts.items()]
    config = "\n".join(
        [
            f"NetworkTCPPort = {port}",
            "MaxPDUSize = 65536",
            "MaxAssociations = 16",
            "HostTable BEGIN",
            *host_table,
            "HostTable END",
            "VendorTable BEGIN",
            "VendorTable END",
            "AETable BEGIN",
            f"DCMQRSCP {db} RW (100, 1024mb) ANY",
            "AETable END",
            "",
        ]
    )
    config_path = workdir / "dcmqrscp.cfg"
    config_path.write_text(config)
    assoc_path = workdir / "association.cfg"
    assoc_path.write_text(_dcmqrscp_association_config())
    log = (workdir / "dcmqrscp.log").open("wb")
    proc = subprocess.Popen(
        [exe, "-c", str(config_path), "-xf", str(assoc_path), "In", "Out", str(port)],
        env=DCMTK_ENV,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        stored: tuple[Instance, ...] = ()
        notes: dict[str, str] = {}
        if data is not None:
            _dcmqrscp_load(port, data)
            syntaxes = _dcmqrscp_stored(db)
            stored = tuple(i for i in data.all_instances() if i.sop_instance_uid in syntaxes)
            for inst in data.all_instances():
                kept = syntaxes.get(inst.sop_instance_uid)
                if kept != inst.transfer_syntax_uid:
                    notes[inst.sop_instance_uid] = f"{inst.transfer_syntax_uid} stored as {kept}"
        yield Pacs(
            name="dcmqrscp",
            ae_title="DCMQRSCP",
            dicom_port=port,
            dest_ports=dest_ports,
            data=data if data is not None else QrData(workdir, ()),
            stored=stored,
            notes=notes,
            retrieves_as_stored=False,
        )
    finally:
        stop(proc)
        log.close()


#: The storescu option proposing a transfer syntax (by default storescu proposes uncompressed ones only).
STORESCU_PROPOSE = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
}


def _dcmqrscp_load(port: int, data: QrData) -> None:
    _storescu_load(port, "DCMQRSCP", data)


def _storescu_load(port: int, called_ae: str, data: QrData) -> None:
    """Send every file with DCMTK storescu, one association per file proposing its own transfer syntax in a
    context of its own (``-R`` and the ``STORESCU_PROPOSE`` option), so that the archive stores it
    unchanged."""
    exe = require_tool("storescu")
    for inst in data.all_instances():
        propose = STORESCU_PROPOSE.get(inst.transfer_syntax_uid, "-x=")
        result = subprocess.run(
            [exe, "-R", propose, "-aet", "QR-LOADER", "-aec", called_ae, HOST, str(port), str(inst.path)],
            env=DCMTK_ENV,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"storescu {inst.path} to {called_ae} failed: {result.stdout}{result.stderr}")


@pytest.fixture(scope="session")
def dcmqrscp_qr(tmp_path_factory: pytest.TempPathFactory, qr_data: QrData) -> Iterator[Pacs]:
    """DCMTK dcmqrscp 3.6.7 (session scope, shared: do not store into it) holding studies A and B.

    Yields a ``Pacs``: ``ae_title`` "DCMQRSCP" (the called AE title must be DCMQRSCP: it selects the
    storage area), ``dicom_port`` on 127.0.0.1, ``http_port`` None, ``dest_ports`` for MOVE-SCU,
    AIODICOM-RCV and STORESCP (its HostTable). Forks a child per association (concurrent associations
    work; ``--single-process`` would exit after a bare TCP probe). Patient root, study root and
    patient/study only FIND/MOVE/GET; any calling AE title.

    Storage (C-STORE, and the SCP role of C-GET sub-operations) for CR, CT, MR, US, SC, DX, NM and PT in 13
    transfer syntaxes (``DCMQRSCP_SYNTAXES``). The data was loaded with ``storescu -R`` (one association per
    file, its own syntax only) and every file kept its transfer syntax (``stored`` is every instance,
    ``notes`` would list exceptions).

    Retrieval limit: dcmqrscp sends each instance over the first accepted context of its SOP class and
    cannot decompress, so a receiver accepting uncompressed gets the RLE/JPEG/JPEG-LS/JPEG 2000 instances
    of A as failed sub-operations, and the implicit/big endian/deflated ones converted to explicit VR LE
    (``Pacs.retrieved_as``); the same for C-GET. Retrieve study B or A's CT series for clean successes.

    C-FIND: dcmqrscp only answers the attributes it indexes (PatientName/ID/BirthDate/Sex, StudyDate/Time/
    ID/Description, AccessionNumber, StudyInstanceUID, Modality, SeriesNumber, SeriesInstanceUID,
    InstanceNumber, SOPInstanceUID...) and silently leaves out other requested keys: no ModalitiesInStudy,
    SOPClassesInStudy, NumberOf*Related*, SeriesDescription, and at IMAGE level no SOPClassUID."""
    with start_dcmqrscp(tmp_path_factory.mktemp("dcmqrscp-qr"), qr_data) as pacs:
        yield pacs


# ------------------------------------------------------------------------------- aiodicom qrscp


@contextmanager
def start_aiodicom_qr(workdir: Path, data: QrData | None, *extra: str) -> Iterator[Pacs]:
    """Start ``aiodicom qrscp`` (the built-in archive) in ``workdir``, store ``data`` with DCMTK storescu
    (one association per file, its own syntax: kept as sent), stop it on exit."""
    port = free_port()
    dest_ports = {ae: free_port() for ae in MOVE_DESTINATIONS}
    remote = [f"--remote-ae={ae}@{HOST}:{p}" for ae, p in dest_ports.items()]
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "qrscp.log").open("wb")
    command = [sys.executable, "-m", "aiodicom", "qrscp", "--port", str(port), "--host", HOST]
    command += ["--ae-title", "AIODICOM-QR", "--out-dir", str(workdir / "archive"), "--no-fsync"]
    proc = subprocess.Popen([*command, *remote, *extra], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, timeout=30)
        if data is not None:
            _storescu_load(port, "AIODICOM-QR", data)
        yield Pacs(
            name="aiodicom",
            ae_title="AIODICOM-QR",
            dicom_port=port,
            dest_ports=dest_ports,
            data=data if data is not None else QrData(workdir, ()),
            stored=tuple(data.all_instances()) if data is not None else (),
            out_dir=workdir / "archive",
        )
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="session")
def aiodicom_qr(tmp_path_factory: pytest.TempPathFactory, qr_data: QrData) -> Iterator[Pacs]:
    """aiodicom's own archive (``aiodicom qrscp``, session scope, shared: do not store into it) holding
    studies A and B, every instance in the syntax it was sent in; C-GET and C-MOVE send each in its stored
    syntax (converted only for a receiver that does not accept it). ``dest_ports`` are its --remote-ae
    table. Its log is ``<tmp>/qrscp.log``."""
    with start_aiodicom_qr(tmp_path_factory.mktemp("aiodicom-qr"), qr_data) as pacs:
        yield pacs


@pytest.fixture(params=["orthanc", "dcmqrscp", "aiodicom"])
def qr_pacs(request: pytest.FixtureRequest) -> Pacs:
    """Each PACS in turn (``orthanc_qr``, ``dcmqrscp_qr``, then aiodicom's ``aiodicom_qr``): for tests all
    must pass."""
    pacs: Pacs = request.getfixturevalue(f"{request.param}_qr")
    return pacs


# -------------------------------------------------------------------------------- DCMTK storescp


@pytest.fixture
def qr_storescp(tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    """A factory ``start(port, ae_title="STORESCP") -> Peer`` for DCMTK storescp move destinations.

    Each receiver accepts every transfer syntax (``+xa``) and writes ``<sop class prefix>.<sop uid>`` files
    into its own new directory under tmp_path (``Peer.out_dir``); all are stopped at teardown. Typical use:
    ``qr_storescp(pacs.dest_ports["STORESCP"])``."""
    exe = require_tool("storescp")
    procs: list[subprocess.Popen[bytes]] = []

    def start(port: int, ae_title: str = "STORESCP") -> Peer:
        out = tmp_path / f"storescp-{ae_title}-{port}"
        out.mkdir()
        proc = subprocess.Popen(
            [exe, "+xa", "--aetitle", ae_title, "--output-directory", str(out), str(port)],
            env=DCMTK_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        wait_for_port(port, proc)
        return Peer(port, out, proc)

    try:
        yield start
    finally:
        for proc in procs:
            stop(proc)


# ---------------------------------------------------------------------------------------- worklist


@dataclass(frozen=True)
class WorklistItem:
    """One scheduled procedure step of the worklist (one .wl file)."""

    path: Path
    patient_name: str
    patient_id: str
    accession_number: str
    requested_procedure_id: str
    study_instance_uid: str
    modality: str
    station_ae_title: str
    start_date: str
    start_time: str
    step_id: str
    step_description: str


@dataclass(frozen=True)
class WorklistScp:
    """A running wlmscpfs: call it with ``ae_title`` (it selects the worklist subdirectory)."""

    port: int
    ae_title: str
    directory: Path
    items: tuple[WorklistItem, ...]
    host: str = HOST

    @property
    def address(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


WORKLIST = (
    (
        "QR^Alpha",
        "QR-PAT-1",
        "ACC-WL-1",
        "RP-1",
        "CT",
        "CT-SCANNER",
        "20240115",
        "090000",
        "SPS-1",
        "CT head",
    ),
    ("QR^Beta", "QR-PAT-2", "ACC-WL-2", "RP-2", "MR", "MR-SCANNER", "20240116", "100000", "SPS-2", "MR knee"),
    (
        "QR^Gamma",
        "QR-PAT-3",
        "ACC-WL-3",
        "RP-3",
        "CT",
        "CT-SCANNER",
        "20240116",
        "143000",
        "SPS-3",
        "CT chest",
    ),
)


def _write_worklist_item(path: Path, row: tuple[str, ...]) -> WorklistItem:
    name, pid, acc, rp_id, modality, station, date, time, sps_id, desc = row
    study_uid = generate_uid()
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = time
    step.Modality = modality
    step.ScheduledPerformingPhysicianName = "QR^Tech"
    step.ScheduledProcedureStepDescription = desc
    step.ScheduledStationName = station.split("-")[0]
    step.ScheduledProcedureStepLocation = "Room 1"
    step.ScheduledProcedureStepID = sps_id
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.AccessionNumber = acc
    ds.ReferringPhysicianName = "QR^Referrer"
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.RequestedProcedureDescription = desc
    ds.RequestedProcedureID = rp_id
    ds.RequestedProcedurePriority = "ROUTINE"
    ds.ScheduledProcedureStepSequence = Sequence([step])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.31")
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return WorklistItem(path, name, pid, acc, rp_id, study_uid, modality, station, date, time, sps_id, desc)


@pytest.fixture(scope="session")
def worklist_scp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorklistScp]:
    """DCMTK wlmscpfs (session scope) on a free 127.0.0.1 port, AE title "WLMSCP", serving 3 items.

    Items (``WORKLIST``; one scheduled procedure step each, with ScheduledStationAETitle, Modality,
    ScheduledProcedureStepStartDate/Time, ScheduledProcedureStepID/Description, PatientName, PatientID,
    AccessionNumber, RequestedProcedureID, StudyInstanceUID): QR^Alpha/QR-PAT-1/CT/CT-SCANNER/20240115,
    QR^Beta/QR-PAT-2/MR/MR-SCANNER/20240116, QR^Gamma/QR-PAT-3/CT/CT-SCANNER/20240116. The called AE title
    must be WLMSCP (the subdirectory holding the .wl files); a child process per association."""
    exe = require_tool("wlmscpfs")
    root = tmp_path_factory.mktemp("worklist")
    ae_dir = root / "WLMSCP"
    ae_dir.mkdir()
    (ae_dir / "lockfile").touch()
    items = tuple(_write_worklist_item(ae_dir / f"item{k}.wl", row) for k, row in enumerate(WORKLIST, 1))
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-dfp", str(root), str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield WorklistScp(port, "WLMSCP", root, items)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def aiodicom_worklist_scp(
    worklist_scp: WorklistScp, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorklistScp]:
    """``aiodicom qrscp --worklist`` (session scope) serving the same 3 items as ``worklist_scp`` (the same
    .wl files), AE title "WLMSCP" like wlmscpfs's, with an empty archive beside them."""
    folder = worklist_scp.directory / worklist_scp.ae_title
    workdir = tmp_path_factory.mktemp("aiodicom-worklist")
    with start_aiodicom_qr(workdir, None, "--worklist", str(folder), "--ae-title", "WLMSCP") as pacs:
        yield WorklistScp(pacs.dicom_port, "WLMSCP", worklist_scp.directory, worklist_scp.items)


@pytest.fixture(params=["wlmscpfs", "aiodicom"])
def worklist_peer(request: pytest.FixtureRequest) -> WorklistScp:
    """Each worklist server in turn: DCMTK ``wlmscpfs`` (``worklist_scp``), then ``aiodicom qrscp
    --worklist`` (``aiodicom_worklist_scp``) with the same items: for tests both must pass."""
    name = "worklist_scp" if request.param == "wlmscpfs" else "aiodicom_worklist_scp"
    peer: WorklistScp = request.getfixturevalue(name)
    return peer
