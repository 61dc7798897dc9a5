"""Crash-safe checkpoints: one self-verifying safetensors file per checkpoint.

A checkpoint holds named tensors and a JSON manifest. The manifest rides in the safetensors
``__metadata__`` together with a SHA-256 over the manifest and every tensor's bytes, so a
file that was truncated, bit-flipped or half-written is recognised as such. Writing is
atomic: the bytes go to a temporary file in the same directory, are fsync'ed, renamed into
place, and the directory is fsync'ed, so a crash at any moment leaves either the previous
checkpoints or the new one, never a partial file under a checkpoint name. Reading takes the
newest file that verifies and reports the ones it had to skip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ducklearn._db import atomic_write

__all__ = ["CheckpointError", "Checkpoint", "write_checkpoint", "read_latest", "list_checkpoints"]

log = logging.getLogger(__name__)

FORMAT = "ducklearn.checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d{10})\.safetensors$")
# Temporary files of a write in progress (a writer killed before its rename leaves one).
_TMP_PREFIX, _TMP_SUFFIX = ".ckpt-", ".tmp"
_MAX_HEADER = 64 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, truncated or of an unknown format."""


@dataclass(frozen=True)
class Checkpoint:
    path: str
    sequence: int
    tensors: dict[str, np.ndarray]
    manifest: dict[str, Any]
    skipped: tuple[str, ...] = ()  # newer files that failed verification


def _digest(manifest_json: str, tensors: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(manifest_json.encode())
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(struct.pack("<q", arr.size))
        h.update(arr.tobytes())
    return h.hexdigest()


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, str]]:
    """(sequence, path) of every file named like a checkpoint, oldest first."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        m = _NAME.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(directory, name)))
    return sorted(found)


def write_checkpoint(directory: str | os.PathLike, tensors: Mapping[str, np.ndarray],
                     manifest: Mapping[str, Any], *, keep: int = 3) -> str:
    """Atomically write a new checkpoint and prune all but the newest ``keep``.

    Tensors must be numeric numpy arrays; the manifest must be JSON-serialisable. Returns
    the path written.
    """
    import safetensors.numpy

    if not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    arrays = {}
    for name, value in tensors.items():
        arr = np.ascontiguousarray(value)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"checkpoint tensor {name!r} must be numeric, got dtype {arr.dtype}")
        arrays[name] = arr
    body = dict(manifest)
    body["format"] = FORMAT
    body["format_version"] = FORMAT_VERSION
    manifest_json = json.dumps(body, sort_keys=True, allow_nan=False)
    metadata = {"manifest": manifest_json, "sha256": _digest(manifest_json, arrays)}
    data = safetensors.numpy.save(arrays, metadata=metadata)

    existing = list_checkpoints(directory)
    sequence = (existing[-1][0] + 1) if existing else 1
    final = os.path.join(directory, f"ckpt-{sequence:010d}.safetensors")
    atomic_write(final, data, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX)
    for _, old in list_checkpoints(directory)[:-keep]:
        try:
            os.unlink(old)
        except FileNotFoundError:
            pass
    # Temporary files left by a writer that crashed before its rename.
    for name in os.listdir(directory):
        if name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass
    return final


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify one checkpoint file; raises CheckpointError naming the problem."""
    import safetensors.numpy

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if len(data) < 8:
        raise CheckpointError(f"{path}: truncated (no safetensors header)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER or 8 + header_len > len(data):
        raise CheckpointError(f"{path}: truncated or corrupt header")
    try:
        header = json.loads(data[8:8 + header_len])
        meta = header["__metadata__"]
        manifest_json, expected = meta["manifest"], meta["sha256"]
        manifest = json.loads(manifest_json)
        tensors = safetensors.numpy.load(data)
    except Exception as exc:  # any parse failure means the file is not a valid checkpoint
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
    if _digest(manifest_json, tensors) != expected:
        raise CheckpointError(f"{path}: checksum mismatch (the file was modified or damaged)")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a ducklearn checkpoint")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {manifest.get('format_version')!r} is not "
            f"supported (this ducklearn reads {FORMAT_VERSION})"
        )
    return tensors, manifest


def read_latest(directory: str | os.PathLike) -> Checkpoint | None:
    """The newest checkpoint that verifies, or None if there is none; corrupt newer files
    are skipped (and logged), so a crash during a write falls back to the previous one."""
    skipped = []
    for sequence, path in reversed(list_checkpoints(directory)):
        try:
            tensors, manifest = read_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping checkpoint: %s", exc)
            skipped.append(path)
            continue
        return Checkpoint(path, sequence, tensors, manifest, tuple(skipped))
    return None
