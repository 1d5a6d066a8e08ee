"""Storage backends: where received instances go (the filesystem, S3), behind one seam (:mod:`.base`)."""

from __future__ import annotations

import os
from typing import Any

from aiodicom.storage.base import Storage


def check_backend(backend: str, out_dir: str | os.PathLike[str] | None, s3_config: Any) -> None:
    """Raise ValueError when the options a backend needs are missing."""
    if backend == "s3" and s3_config is None:
        raise ValueError("storage_backend='s3' needs s3_config (an S3Config or a dict with a bucket)")
    if backend == "filesystem" and out_dir is None:
        raise ValueError("out_dir is required for the filesystem backend")


def make_storage(
    backend: str,
    out_dir: str | os.PathLike[str] | None,
    s3_config: Any,
    *,
    fsync: bool = True,
    duplicates: str = "replace",
) -> Storage:
    """The ``filesystem`` or ``s3`` backend with its options (checked as :func:`check_backend` does)."""
    check_backend(backend, out_dir, s3_config)
    if backend == "s3":
        from aiodicom.storage.s3 import S3Storage  # aiobotocore is an optional extra

        return S3Storage(s3_config)
    from aiodicom.storage.filesystem import FilesystemStorage

    assert out_dir is not None
    return FilesystemStorage(out_dir, fsync=fsync, duplicates=duplicates)


__all__ = ["Storage", "check_backend", "make_storage"]
