"""The one file hash of elign (elign.io.provenance.file_sha256) against hashlib on the whole bytes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from elign.io.provenance import file_sha256


@pytest.mark.parametrize("size_bytes", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 17])
def test_file_sha256_equals_hashlib_across_chunk_boundaries(tmp_path, size_bytes):
    data = np.random.default_rng(size_bytes).integers(0, 256, size=size_bytes, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path), chunk_bytes=7) == hashlib.sha256(data).hexdigest()


def test_file_sha256_sees_a_one_byte_change(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"elign" * 1000)
    before = file_sha256(path)
    path.write_bytes(b"elign" * 999 + b"elixn")
    assert file_sha256(path) != before
