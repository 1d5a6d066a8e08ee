"""StoreScu's transcoding pool: the next files convert while one is sent, and a caller's Transcoder is shared
between sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiodicom.dataset.files import read_header
from aiodicom.scp.store import StoreScp
from aiodicom.scu.store import StoreScu
from aiodicom.services.transcode import Transcoder
from tests.interop.syntaxes import SyntaxFile
from tests.scu.test_store_transcode import JPEG_LS_LOSSLESS, RLE, by_name, received, storescp, unique_copy


@pytest.mark.interop
async def test_the_next_files_convert_while_one_is_sent(
    syntax_files: list[SyntaxFile], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One association (DCMTK storescp takes one at a time) still keeps every transcoding worker busy: the
    next files are converted while the current one is sent, and all arrive, in the forced syntax."""
    import aiodicom.services.transcode as transcode_service

    real = transcode_service.Transcoder.transcode
    running, most = 0, 0

    async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await real(self, *args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(transcode_service.Transcoder, "transcode", counting)
    copies = [
        unique_copy(by_name(syntax_files, "mono12-explicit"), tmp_path / "src", f"f{n}") for n in range(6)
    ]
    with storescp(tmp_path / "out", "+xa") as port:
        scu = StoreScu(f"127.0.0.1:{port}", transfer_syntax="JPEGLSLossless", max_transcode_workers=2)
        for copy in copies:
            scu.add_file(copy.path)
        result = await scu.send()
    assert (result.successful, result.failed) == (6, 0)
    assert most >= 2, "conversions ran one at a time"
    got = received(tmp_path / "out")
    assert set(got) == {c.uid for c in copies}
    assert all(read_header(p).transfer_syntax_uid == JPEG_LS_LOSSLESS for p in got.values())


@pytest.mark.interop
async def test_a_shared_transcoder_keeps_its_workers_between_sends(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    """``transcoder=``: every send uses the caller's pool, started once, whose worker processes outlive each
    send (the caller closes it)."""
    copies = [
        unique_copy(by_name(syntax_files, "mono12-explicit"), tmp_path / "src", f"f{n}") for n in range(4)
    ]
    with pytest.raises(ValueError, match="max_transcode_workers"):
        StoreScu("127.0.0.1:104", transcoder=Transcoder(2), max_transcode_workers=3)
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp,
        Transcoder(2, kind="process") as transcoder,
    ):
        await transcoder.start("RLELossless")  # returns with the workers ready
        assert transcoder._processes is not None and len(transcoder._processes._all) == 2
        pids: list[set[int]] = [{w.process.pid for w in transcoder._processes._all}]
        for batch in (copies[:2], copies[2:]):
            scu = StoreScu(f"127.0.0.1:{scp.port}", transfer_syntax="RLELossless", transcoder=transcoder)
            for copy in batch:
                scu.add_file(copy.path)
            result = await scu.send()
            assert (result.successful, result.failed) == (2, 0)
            assert transcoder._processes is not None
            pids.append({w.process.pid for w in transcoder._processes._all})
            assert all(w.process.poll() is None for w in transcoder._processes._all)
        assert len(pids[0]) == 2 and pids[2] == pids[1] == pids[0]
    stored = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(stored) == 4 and all(read_header(p).transfer_syntax_uid == RLE for p in stored)
