"""The query/retrieve examples of the docs run against the Orthanc of these fixtures: their address
(``ORTHANC@127.0.0.1:4242``) and receiver port (11113) are replaced by the fixture's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.test_examples import AGAINST_ORTHANC, Example, run_example
from tests.interop.pacs import Pacs

pytestmark = pytest.mark.interop


def test_the_query_retrieve_page_has_runnable_examples() -> None:
    assert len(AGAINST_ORTHANC) >= 3


@pytest.mark.parametrize("example", AGAINST_ORTHANC, ids=[e.id for e in AGAINST_ORTHANC])
def test_example_runs_against_orthanc(example: Example, orthanc_qr: Pacs, tmp_path: Path) -> None:
    assert "127.0.0.1:4242" in example.code
    code = example.code.replace("127.0.0.1:4242", f"127.0.0.1:{orthanc_qr.dicom_port}")
    code = code.replace('"port": 11113', f'"port": {orthanc_qr.dest_ports["MOVE-SCU"]}, "host": "127.0.0.1"')
    run_example(example, code, tmp_path)
