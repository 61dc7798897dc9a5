"""Semantic versions computed from what changed, never typed by hand.

A candidate is compared with its base version (its declared parent, else the model's newest
version) through three fingerprints of its manifest:

- **contract**: input width, output kind and count, classes, feature names and the feature
  schema hash. A change breaks callers: **major**.
- **content**: model type, hyperparameters, layers, optimizer and scaler state, the feature
  pipeline's state and every tensor's checksum. A retrain with a compatible contract: **minor**.
- **metadata**: metrics, tags, description, lineage. Nothing a prediction depends on:
  **patch**.

Identical content and metadata is the same version (a retried registration returns it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ducklearn._db import canonical_json, sha256_hex

__all__ = ["Fingerprints", "fingerprints", "next_version", "parse_version", "BUMPS"]

BUMPS = ("major", "minor", "patch")
_VERSION_RE = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")


def parse_version(text: Any) -> tuple[int, int, int]:
    """``"1.4.2"`` -> ``(1, 4, 2)``; anything else raises ValueError."""
    m = _VERSION_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{text!r} is not a version of the form MAJOR.MINOR.PATCH")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@dataclass(frozen=True)
class Fingerprints:
    contract: str
    content: str
    metadata: str


def fingerprints(manifest: Mapping[str, Any]) -> Fingerprints:
    """The three fingerprints of a model-file manifest (see the module docstring)."""
    state = dict(manifest.get("state") or {})
    contract = {"contract": state.get("contract"), "schema_hash": manifest.get("schema_hash")}
    state.pop("library_version", None)  # the library that wrote it is not the model
    tensors = {name: [spec.get("dtype"), spec.get("shape"), spec.get("sha256")]
               for name, spec in (manifest.get("tensors") or {}).items()}
    content = {"model_type": manifest.get("model_type"), "state": state,
               "core": manifest.get("core"), "flat": manifest.get("flat"),
               "features": manifest.get("features"), "tensors": tensors}
    metadata = {k: manifest.get(k) for k in ("metrics", "tags", "description", "lineage",
                                             "feature_schema")}
    return Fingerprints(contract=sha256_hex(canonical_json(contract)),
                        content=sha256_hex(canonical_json(content)),
                        metadata=sha256_hex(canonical_json(metadata)))


def computed_bump(base: Fingerprints | None, new: Fingerprints) -> str | None:
    """"major", "minor", "patch", "initial" (no base) or None (identical)."""
    if base is None:
        return "initial"
    if base.contract != new.contract:
        return "major"
    if base.content != new.content:
        return "minor"
    if base.metadata != new.metadata:
        return "patch"
    return None


def next_version(existing: Iterable[tuple[int, int, int]], base: tuple[int, int, int] | None,
                 bump: str) -> tuple[int, int, int]:
    """The next free version for a bump relative to ``base`` among ``existing`` versions.

    major: one past the highest major; minor: the base's major, one past its highest minor;
    patch: the base's major.minor, one past its highest patch. So a minor bump from 1.2.0
    while 1.3.0 exists gives 1.4.0, and versions never collide.
    """
    versions = list(existing)
    if bump == "initial" or base is None:
        if versions:
            raise ValueError("only a model's first version is 'initial'")
        return (1, 0, 0)
    if bump == "major":
        return (max(v[0] for v in versions) + 1, 0, 0)
    if bump == "minor":
        return (base[0], max(v[1] for v in versions if v[0] == base[0]) + 1, 0)
    if bump == "patch":
        return (base[0], base[1],
                max(v[2] for v in versions if v[:2] == base[:2]) + 1)
    raise ValueError(f"bump must be one of {BUMPS}, got {bump!r}")
