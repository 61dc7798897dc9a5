"""Model files: one self-describing safetensors file per model, no pickle.

A model file is a standard `safetensors <https://github.com/huggingface/safetensors>`_ file:

- **tensors**: the flat parameter buffer split per layer, ``layers.{i}.weight`` (out × in,
  row-major, float32) and ``layers.{i}.bias`` (out), so any safetensors reader sees the
  network's shapes; every other tensor of the estimator's state keeps its name
  (``optimizer.{slot}``: flat, same layout as the parameters; ``scaler.count|mean|m2``:
  float64, ``scaler.min|max``: float32, one entry per input column).
- **manifest**: JSON in the header's ``__metadata__["ducklearn"]``: the file format and its
  version, the model type, the estimator's own state manifest (hyperparameters, contract,
  layers, optimizer step, counters), a ``core`` section that a C++ host needs to rebuild the
  ``ducklearn::Learner`` without Python, the SHA-256 of every tensor, the feature schema and
  its hash, the library version, metrics, lineage, tags and a description.

Loading checks the header, the manifest, every tensor's name, dtype, shape and checksum,
and refuses a format version it does not know with a message that says what to do.
``cpp/include/ducklearn/io/model_file.hpp`` reads the same files.

>>> import numpy as np, tempfile, os
>>> from ducklearn.linear import LogisticRegression
>>> from ducklearn.modelfile import save_model, load_model, read_manifest
>>> X = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
>>> model = LogisticRegression(scale=True).fit(X, (X[:, 0] > 0).astype(int))
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> info = save_model(model, path, metrics={"accuracy": 0.98})
>>> read_manifest(path)["model_type"]
'ducklearn.linear.LogisticRegression'
>>> bool(np.array_equal(load_model(path).predict_proba(X), model.predict_proba(X)))
True
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ducklearn._db import atomic_write, canonical_json

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFile",
    "ModelFileError",
    "pack",
    "save_model",
    "load_model",
    "read_model_file",
    "read_manifest",
    "to_bytes",
    "from_bytes",
    "register_model_type",
    "tensor_digest",
]

FORMAT = "ducklearn.model"
FORMAT_VERSION = 1
METADATA_KEY = "ducklearn"
# Largest header we parse: far above any real manifest, far below what a hostile file could
# make us allocate.
MAX_HEADER_BYTES = 64 * 1024 * 1024

_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"),
           "I32": np.dtype("<i4"), "U8": np.dtype("u1")}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}

# Optimizer configuration fields written to the C++-facing section, in a fixed order. The
# C++ loader knows exactly these; a field added to OptimizerConfig must be added to both.
_OPTIMIZER_FIELDS = ("momentum", "nesterov", "beta1", "beta2", "rho", "eps",
                     "initial_accumulator", "l2", "weight_decay", "clip_norm", "hypergradient")
_SCHEDULE_FIELDS = ("lr", "gamma", "step_size", "power", "t_max", "min_lr", "warmup_steps",
                    "warmup_start")

_EXTRA_TYPES: dict[str, type] = {}


class ModelFileError(ValueError):
    """A model file (or model bytes) that cannot be read: corrupt, truncated, not a ducklearn
    model, or written in a format version this ducklearn does not understand."""


def register_model_type(qualname: str, cls: type) -> None:
    """Allow ``load_model`` to build ``cls`` for manifests whose model type is ``qualname``.

    Model types under ``ducklearn.`` resolve on their own; anything else must be registered
    explicitly, so a file can never make the loader import an arbitrary module.
    """
    if not isinstance(qualname, str) or "." not in qualname:
        raise ValueError(f"qualname must be 'module.Class', got {qualname!r}")
    if not (isinstance(cls, type) and callable(getattr(cls, "from_state", None))):
        raise TypeError("cls must be a class with a from_state(tensors, manifest) classmethod")
    _EXTRA_TYPES[qualname] = cls


def tensor_digest(array: np.ndarray) -> str:
    """SHA-256 of a tensor's little-endian, C-order bytes (what safetensors stores)."""
    arr = np.ascontiguousarray(array)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return hashlib.sha256(memoryview(arr).cast("B")).hexdigest()


# ---------------------------------------------------------------------------------------------
# The in-memory form
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    """A validated model file: its manifest and its tensors (as stored in the file).

    ``state()`` turns it back into the estimator's ``(tensors, manifest)``; ``model()``
    builds the estimator.
    """

    manifest: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(repr=False)

    @property
    def model_type(self) -> str:
        return self.manifest["model_type"]

    @property
    def contract(self) -> dict[str, Any]:
        return self.manifest["state"].get("contract", {})

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    @property
    def lineage(self) -> dict[str, Any]:
        return self.manifest.get("lineage", {})

    @property
    def schema_hash(self) -> str | None:
        return self.manifest.get("schema_hash")

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The estimator's state: per-layer tensors joined back into the flat buffers."""
        tensors = {k: v for k, v in self.tensors.items() if not k.startswith("features.")}
        for flat_name, spec in self.manifest.get("flat", {}).items():
            buf = np.empty(int(spec["size"]), dtype=np.float32)
            for part in spec["parts"]:
                arr = tensors.pop(part["tensor"])
                start = int(part["offset"])
                buf[start:start + arr.size] = arr.reshape(-1)
            tensors[flat_name] = buf
        return tensors, self.manifest["state"]

    def features(self) -> Any:
        """The feature pipeline saved with the model (``save_model(...,
        feature_schema=extractor)``), rebuilt with its normalizer statistics; None when
        the file holds only a schema description or nothing."""
        spec = self.manifest.get("features")
        if not spec:
            return None
        if not isinstance(spec, dict) or not isinstance(spec.get("state"), dict):
            raise ModelFileError("manifest 'features' must be {type, state}")
        cls = _resolve_type(spec.get("type"))
        tensors = {k[len("features."):]: v for k, v in self.tensors.items()
                   if k.startswith("features.")}
        try:
            return cls.from_state(tensors, spec["state"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"the feature pipeline in the file cannot be rebuilt: "
                                 f"{exc}") from None

    def model(self) -> Any:
        """The estimator this file describes (identical to the one saved)."""
        cls = _resolve_type(self.model_type)
        tensors, state = self.state()
        try:
            return cls.from_state(tensors, state)
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"model state in the file is incomplete or malformed: "
                                 f"{exc!r}") from None


def _resolve_type(qualname: Any) -> type:
    if not isinstance(qualname, str):
        raise ModelFileError(f"manifest model_type must be a string, got {qualname!r}")
    if qualname in _EXTRA_TYPES:
        return _EXTRA_TYPES[qualname]
    module, _, name = qualname.rpartition(".")
    if not module.startswith("ducklearn.") or not name.isidentifier() or not all(
        p.isidentifier() for p in module.split(".")
    ):
        raise ModelFileError(
            f"model type {qualname!r} is not a ducklearn model; register its class with "
            "ducklearn.modelfile.register_model_type(qualname, cls) to load it"
        )
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ModelFileError(f"model type {qualname!r}: cannot import {module!r} ({exc}); "
                             "was the file written by a newer ducklearn?") from None
    cls = getattr(mod, name, None)
    if not (isinstance(cls, type) and callable(getattr(cls, "from_state", None))):
        raise ModelFileError(f"model type {qualname!r} does not name a loadable model class")
    return cls


# ---------------------------------------------------------------------------------------------
# Packing a model
# ---------------------------------------------------------------------------------------------


def _check_metrics(metrics: Any) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict of name -> number, got {type(metrics).__name__}")
    out = {}
    for k, v in metrics.items():
        if not isinstance(k, str) or not k:
            raise ValueError(f"metric names must be non-empty strings, got {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"metric {k!r} must be a number, got {type(v).__name__}")
        if not math.isfinite(float(v)):
            raise ValueError(f"metric {k!r} must be finite, got {v}")
        out[k] = float(v)
    return out


def _check_json(value: Any, argument: str) -> Any:
    try:
        return json.loads(canonical_json(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{argument} must be JSON-serializable (finite numbers, strings, "
                         f"lists, dicts with string keys): {exc}") from None


def _feature_schema(schema: Any) -> tuple[Any, str | None, tuple | None]:
    """(JSON form, hash, pipeline) of a feature schema.

    Accepts a dict; a ``ducklearn.features.FeatureSchema`` (``to_dict()``, ``hash``); or a
    fitted ``ducklearn.features.Extractor`` (``state()``, ``schema_hash``), whose state
    (normalizer statistics included) then travels in the file as ``pipeline`` =
    (type, tensors, manifest), so one file holds everything from raw record to prediction.
    """
    if schema is None:
        return None, None, None
    declared = getattr(schema, "schema_hash", None)
    if declared is None:
        declared = getattr(schema, "hash", None)
    if callable(declared):
        declared = declared()
    pipeline = None
    if isinstance(schema, Mapping):
        as_json = _check_json(dict(schema), "feature_schema")
    elif callable(getattr(schema, "state", None)) and isinstance(declared, str):
        tensors, manifest = schema.state()
        inner = getattr(schema, "schema", None)
        as_json = _check_json(manifest.get("schema") if isinstance(manifest.get("schema"), dict)
                              else inner.to_dict(), "feature_schema")
        pipeline = (f"{type(schema).__module__}.{type(schema).__name__}",
                    {str(k): np.ascontiguousarray(v) for k, v in tensors.items()},
                    _check_json(manifest, "the feature pipeline's state manifest"))
    elif callable(getattr(schema, "to_dict", None)):
        as_json = _check_json(schema.to_dict(), "feature_schema")
    else:
        raise TypeError("feature_schema must be a dict, a FeatureSchema (to_dict) or a fitted "
                        f"Extractor (state, schema_hash), got {type(schema).__name__}")
    digest = declared if isinstance(declared, str) and declared else (
        "sha256:" + hashlib.sha256(canonical_json(as_json).encode()).hexdigest())
    return as_json, digest, pipeline


def _core_section(model: Any, state_manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a C++ host needs to rebuild the Learner (None for non-Sequential models)."""
    learner = getattr(model, "_learner", None)
    if learner is None or not hasattr(model, "_loss") or "layers" not in state_manifest:
        return None
    n_classes = model._n_classes()
    loss, delta, tau = model._loss(n_classes)
    cfg = model._make_optimizer().to_config()
    sched = cfg.schedule
    opt: dict[str, Any] = {"kind": str(cfg.kind)}
    opt["schedule"] = {"kind": str(sched.kind)}
    for name in _SCHEDULE_FIELDS:
        value = getattr(sched, name)
        opt["schedule"][name] = int(value) if name in ("step_size", "t_max",
                                                       "warmup_steps") else float(value)
    for name in _OPTIMIZER_FIELDS:
        if hasattr(cfg, name):
            value = getattr(cfg, name)
            opt[name] = bool(value) if name == "nesterov" else float(value)
    saved = state_manifest["optimizer"]
    opt.update({k: saved[k] for k in ("steps", "size", "slots")})
    for key in ("lr_scale", "hypergradient_lr"):  # adapted at run time, not configured
        if key in saved:
            opt[key] = float(saved[key])
    core = {
        "n_inputs": int(learner.n_inputs),
        "leaky_alpha": float(getattr(learner, "leaky_alpha", 0.01)),
        "layers": [{"in": int(L["in"]), "out": int(L["out"]), "activation": L["activation"]}
                   for L in state_manifest["layers"]],
        "loss": {"kind": loss, "delta": float(delta), "tau": float(tau)},
        "task": learner.task,
        "standardize": bool(learner.standardize),
        "optimizer": opt,
        "examples_seen": int(learner.examples_seen),
    }
    if "ewc_lambda" in state_manifest:  # consolidation (tensors ewc.anchor, ewc.fisher)
        core["ewc_lambda"] = float(state_manifest["ewc_lambda"])
    if state_manifest.get("average"):  # weight averaging (tensor average.params)
        core["average"] = dict(state_manifest["average"])
    return core


def _split_params(tensors: dict[str, np.ndarray], layers: list[Mapping[str, Any]]
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Replace the flat ``params`` by ``layers.{i}.weight|bias``; returns the flat map."""
    params = np.ascontiguousarray(tensors.pop("params"), dtype=np.float32)
    parts = []
    covered = 0
    for i, L in enumerate(layers):
        n_in, n_out = int(L["in"]), int(L["out"])
        w0, b0 = int(L["w_offset"]), int(L["b_offset"])
        if w0 != covered or b0 != w0 + n_in * n_out:
            raise ValueError(f"layer {i} does not follow its predecessor in the flat buffer "
                             "(offsets are not contiguous)")
        tensors[f"layers.{i}.weight"] = params[w0:b0].reshape(n_out, n_in).copy()
        tensors[f"layers.{i}.bias"] = params[b0:b0 + n_out].copy()
        parts.append({"tensor": f"layers.{i}.weight", "offset": w0})
        parts.append({"tensor": f"layers.{i}.bias", "offset": b0})
        covered = b0 + n_out
    if covered != params.size:
        raise ValueError(f"layers cover {covered} of {params.size} parameters")
    return tensors, {"params": {"size": int(params.size), "parts": parts}}


def pack(model: Any, *, metrics: Mapping[str, float] | None = None,
         lineage: Mapping[str, Any] | None = None, feature_schema: Any = None,
         tags: Mapping[str, str] | None = None, description: str | None = None,
         created_at: str | None = None) -> ModelFile:
    """A :class:`ModelFile` for a fitted estimator (anything with ``state()``).

    Parameters
    ----------
    model : estimator
        A fitted ducklearn estimator (or any object with ``state() -> (tensors, manifest)``
        whose class has ``from_state``).
    metrics : dict of str -> float, optional
        Evaluation results to keep with the model.
    lineage : dict, optional
        Where the model came from: ``parent`` ("name@version"), ``run_id``,
        ``data_fingerprint``, ``feature_schema_version``, or anything JSON-able.
    feature_schema : dict, FeatureSchema or fitted Extractor, optional
        The features the model expects; their hash (the schema's own, or the SHA-256 of
        the canonical JSON) is stored too and is part of the model's contract. A fitted
        ``ducklearn.features.Extractor`` is saved whole (normalizer statistics included)
        and comes back with :meth:`ModelFile.features`.
    tags : dict of str -> str, optional
    description : str, optional
    """
    from ducklearn import __version__

    if not callable(getattr(model, "state", None)):
        raise TypeError(f"model must be a fitted ducklearn estimator (with state()), got "
                        f"{type(model).__name__}")
    state_tensors, state_manifest = model.state()
    model_type = state_manifest.get("estimator") or (
        f"{type(model).__module__}.{type(model).__name__}")
    tensors = {str(k): np.ascontiguousarray(v) for k, v in state_tensors.items()}
    flat: dict[str, Any] = {}
    if "params" in tensors and "layers" in state_manifest:
        if any(k.startswith("layers.") for k in tensors):
            raise ValueError("state tensors may not use the reserved prefix 'layers.'")
        tensors, flat = _split_params(tensors, state_manifest["layers"])
    if tags is not None:
        if not isinstance(tags, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise TypeError("tags must be a dict of str -> str")
    if description is not None and not isinstance(description, str):
        raise TypeError(f"description must be a string, got {type(description).__name__}")
    schema_json, schema_hash, pipeline = _feature_schema(feature_schema)
    features = None
    if pipeline is not None:
        kind, pipe_tensors, pipe_manifest = pipeline
        if any(k.startswith("features.") for k in tensors):
            raise ValueError("state tensors may not use the reserved prefix 'features.'")
        tensors.update({f"features.{k}": v for k, v in pipe_tensors.items()})
        features = {"type": kind, "state": pipe_manifest}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "created_at": created_at or _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "model_type": model_type,
        "state": _check_json(state_manifest, "the model's state manifest"),
        "core": _core_section(model, state_manifest),
        "flat": flat,
        "feature_schema": schema_json,
        "schema_hash": schema_hash,
        "features": features,
        "metrics": _check_metrics(metrics),
        "lineage": _check_json(dict(lineage or {}), "lineage"),
        "tags": dict(tags or {}),
        "description": description or "",
    }
    manifest["tensors"] = _tensor_table(tensors)
    return ModelFile(manifest=manifest, tensors=tensors)


def _tensor_table(tensors: Mapping[str, np.ndarray]) -> dict[str, Any]:
    table = {}
    for name, arr in tensors.items():
        dtype = _DTYPE_NAMES.get(arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">"
                                 else arr.dtype)
        if dtype is None:
            raise TypeError(f"tensor {name!r} has dtype {arr.dtype}; model files hold "
                            f"{sorted(_DTYPES)} only")
        table[name] = {"dtype": dtype, "shape": [int(s) for s in arr.shape],
                       "sha256": tensor_digest(arr)}
    return table


# ---------------------------------------------------------------------------------------------
# Bytes <-> ModelFile
# ---------------------------------------------------------------------------------------------


def _as_model_file(obj: Any, meta: Mapping[str, Any]) -> ModelFile:
    if isinstance(obj, ModelFile):
        if meta:
            raise TypeError("metadata arguments apply to a model, not to a ModelFile; pass "
                            "them to pack() instead")
        return obj
    return pack(obj, **meta)


def to_bytes(model: Any, **meta: Any) -> bytes:
    """The model file's bytes (deterministic for a given manifest and tensors)."""
    from safetensors.numpy import save

    mf = _as_model_file(model, meta)
    return save(mf.tensors, metadata={METADATA_KEY: canonical_json(mf.manifest)})


def save_model(model: Any, path: str | os.PathLike, **meta: Any) -> ModelFile:
    """Write a model file atomically (temporary file, fsync, rename): a crash leaves either
    the old file or the new one, never a torn one. ``meta``: see :func:`pack`."""
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise TypeError("path must be a file path")
    mf = _as_model_file(model, meta)
    atomic_write(path, to_bytes(mf), suffix=".safetensors")
    return mf


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _parse_json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_strict_object,
                          parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{what} is not valid JSON: {exc}") from None


def _parse_header(data: bytes | memoryview) -> tuple[dict[str, Any], int]:
    if len(data) < 8:
        raise ModelFileError(f"file is truncated: {len(data)} bytes, a safetensors file "
                             "starts with an 8-byte header length")
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    if n == 0 or n > MAX_HEADER_BYTES:
        raise ModelFileError(f"header length {n} is not plausible; not a safetensors file")
    if 8 + n > len(data):
        raise ModelFileError(f"file is truncated: header says {n} bytes, {len(data) - 8} "
                             "follow")
    header = _parse_json(bytes(data[8:8 + n]), "the safetensors header")
    if not isinstance(header, dict):
        raise ModelFileError("the safetensors header must be a JSON object")
    return header, 8 + n


def _manifest_from_header(header: Mapping[str, Any]) -> dict[str, Any]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or METADATA_KEY not in meta:
        raise ModelFileError(
            "not a ducklearn model file: the safetensors metadata has no 'ducklearn' "
            "manifest (a plain safetensors checkpoint cannot be loaded as a model)"
        )
    if not isinstance(meta[METADATA_KEY], str):
        raise ModelFileError("the 'ducklearn' metadata entry must be a JSON string")
    manifest = _parse_json(meta[METADATA_KEY], "the model manifest")
    _check_manifest(manifest)
    return manifest


def _check_manifest(manifest: Any) -> None:
    if not isinstance(manifest, dict):
        raise ModelFileError("the model manifest must be a JSON object")
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"manifest format is {manifest.get('format')!r}, expected "
                             f"{FORMAT!r}")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"manifest format_version must be a positive integer, got "
                             f"{version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"this model file has format version {version}, written by ducklearn "
            f"{manifest.get('library_version', '?')}; this ducklearn reads format version "
            f"{FORMAT_VERSION} and older. Upgrade ducklearn to load it."
        )
    for key, kind in (("model_type", str), ("state", dict), ("tensors", dict),
                      ("flat", dict)):
        if not isinstance(manifest.get(key), kind):
            raise ModelFileError(f"manifest field {key!r} is missing or not a "
                                 f"{kind.__name__}")
    if manifest.get("features") is not None and not isinstance(manifest["features"], dict):
        raise ModelFileError("manifest field 'features' must be an object or null")
    for key, kind in (("metrics", dict), ("lineage", dict), ("tags", dict)):
        if key in manifest and not isinstance(manifest[key], kind):
            raise ModelFileError(f"manifest field {key!r} must be a {kind.__name__}")


def _check_tensors(manifest: Mapping[str, Any], header: Mapping[str, Any],
                   tensors: Mapping[str, np.ndarray], verify: bool) -> None:
    declared = manifest["tensors"]
    stored = {k for k in header if k != "__metadata__"}
    if stored != set(declared):
        missing = sorted(set(declared) - stored)
        extra = sorted(stored - set(declared))
        raise ModelFileError(f"tensors do not match the manifest (missing {missing}, "
                             f"unexpected {extra})")
    for name, spec in declared.items():
        arr = tensors[name]
        if not isinstance(spec, dict) or _DTYPES.get(spec.get("dtype")) is None:
            raise ModelFileError(f"manifest entry for tensor {name!r} is malformed")
        if arr.dtype != _DTYPES[spec["dtype"]] or list(arr.shape) != spec.get("shape"):
            raise ModelFileError(
                f"tensor {name!r} is {arr.dtype} {list(arr.shape)} but the manifest says "
                f"{spec['dtype']} {spec.get('shape')}"
            )
        if verify and tensor_digest(arr) != spec.get("sha256"):
            raise ModelFileError(f"checksum mismatch for tensor {name!r}: the file is "
                                 "corrupt (or was modified after it was written)")
    for flat_name, spec in manifest["flat"].items():
        try:
            size = int(spec["size"])
            covered = 0
            for part in sorted(spec["parts"], key=lambda p: int(p["offset"])):
                arr = tensors[part["tensor"]]
                if int(part["offset"]) != covered or arr.dtype != np.float32:
                    raise ValueError("parts are not contiguous float32 tensors")
                covered += arr.size
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"flat buffer {flat_name!r} is malformed: {exc}") from None
        if covered != size:
            raise ModelFileError(f"flat buffer {flat_name!r}: parts cover {covered} of "
                                 f"{size} values")


def from_bytes(data: bytes | bytearray | memoryview, *, verify: bool = True) -> ModelFile:
    """Parse and validate model-file bytes. ``verify=False`` skips the per-tensor SHA-256
    (the structure is still checked)."""
    from safetensors.numpy import load

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    header, start = _parse_header(data)
    manifest = _manifest_from_header(header)
    ends = [spec["data_offsets"][1] for name, spec in header.items()
            if name != "__metadata__" and isinstance(spec, dict)
            and isinstance(spec.get("data_offsets"), list) and len(spec["data_offsets"]) == 2
            and isinstance(spec["data_offsets"][1], int)]
    if ends and max(ends) > len(data) - start:
        raise ModelFileError(f"file is truncated: its tensors need {max(ends)} bytes of data, "
                             f"{len(data) - start} are present")
    try:
        tensors = load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError
        raise ModelFileError(f"corrupt safetensors data: {exc}") from None
    _check_tensors(manifest, header, tensors, verify)
    return ModelFile(manifest=manifest, tensors=dict(tensors))


def read_model_file(path: str | os.PathLike, *, verify: bool = True) -> ModelFile:
    """Read and validate a model file (see :func:`from_bytes`)."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return from_bytes(data, verify=verify)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest alone, reading only the file's header."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelFileError(f"{path}: file is truncated ({len(head)} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > MAX_HEADER_BYTES:
            raise ModelFileError(f"{path}: header length {n} is not plausible")
        body = fh.read(n)
    try:
        header, _ = _parse_header(head + body)
        return _manifest_from_header(header)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None


def load_model(path: str | os.PathLike) -> Any:
    """The estimator saved at ``path`` (validated; see :func:`read_model_file`)."""
    return read_model_file(path).model()
