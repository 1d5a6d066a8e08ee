"""Every ```python block of docs/*.md and README.md runs, each in its own interpreter, over loopback.

A block that needs something the tests cannot provide (a remote PACS, an S3 bucket) is preceded by an HTML
comment ``<!-- not-run: the reason -->``: it is not run, but it must still compile, and such blocks stay few.
Blocks that need a peer say which, and run against a real one with their addresses replaced:
``<!-- runs against orthanc -->`` in tests/docs/test_examples_pacs.py (the query/retrieve fixtures' Orthanc),
``<!-- runs against moto -->`` here (a moto S3 server and a DCMTK storescp), and
``<!-- runs until SIGTERM -->`` here (a service: it must start listening, then stop cleanly on SIGTERM).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom.data import get_testdata_file

from tests.interop.peers import free_port, stop, wait_for_port
from tests.interop.s3 import CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 90
MAX_NOT_RUN = 8

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```python\b[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>[^>]*?)\s*-->\s*$")
_PEER = re.compile(r"<!--\s*runs (?:against (?P<peer>orthanc|moto)|until (?P<signal>SIGTERM))\s*-->\s*$")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    code: str
    not_run: str | None
    peer: str | None = None  # "orthanc", "moto" or "SIGTERM"

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def collect(pages: list[Path] = PAGES) -> list[Example]:
    examples = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            before = text[: match.start()].rstrip().splitlines()
            marker = _NOT_RUN.search(before[-1]) if before else None
            needs = _PEER.search(before[-1]) if before else None
            peer = (needs["peer"] or needs["signal"]) if needs else None
            indent = len(match["indent"])
            code = "\n".join(line[indent:] for line in match["code"].splitlines())
            line = text.count("\n", 0, match.start()) + 1
            examples.append(Example(page, line, code, marker["reason"] if marker else None, peer))
    return examples


EXAMPLES = collect()
RUNNABLE = [e for e in EXAMPLES if e.not_run is None and e.peer is None]
AGAINST_ORTHANC = [e for e in EXAMPLES if e.peer == "orthanc"]
AGAINST_MOTO = [e for e in EXAMPLES if e.peer == "moto"]
SERVICES = [e for e in EXAMPLES if e.peer == "SIGTERM"]
NOT_RUN = [e for e in EXAMPLES if e.not_run is not None]


def test_the_pages_have_examples() -> None:
    assert len(RUNNABLE) >= 10, [e.id for e in RUNNABLE]


def test_examples_that_are_not_run_are_few_and_say_why() -> None:
    assert len(NOT_RUN) <= MAX_NOT_RUN, [e.id for e in NOT_RUN]
    for example in NOT_RUN:
        assert example.not_run, f"{example.id}: say why the example is not run"
        compile(example.code, example.id, "exec")


def test_the_collector_reads_markers_and_indented_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nprint(1)\n```\n\n<!-- not-run: needs a PACS -->\n```python\nprint(2)\n```\n\n"
        '- item\n\n    ```python title="x.py"\n    if True:\n        print(3)\n    ```\n\n```bash\nls\n```\n'
    )
    found = collect([page])
    assert [(e.line, e.code, e.not_run) for e in found] == [
        (3, "print(1)", None),
        (8, "print(2)", "needs a PACS"),
        (14, "if True:\n    print(3)", None),
    ]


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.id for e in RUNNABLE])
def test_example_runs(example: Example, tmp_path: Path) -> None:
    run_example(example, example.code, tmp_path)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def run_example(example: Example, code: str, tmp_path: Path, env: dict[str, str] | None = None) -> None:
    """Run ``code`` (the example, perhaps with its addresses replaced) in its own interpreter."""
    script = tmp_path / "example.py"
    script.write_text(code + "\n", encoding="utf-8")
    env = {**_env(), **(env or {})}
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.id} did not finish in {TIMEOUT} s\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0, f"{example.id} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.s3
@pytest.mark.interop
@pytest.mark.parametrize("example", AGAINST_MOTO, ids=[e.id for e in AGAINST_MOTO])
def test_example_runs_against_moto(
    example: Example, moto_endpoint: str, bucket: str, s3: Any, dcmtk_storescp: Any, tmp_path: Path
) -> None:
    """The bucket holds two instances under the example's prefix; the PACS is a DCMTK storescp."""
    prefix = re.search(r'add_folder\("([^"]*)"\)', example.code)
    assert prefix is not None, "an S3 example sends a prefix"
    for name in ("CT_small.dcm", "MR_small.dcm"):
        s3.put_object(Bucket=bucket, Key=prefix[1] + name, Body=Path(get_testdata_file(name)).read_bytes())
    code = example.code.replace("http://minio.example:9000", moto_endpoint).replace("dicom-archive", bucket)
    code = code.replace("PACS@10.0.0.5:104", f"STORESCP@127.0.0.1:{dcmtk_storescp.port}")
    run_example(example, code, tmp_path, env=CREDENTIALS)
    assert len(list(dcmtk_storescp.out_dir.iterdir())) == 2


@pytest.mark.parametrize("example", SERVICES, ids=[e.id for e in SERVICES])
def test_service_example_stops_cleanly_on_sigterm(example: Example, tmp_path: Path) -> None:
    port = free_port()
    code = re.sub(r"port=\d+", f"port={port}, host='127.0.0.1'", example.code)
    code = re.sub(r'out_dir="[^"]*"', 'out_dir="./received"', code)
    script = tmp_path / "service.py"
    script.write_text(code + "\n", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        stop(proc)  # type: ignore[arg-type]
    assert proc.returncode == 0, err
